// The store's writer in its worker thread: calls cross as plain data, commits are grouped, errors come
// back with their class and code, and this thread's connection only reads. The WAL's checkpoints run
// beside it: committed pages reach the database file in the background, and the WAL still starts
// over under a stream of writes.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { Store } from '../../store/store.ts';
import { OncoError } from '../../config/errors.ts';
import { JournalUnavailable } from '../../store/group-commit.ts';
import { isTransientDbError } from '../../store/db.ts';
import { errorFromValue, errorToValue, type WriterLog } from '../../store/writer-thread.ts';
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

describe('store writer thread', function () {
  this.timeout(20_000);
  let store: Store;
  beforeEach(() => (store = new Store({ dataDir: tempDir() })));
  afterEach(() => store.close());

  it('commits concurrent writes in a few group transactions, each visible to this thread once settled', async () => {
    const receipts = await Promise.all(
      Array.from({ length: 100 }, (_, i) => store.write.journal.receive(message(i))),
    );
    assert.equal(receipts.length, 100);
    assert.ok(store.writer.stats.commits < 50, `100 writes in ${store.writer.stats.commits} commits`);
    const last = receipts.at(-1)!.messageId;
    assert.equal(store.journal.message(last)?.meta.i, 99);
    const raw = store.journal.content(last, 'raw');
    assert.ok(Buffer.isBuffer(raw?.content));
    assert.equal(raw?.content.toString(), 'content 99');
  });

  it('reads on a connection that cannot write: every write goes through the writer', () => {
    assert.throws(() => store.journal.receive(message(1)), /readonly|read-only|query_only/i);
  });

  it('rebuilds a refusal of a store module with its class, code, message and hint', async () => {
    await store.write.accounts.add({ login: 'alice', role: 'viewer', passwordHash: 'x' });
    const refusal = await store.write.accounts
      .add({ login: 'alice', role: 'viewer', passwordHash: 'x' })
      .then(
        () => assert.fail('a second account of the same login is refused'),
        (e: unknown) => e,
      );
    assert.ok(refusal instanceof OncoError);
    assert.equal(refusal.code, 'ACCOUNT_EXISTS');
    assert.match(refusal.message, /account "alice" already exists/);
  });

  it('keeps the meaning of an error across the thread: journal unavailable, database busy, a refusal for good', () => {
    const busy = Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' });
    assert.ok(isTransientDbError(errorFromValue(errorToValue(busy))));
    const unavailable = errorFromValue(errorToValue(new JournalUnavailable(new Error('disk full'))));
    assert.ok(unavailable instanceof JournalUnavailable);
    assert.equal((unavailable as OncoError).code, 'JOURNAL_UNAVAILABLE');
    const refused = new OncoError('IDENTITY_UNKNOWN_IPP', {
      message: 'IPP X',
      protocol: { retryable: false },
    });
    const back = errorFromValue(errorToValue(refused)) as OncoError;
    assert.equal(back.code, 'IDENTITY_UNKNOWN_IPP');
    assert.equal(back.protocol.retryable, false);
    assert.equal(back.hint, refused.hint);
  });

  it('commits what waits when the store closes, then refuses writes', async () => {
    const pending = store.write.journal.receive(message(7));
    await store.close();
    assert.ok((await pending).messageId > 0);
    await assert.rejects(store.write.journal.receive(message(8)), /store is closed/);
    const again = new Store({ dataDir: store.db.name.replace(/\/onco-relay\.db$/, '') });
    try {
      assert.equal(again.journal.backlogCount('c'), 1);
    } finally {
      await again.close();
    }
  });
});

describe('store writer thread restart', function () {
  this.timeout(60_000);
  let store: Store;
  const told: string[] = [];
  const log: WriterLog = {
    error: (_detail, message) => told.push(`error: ${message}`),
    info: (_detail, message) => told.push(`info: ${message}`),
  };
  /** Ends the thread that runs now, as an uncaught error or a resource limit would. */
  const killThread = () => (store.writer as unknown as { worker: Worker }).worker.terminate();
  afterEach(() => store.close());

  it('restarts a thread killed under a stream of writes: unanswered writes fail, later ones commit, the journal is whole', async () => {
    told.length = 0;
    store = new Store({ dataDir: tempDir(), log, writerRestart: { firstDelayMs: 10 } });
    const acked: Array<{ i: number; messageId: number }> = [];
    const failed: unknown[] = [];
    let n = 0;
    let producing = true;
    // A source's stream: a batch of writes in flight at any moment, the next batch once it settled
    // and the event loop has turned (a refused write settles at once: a loop of them alone would
    // starve the timers).
    const producer = (async () => {
      while (producing) {
        await new Promise((r) => setImmediate(r));
        await Promise.all(
          Array.from({ length: 20 }, () => {
            const i = n++;
            return store.write.journal.receive(message(i)).then(
              (r) => acked.push({ i, messageId: r.messageId }),
              (e: unknown) => failed.push(e),
            );
          }),
        );
      }
    })();
    await until(() => acked.length >= 200, 'writes before the kill', 20_000);
    await killThread();
    const ackedBefore = acked.length;
    await until(() => acked.length >= ackedBefore + 200, 'writes after the restart', 20_000);
    producing = false;
    await producer;

    for (const e of failed) assert.equal((e as OncoError).code, 'JOURNAL_UNAVAILABLE', String(e));
    assert.deepEqual(store.writerHealth(), {
      state: 'up',
      restarts: 1,
      lastError: 'the store writer thread ended (exit code 1)',
    });
    assert.ok(
      told.some((t) => t.startsWith('error: the store writer thread died')),
      told.join('\n'),
    );
    assert.ok(told.includes('info: the store writer thread restarted'), told.join('\n'));
    // Every acknowledged write is there with its content; a failed one may be (committed, its answer
    // lost with the thread: the caller's retry is then a duplicate, as after any crash), no other.
    for (const { i, messageId } of acked)
      assert.equal(store.journal.content(messageId, 'raw')?.content.toString(), `content ${i}`);
    const messages = store.db.prepare('SELECT count(*) FROM messages').pluck().get() as number;
    assert.ok(messages >= acked.length && messages <= acked.length + failed.length, `${messages} messages`);
    const orphans = store.db
      .prepare(
        'SELECT count(*) FROM messages m WHERE NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = m.id)',
      )
      .pluck()
      .get();
    assert.equal(orphans, 0, 'every message has its delivery row: no transaction half committed');
    assert.equal(store.db.pragma('integrity_check', { simple: true }), 'ok');
    console.log(
      `      ${acked.length} acknowledged, ${failed.length} failed with the thread, ${messages} journaled`,
    );
  });

  it('gives up after its restarts in a row: writes fail with JOURNAL_UNAVAILABLE, the health says failed', async () => {
    told.length = 0;
    store = new Store({ dataDir: tempDir(), log, writerRestart: { maxRestarts: 1, firstDelayMs: 10 } });
    await store.write.journal.receive(message(1));
    await killThread();
    await until(() => store.writerHealth().restarts === 1, 'the restart');
    await store.write.journal.receive(message(2));
    await killThread();
    assert.equal(store.writerHealth().state, 'failed');
    await assert.rejects(store.write.journal.receive(message(3)), { code: 'JOURNAL_UNAVAILABLE' });
    assert.ok(
      told.some((t) => t.includes('no more restarts')),
      told.join('\n'),
    );
    assert.equal(store.journal.backlogCount('c'), 2, 'what was acknowledged stays');
  });
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
