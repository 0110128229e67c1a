import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Store } from '../../store/store.ts';
import { tempDir } from '../support/engine-harness.ts';

describe('journal', () => {
  const msg = (content: string, extra: object = {}) => ({
    channel: 'c',
    content: Buffer.from(content),
    contentType: 'text/plain',
    meta: { fileName: 'f.txt' },
    sender: 'lab1',
    owner: '310000002',
    dedupKey: null,
    rejected: null,
    destinations: ['a', 'b'],
    now: Date.now(),
    ...extra,
  });

  it('stores a message, its raw content and one waiting delivery per destination in one write', () => {
    const s = new Store({ dataDir: ':memory:' });
    const { messageId } = s.journal.receive(msg('hi'));
    assert.equal(s.journal.message(messageId)?.status, 'RECEIVED');
    assert.equal(s.journal.content(messageId, 'raw')?.content.toString(), 'hi');
    assert.deepEqual(
      s.journal.deliveries(messageId).map((d) => [d.destination, d.status]),
      [
        ['a', 'WAITING'],
        ['b', 'WAITING'],
      ],
    );
  });

  it('records a rejected input with its reason and content, with no delivery and no dedup key', () => {
    const s = new Store({ dataDir: ':memory:' });
    const r1 = s.journal.receive(msg('bad', { rejected: 'not HL7', dedupKey: 'k' }));
    const r2 = s.journal.receive(msg('bad', { dedupKey: 'k' }));
    assert.equal(s.journal.message(r1.messageId)?.status, 'REJECTED');
    assert.equal(s.journal.message(r1.messageId)?.error, 'not HL7');
    assert.deepEqual(s.journal.deliveries(r1.messageId), []);
    assert.equal(r2.duplicateOf, undefined, 'a corrected resend must go through');
  });

  it('prunes finished messages older than the cut-off and gives the disk space back', () => {
    const dir = tempDir();
    const s = new Store({ dataDir: dir, writer: 'inline' });
    const old = Date.now() - 100 * 86_400_000;
    const big = 'x'.repeat(64 * 1024);
    for (let i = 0; i < 200; i++) {
      const { messageId } = s.journal.receive(msg(`${big}${i}`, { now: old, destinations: [] }));
      s.journal.processed({ messageId, status: 'FILTERED', now: old }, 'all');
    }
    const pending = s.journal.receive(msg('still waiting', { now: old }));
    s.reclaimSpace();
    const file = path.join(dir, 'onco-relay.db');
    const before = fs.statSync(file).size;
    let pruned = 0;
    for (let n; (n = s.journal.prune(Date.now() - 90 * 86_400_000, 50)) > 0;) pruned += n;
    s.reclaimSpace();
    const after = fs.statSync(file).size;
    assert.equal(pruned, 200);
    assert.ok(s.journal.message(pending.messageId), 'unfinished work is never pruned');
    assert.ok(after < before / 4, `file should shrink: ${before} → ${after} bytes`);
    s.close();
  });
});
