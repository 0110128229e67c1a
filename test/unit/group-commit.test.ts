import assert from 'node:assert/strict';
import path from 'node:path';
import { openDatabase } from '../../store/db.ts';
import { GroupCommit } from '../../store/group-commit.ts';
import { tempDir } from '../support/engine-harness.ts';

describe('group commit', () => {
  const open = () => {
    const db = openDatabase(path.join(tempDir(), 'gc.db'));
    db.exec('CREATE TABLE t (v TEXT UNIQUE)');
    return { db, gc: new GroupCommit(db) };
  };

  it('runs durable FULL-sync WAL by default', () => {
    const { db } = open();
    assert.equal(db.pragma('synchronous', { simple: true }), 2);
    assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
  });

  it('commits concurrent writes together and resolves each only after the commit', async () => {
    const { db, gc } = open();
    const writes = Array.from({ length: 50 }, (_, i) =>
      gc.write((d) => d.prepare('INSERT INTO t VALUES (?)').run(`v${i}`)),
    );
    assert.deepEqual(
      db.prepare('SELECT count(*) AS n FROM t').get(),
      { n: 0 },
      'nothing is written before the batch flushes',
    );
    await Promise.all(writes);
    assert.equal(gc.stats.commits, 1);
    assert.equal(gc.stats.writes, 50);
    assert.deepEqual(db.prepare('SELECT count(*) AS n FROM t').get(), { n: 50 });
  });

  it('commits a trailing write with the next write that opens a commit: one commit for both', async () => {
    const { db, gc } = open();
    const insert = (v: string) => (d: typeof db) => d.prepare('INSERT INTO t VALUES (?)').run(v);
    const trailing = gc.write(insert('result'), true);
    // The next turn of the event loop: a plain write would have been committed by now.
    await new Promise((resolve) => setImmediate(resolve));
    const receipt = gc.write(insert('receipt'));
    await Promise.all([trailing, receipt]);
    assert.equal(gc.stats.commits, 1);
    assert.deepEqual(db.prepare('SELECT v FROM t ORDER BY v').pluck().all(), ['receipt', 'result']);
  });

  it('commits a trailing write alone when no other write comes', async () => {
    const { db, gc } = open();
    await gc.write((d) => d.prepare('INSERT INTO t VALUES (?)').run('alone'), true);
    assert.equal(gc.stats.commits, 1);
    assert.deepEqual(db.prepare('SELECT v FROM t').pluck().all(), ['alone']);
  });

  it('rolls back only the write that failed; its neighbours in the batch commit', async () => {
    const { db, gc } = open();
    const ins = (v: string) => gc.write((d) => d.prepare('INSERT INTO t VALUES (?)').run(v));
    const results = await Promise.allSettled([ins('a'), ins('a'), ins('b')]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'rejected', 'fulfilled'],
    );
    assert.deepEqual(db.prepare('SELECT v FROM t ORDER BY v').pluck().all(), ['a', 'b']);
  });

  it('refuses writes after close, having flushed the pending ones', async () => {
    const { db, gc } = open();
    const pending = gc.write((d) => d.prepare('INSERT INTO t VALUES (?)').run('last'));
    gc.close();
    await pending;
    await assert.rejects(
      gc.write(() => 1),
      /store is closed/,
    );
    assert.deepEqual(db.prepare('SELECT v FROM t').pluck().all(), ['last']);
  });
});
