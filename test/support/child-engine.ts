// An engine in a child process, as an operator runs it: what the crash tests kill with SIGKILL and
// the CLI tests start twice, on a busy port, or through `npm start`.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';

const bin = path.resolve('bin/onco-relay.mjs');

export type ChildEngine = ChildProcess & {
  output: () => string;
  /** Resolves with the exit code (or the signal) once the process has ended and its output is read. */
  exited: Promise<number | string | null>;
};

export interface SpawnOptions {
  viaNpm?: boolean;
  /** Node arguments of another engine script instead of `onco-relay start` (the poison-message engine). */
  entry?: string[];
}

/**
 * Spawns `onco-relay start` (or `npm start` with `viaNpm`). Resolves with 'started' once it says so,
 * or 'exited' if it ends first: for the tests that expect a refusal.
 */
export function spawnEngine(
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
  options: SpawnOptions = {},
): { child: ChildEngine; outcome: Promise<'started' | 'exited'> } {
  const [command, argv] = options.viaNpm
    ? ['npm', ['start', '--silent', '--', ...args]]
    : [process.execPath, [...(options.entry ?? [bin, 'start']), ...args]];
  const spawned = spawn(command, argv, {
    env: { ...env, ONCO_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const exited = new Promise<number | string | null>((resolve) =>
    spawned.once('close', (code, signal) => resolve(code ?? signal)),
  );
  const child = Object.assign(spawned, { output: () => out, exited });
  const outcome = new Promise<'started' | 'exited'>((resolve) => {
    spawned.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.includes('onco-relay started')) resolve('started');
    });
    spawned.stderr!.on('data', (b: Buffer) => (out += b.toString()));
    void exited.then(() => resolve('exited'));
  });
  return { child, outcome };
}

/** Starts `onco-relay start` and resolves once it says it started; rejects with its output if it exits first. */
export async function startChildEngine(
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
  options: SpawnOptions = {},
): Promise<ChildEngine> {
  const { child, outcome } = spawnEngine(args, env, options);
  if ((await outcome) === 'exited') {
    throw new Error(`engine exited (${await child.exited}) before it started:\n${child.output()}`);
  }
  return child;
}
