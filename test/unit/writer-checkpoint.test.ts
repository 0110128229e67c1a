// The WAL's checkpoints run beside the writer thread, not inside its commits: committed pages reach
// the database file in the background, and the WAL still starts over under a stream of writes.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Store } from '../../store/store.ts';
import { BACKSTOP_PAGES } from '../../store/writer-thread-checkpoint.ts';
import { tempDir, until } from '../support/engine-harness.ts';

const message = (i: number) => ({
  channel: 'c',
  content: Buffer.from(`content ${i}`),
  contentType: 'text/plain',
  meta: { i },
  sender: null,
  owner: null,
  dedupKey: null,
  rejected: null,
  destinations: ['out'],
  now: 1000 + i,
});

/**
 * The WAL index's own record (SQLite's file format, wal.c, little-endian here): the last committed
 * frame (mxFrame, offset 16 of the header) and the frames copied into the database (nBackfill,
 * offset 96).
 */
function walState(dataDir: string): { frames: number; copied: number } {
  const shm = fs.readFileSync(path.join(dataDir, 'onco-relay.db-shm'));
  return { frames: shm.readUInt32LE(16), copied: shm.readUInt32LE(96) };
}

describe('store writer: checkpoints beside the writer thread', function () {
  this.timeout(60_000);
  let store: Store;
  let dataDir: string;
  beforeEach(() => {
    dataDir = tempDir();
    store = new Store({ dataDir });
  });
  afterEach(() => store.close());

  it("copies committed pages into the database without a checkpoint in the writer's commits", async () => {
    // A few hundred WAL pages: far below SQLite's own threshold (1,000), at which the writer would
    // have checkpointed inside a commit.
    for (let i = 0; i < 20; i++) await store.write.journal.receive(message(i));
    const written = walState(dataDir).frames;
    assert.ok(written > 20 && written < 1000, `${written} WAL pages`);
    await until(() => walState(dataDir).copied >= written, 'the background checkpoint', 20_000);
  });

  it('lets the WAL start over under a continuous stream of writes instead of growing', async () => {
    // 12 KB a message: four pages each, 8,000 pages in all: the WAL starts over several times, at the
    // writer's threshold, which then has little left to copy.
    const padding = 'x'.repeat(12 * 1024);
    let biggest = 0;
    let last = 0;
    let restarts = 0;
    for (let batch = 0; batch < 100; batch++) {
      await Promise.all(
        Array.from({ length: 20 }, (_, i) => {
          const m = message(batch * 20 + i);
          return store.write.journal.receive({ ...m, content: Buffer.from(`${m.content}${padding}`) });
        }),
      );
      const { frames } = walState(dataDir);
      if (frames < last) restarts++;
      last = frames;
      biggest = Math.max(biggest, frames);
    }
    assert.ok(restarts >= 2, `the WAL started over ${restarts} times`);
    assert.ok(biggest < 2 * BACKSTOP_PAGES, `the WAL reached ${biggest} pages`);
    assert.equal(store.db.prepare('SELECT count(*) FROM messages').pluck().get(), 2000);
  });
});
