// Child process of the large-content test: stages a large content and places its file under its
// digest, then dies by SIGKILL before the commit that would reference it, as a crash at the worst
// moment would. Usage: node --import tsx test/support/blob-crash.ts DATA_DIR
import { randomBytes } from 'node:crypto';
import { Store } from '../../store/store.ts';

const dataDir = process.argv[2];
if (!dataDir) throw new Error('usage: blob-crash.ts DATA_DIR');
const store = new Store({ dataDir });
const staged = await store.blobs.stage({ buffer: randomBytes(3 * 1024 * 1024) });
await store.blobs.keep(staged, () => {
  process.kill(process.pid, 'SIGKILL');
  return new Promise<never>(() => undefined);
});
