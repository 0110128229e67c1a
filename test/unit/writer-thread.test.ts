// The store's writer in its worker thread: calls cross as plain data, commits are grouped, errors come
// back with their class and code, and this thread's connection only reads.
import assert from 'node:assert/strict';
import { Store } from '../../store/store.ts';
import { OncoError } from '../../config/errors.ts';
import { JournalUnavailable } from '../../store/group-commit.ts';
import { isTransientDbError } from '../../store/db.ts';
import { errorFromValue, errorToValue } from '../../store/writer-thread.ts';
import { tempDir } from '../support/engine-harness.ts';

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
