// An engine in a child process, as an operator runs it: what the crash tests kill with SIGKILL.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';

const bin = path.resolve('bin/onco-relay.mjs');

/**
 * Starts `onco-relay start` (or `entry`, node arguments of another engine script) and resolves once it
 * says it started; rejects with its output if it exits first.
 */
export function startChildEngine(
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
  entry: string[] = [bin, 'start'],
): Promise<ChildProcess & { output: () => string }> {
  const child = spawn(process.execPath, [...entry, ...args], {
    env: { ...env, ONCO_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const withOutput = Object.assign(child, { output: () => out });
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.includes('onco-relay started')) resolve(withOutput);
    });
    child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
    child.once('exit', (code) => reject(new Error(`engine exited (${code}) before it started:\n${out}`)));
  });
}
