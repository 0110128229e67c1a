// Large content crosses the process as Buffers that are dead as soon as they are written on: a
// socket's reads and smtp-server's copy of each, a file's reads, mailparser's copies, the base64
// decoder's output. V8 frees them at a young-generation collection, which it starts by itself only
// once some 32 MiB of such memory has piled up: a 68 MB mail kept 30+ MiB of dead Buffers in the
// RSS (issue 14: under 50 MB for a 50 MB attachment; `npm run bench -- mail`), while what is really
// held stays under 3 MiB (heap snapshot). Asking for that collection every few MiB of content
// written keeps the pile near that size, for about a millisecond each. Only content above the blob
// threshold is counted: small messages never ask.
import v8 from 'node:v8';
import vm from 'node:vm';

/** Content written between two young-generation collections. */
const EVERY = 4 * 1024 * 1024;

type Collect = (options: { type: 'minor' }) => void;
let collect: Collect | undefined;
let sinceLast = 0;

/** Counts content written on; past EVERY bytes since the last one, a young-generation collection. */
export function reclaimAfter(bytes: number): void {
  sinceLast += bytes;
  if (sinceLast < EVERY) return;
  sinceLast = 0;
  collect ??= collector();
  collect({ type: 'minor' });
}

/**
 * V8's collector, reached through a fresh context while the flag is set, then the flag set back:
 * no `gc` global appears in this realm nor in a worker started later. Taken on first use, so a
 * process that never writes large content never touches V8's flags.
 */
function collector(): Collect {
  v8.setFlagsFromString('--expose-gc');
  try {
    return vm.runInNewContext('gc') as Collect;
  } finally {
    v8.setFlagsFromString('--no-expose-gc');
  }
}
