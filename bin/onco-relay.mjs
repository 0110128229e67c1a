#!/usr/bin/env node
// Entry point: the appliance runs its TypeScript sources through tsx, so there is no build step to forget.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * V8's heap sizing for `import identities`, a batch job that is a process of its own. By default
 * V8 grows each isolate's semi-spaces to 16 MB and keeps them (the main thread's 32 MB, and 16 and
 * 8 MB in the two tsx loader threads), and lets an old generation grow to up to four times what
 * survived its last full collection (the store writer's ~8 MB live reached 40-60 MB). Semi-spaces
 * of 2 MB, and a full collection once the old generation has tripled: 60,000 identities peaked at
 * 241-253 MB instead of 305-336, the writer's CPU unchanged (doubled: 222 MB, but the writer's full
 * collections cost it 4 % more CPU). The store's writer thread bounds its own young generation
 * (store/writer-thread.ts). These are start flags of the whole process, so the import starts again
 * with them, and the engine (`start`) keeps V8's defaults, with which its throughput was measured.
 */
const importFlags = ['--max-semi-space-size=2', '--heap-growing-percent=200'];

const argv = process.argv.slice(2);
// A flag an operator gave is kept as given.
const missing = importFlags.filter((f) => !process.execArgv.some((a) => a.startsWith(f.split('=')[0])));
if (argv[0] === 'import' && argv[1] === 'identities' && missing.length > 0) {
  process.exitCode = await startAgain([...process.execArgv, ...missing]);
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
