// Builds a real engine (real SQLite, real files) in a temporary directory from plain objects.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import YAML from 'yaml';
import { loadConfig } from '../../config/config.ts';
import { builtinRegistry } from '../../channels/builtins.ts';
import { validateConfig } from '../../channels/validate.ts';
import { Engine } from '../../channels/engine.ts';
import type { Registry } from '../../channels/registry.ts';
import {
  hashPassword,
  lowerScryptCostForTests,
  type AccountRecord,
  type NewAccount,
} from '../../store/accounts.ts';
import type { Store } from '../../store/store.ts';
import { formatProblem } from '../../config/loader.ts';

// Every test process that builds an engine hashes passwords at a test cost (store/accounts.ts says why).
lowerScryptCostForTests(2 ** 14);

/**
 * Adds an account through the store's writer, its password hashed here at the test cost (the
 * writer thread hashes nothing: it must not stall commits for a quarter of a second).
 */
export function addAccount(store: Store, a: NewAccount): Promise<AccountRecord> {
  const { password, ...rest } = a;
  return store.write.accounts.add({ ...rest, passwordHash: password ? hashPassword(password) : null });
}

export function tempDir(prefix = 'onco-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface Harness {
  engine: Engine;
  dataDir: string;
  configDir: string;
  stop(): Promise<void>;
}

/** Writes engine.yaml and one file per channel, validates, and starts an engine on them. */
export async function startEngine(options: {
  channels: object[];
  engine?: object;
  /** directory.yaml: the establishments whose IPPs identity feeds may file. */
  directory?: object;
  registry?: Registry;
  dataDir?: string;
  configDir?: string;
  start?: boolean;
  /** Where the engine logs (default: nowhere). */
  log?: pino.Logger;
}): Promise<Harness> {
  const configDir = options.configDir ?? tempDir('onco-config-');
  const dataDir = options.dataDir ?? tempDir('onco-data-');
  fs.mkdirSync(path.join(configDir, 'channels'), { recursive: true });
  fs.writeFileSync(path.join(configDir, 'engine.yaml'), YAML.stringify(options.engine ?? {}));
  if (options.directory)
    fs.writeFileSync(path.join(configDir, 'directory.yaml'), YAML.stringify(options.directory));
  for (const ch of options.channels as Array<{ id: string }>) {
    fs.writeFileSync(path.join(configDir, 'channels', `${ch.id}.yaml`), YAML.stringify(ch));
  }
  const registry = options.registry ?? builtinRegistry();
  const config = loadConfig(configDir, { ...process.env, ONCO_DATA_DIR: dataDir });
  const problems = validateConfig(config, registry);
  if (problems.length) throw new Error(problems.map(formatProblem).join('\n'));
  const log = options.log ?? pino({ level: 'silent' });
  const engine = new Engine({ config, dataDir, registry, log });
  if (options.start !== false) await engine.start();
  return { engine, dataDir, configDir, stop: () => engine.stop() };
}

/** Polls `check` until it returns a truthy value; fails with `what` after `ms`. */
export async function until<T>(
  check: () => T | Promise<T>,
  what: string,
  ms = 10000,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
