// Delivery keeps up with intake (issue 14 item 6): a file writer takes its queue in batches — files
// fsynced, the folder fsynced once, the SENT marks of the batch journaled in one write — while the
// delivery rules stay: a failed file of a batch fails alone, and an ordered queue stays ordered
// (nothing behind a failed head is written before it).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Store } from '../../store/store.ts';
import { startEngine, tempDir, until, type Harness } from '../support/engine-harness.ts';
import { journalOne } from '../support/journaled.ts';

const COUNT = 120;

/** Journals `names.length` processed messages of channel `batch`, queued for its destination `out`. */
async function queue(dataDir: string, names: string[]): Promise<number[]> {
  const store = new Store({ dataDir });
  const ids: number[] = [];
  for (const name of names)
    ids.push(
      await journalOne(store, 'batch', {
        content: Buffer.from(`file ${name}\n`),
        meta: { name },
        processed: true,
      }),
    );
  await store.close();
  return ids;
}

const channel = (queue: 'ordered' | 'parallel') => ({
  id: 'batch',
  source: { type: 'folder', path: 'inbox' },
  destinations: [
    {
      name: 'out',
      type: 'file-writer',
      path: 'out',
      fileName: '{meta.name}',
      queue,
      retry: { maxAttempts: 5, initialDelayMs: 1500, jitter: 0 },
    },
  ],
});

describe('file writer batches (real engine)', function () {
  this.timeout(60_000);
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.stop();
    h = undefined;
  });

  it('writes a queue of files and journals their SENT marks in a handful of writes, not one per file', async () => {
    const dataDir = tempDir('onco-batch-');
    const names = Array.from({ length: COUNT }, (_, i) => `f${String(i).padStart(4, '0')}.txt`);
    const ids = await queue(dataDir, names);
    h = await startEngine({ channels: [channel('ordered')], dataDir, start: false });
    const { journal, writer } = h.engine.store;
    const writesBefore = writer.stats.writes;
    await h.engine.start();
    await until(() => ids.every((id) => journal.deliveries(id)[0]!.status === 'SENT'), 'every delivery SENT');
    const writes = writer.stats.writes - writesBefore;
    assert.ok(writes < COUNT / 4, `${writes} writes journaled ${COUNT} deliveries`);
    assert.deepEqual(fs.readdirSync(path.join(dataDir, 'out')).sort(), names);
    for (const name of names)
      assert.equal(fs.readFileSync(path.join(dataDir, 'out', name), 'utf8'), `file ${name}\n`);
  });

  it('fails a file of a parallel batch alone: the others are written and SENT', async () => {
    const dataDir = tempDir('onco-batch-');
    const names = Array.from({ length: 20 }, (_, i) => (i === 6 ? 'blocker' : `p${i}.txt`));
    const ids = await queue(dataDir, names);
    // A non-empty directory where the file should go: the rename fails, which a retry may cure.
    fs.mkdirSync(path.join(dataDir, 'out', 'blocker', 'inside'), { recursive: true });
    h = await startEngine({ channels: [channel('parallel')], dataDir });
    const { journal } = h.engine.store;
    const blocked = ids[6]!;
    await until(() => journal.delivery(journal.deliveries(blocked)[0]!.id)!.attempts === 1, 'a failed try');
    for (const id of ids.filter((id) => id !== blocked))
      await until(() => journal.deliveries(id)[0]!.status === 'SENT', `message ${id} SENT`);
    const failed = journal.deliveries(blocked)[0]!;
    assert.equal(failed.status, 'QUEUED');
    assert.match(failed.lastError!, /^FILE_WRITE_FAILED: /);
  });

  it('keeps an ordered queue ordered: nothing behind a failed file is written before it', async () => {
    const dataDir = tempDir('onco-batch-');
    const names = Array.from({ length: 20 }, (_, i) => (i === 6 ? 'blocker' : `o${i}.txt`));
    const ids = await queue(dataDir, names);
    fs.mkdirSync(path.join(dataDir, 'out', 'blocker', 'inside'), { recursive: true });
    h = await startEngine({ channels: [channel('ordered')], dataDir });
    const { journal } = h.engine.store;
    const delivery = (id: number) => journal.deliveries(id)[0]!;
    // The head failed once and waits for its retry (1.5 s): what the batch did is settled.
    await until(() => delivery(ids[6]!).attempts === 1, 'the failed head');
    assert.deepEqual(
      ids.slice(0, 6).map((id) => delivery(id).status),
      Array(6).fill('SENT'),
    );
    for (const id of ids.slice(7)) {
      const d = delivery(id);
      assert.deepEqual([d.status, d.attempts, d.starts], ['QUEUED', 0, 0], `message ${id} not attempted`);
    }
    assert.deepEqual(
      fs.readdirSync(path.join(dataDir, 'out')).sort(),
      ['blocker', ...names.slice(0, 6)].sort(),
    );
    fs.rmSync(path.join(dataDir, 'out', 'blocker'), { recursive: true });
    await until(() => ids.every((id) => delivery(id).status === 'SENT'), 'the queue drained after the fix');
    assert.deepEqual(fs.readdirSync(path.join(dataDir, 'out')).sort(), [...names].sort());
  });
});
