#!/usr/bin/env node
// Entry point: the appliance runs its TypeScript sources through tsx, so there is no build step to forget.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * V8's young generation for `import identities`, a batch job that is a process of its own: by
 * default V8 grows each isolate's semi-spaces to 16 MB and keeps them, which in the import is the
 * main thread's 32 MB and 16 MB more in each tsx loader thread. These flags can only be given when
 * a process starts and apply to every isolate in it, so the import starts again with them, and the
 * engine (`start`) keeps V8's defaults, which its throughput was measured with. The store's writer
 * thread sets its own bound (store/writer-thread.ts). Measured in README, Performance (Identities).
 */
const importFlags = ['--max-semi-space-size=2'];

const argv = process.argv.slice(2);
// An operator's own --max-semi-space-size is kept as given.
const ownYoungGeneration = process.execArgv.some((a) => a.startsWith('--max-semi-space-size'));
if (argv[0] === 'import' && argv[1] === 'identities' && !ownYoungGeneration) {
  process.exitCode = await startAgain([...process.execArgv, ...importFlags]);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  const { main } = await import('./cli.ts');
  process.exitCode = await main(argv);
}

/**
 * This command in a child process started with `flags`, sharing this one's terminal: its exit code
 * becomes ours, and a signal that stops this launcher stops it (a SIGINT typed at the terminal
 * reaches both; a SIGTERM sent to this pid is passed on), then ends this launcher the same way.
 */
function startAgain(flags) {
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  // Listening before the child exists: a signal that comes while it starts is passed on once it has.
  const pass = (signal) => child.kill(signal);
  for (const s of signals) process.on(s, pass);
  const child = spawn(process.execPath, [...flags, fileURLToPath(import.meta.url), ...argv], {
    stdio: 'inherit',
  });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      for (const s of signals) process.off(s, pass);
      if (signal !== null) process.kill(process.pid, signal);
      resolve(code ?? 1);
    });
  });
}
