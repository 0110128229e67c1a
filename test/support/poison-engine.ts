// An engine in a child process (see child-engine.ts) whose registry adds a step and a store writer
// that kill the process on a marked message, as a poison message does: what the guard must survive.
// Run as `node --import tsx test/support/poison-engine.ts CONFIG_DIR DATA_DIR`.
import fs from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { builtinRegistry } from '../../channels/builtins.ts';
import { Engine } from '../../channels/engine.ts';
import { validateConfig } from '../../channels/validate.ts';
import { loadConfig } from '../../config/config.ts';
import type { DestinationSpec } from '../../connectors/contract.ts';
import type { StepSpec } from '../../transformers/contract.ts';

const die = (): never => {
  process.kill(process.pid, 'SIGKILL');
  throw new Error('unreachable: the process is gone');
};

/** Kills the process on content containing POISON-STEP, passes anything else through. */
const crashStep: StepSpec = {
  kind: 'step',
  type: 'test-crash',
  summary: 'test step that kills the engine',
  schema: { properties: {} },
  create: () => (input) => (input.content.includes('POISON-STEP') ? die() : input),
};

/**
 * A store writer that kills the process on POISON-APPLY as it names its filing, and records the
 * others. Its filing is a read of the message (a store module method that changes nothing): the
 * test is about the poison guard around the filing, not about what is filed.
 */
const crashStore = (dataDir: string): DestinationSpec => ({
  kind: 'destination',
  type: 'test-crash-store',
  summary: 'test store writer that kills the engine',
  schema: { properties: {} },
  create: () => ({
    filing: (msg) => {
      if (msg.content.includes('POISON-APPLY')) die();
      fs.appendFileSync(path.join(dataDir, 'filed.txt'), `${msg.content.toString()}\n`);
      return { module: 'journal', method: 'message', args: [msg.messageId] };
    },
  }),
});

const [configDir, dataDir] = process.argv.slice(2) as [string, string];
process.env.ONCO_DATA_DIR = dataDir;
const stopSignal = new Promise((resolve) => process.once('SIGTERM', resolve));
const registry = builtinRegistry().register(crashStep, crashStore(dataDir));
const config = loadConfig(configDir);
// Validation also fills in the defaults of every component's options.
const problems = validateConfig(config, registry);
if (problems.length) throw new Error(JSON.stringify(problems));
const engine = new Engine({ config, dataDir, registry, log: pino({ level: 'info' }) });
await engine.start();
process.stdout.write('onco-relay started\n');
await stopSignal;
await engine.stop();
