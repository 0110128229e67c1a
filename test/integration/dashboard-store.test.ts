import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { Store } from '../../store/store.ts';
import { main } from '../../bin/cli.ts';
import { tempDir } from '../support/engine-harness.ts';

describe('dashboard store: audit chain, sessions, message search, stats', () => {
  let dir: string;
  let store: Store;
  beforeEach(() => {
    dir = tempDir('onco-dash-store-');
    store = new Store({ dataDir: dir });
  });
  afterEach(() => {
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const receive = (
    meta: Record<string, unknown>,
    extra: { owner?: string; channel?: string; now?: number } = {},
  ) =>
    store.journal.receive({
      channel: extra.channel ?? 'c1',
      content: Buffer.from('x'),
      contentType: 'text/plain',
      meta,
      sender: null,
      owner: extra.owner ?? null,
      dedupKey: null,
      rejected: null,
      destinations: ['out'],
      now: extra.now ?? Date.now(),
    }).messageId;

  it('refuses UPDATE and DELETE of audit rows, and verify() names an edited row', async () => {
    for (let i = 0; i < 5; i++) store.audit.record({ actor: 'alice', action: 'patient-read', patientId: i });
    assert.deepEqual({ ...store.audit.verify(), head: undefined }, { ok: true, rows: 5, head: undefined });
    assert.throws(
      () => store.db.prepare("UPDATE audit SET actor = 'mallory' WHERE id = 3").run(),
      /append-only/,
    );
    assert.throws(() => store.db.prepare('DELETE FROM audit WHERE id = 3').run(), /append-only/);
    store.close();

    // Someone with the file and a SQLite shell drops the trigger and edits history.
    const raw = new Database(path.join(dir, 'onco-relay.db'));
    raw.exec("DROP TRIGGER audit_no_update; UPDATE audit SET actor = 'mallory' WHERE id = 3");
    raw.close();
    store = new Store({ dataDir: dir });
    const v = store.audit.verify();
    assert.equal(v.ok, false);
    assert.equal(v.ok === false && v.firstBadId, 3);
    assert.match(v.ok === false ? v.reason : '', /changed/);
    store.close();
    assert.equal(await main(['audit', 'verify', '--data', dir]), 1, 'onco-relay audit verify exits 1');
    store = new Store({ dataDir: dir });
  });

  it('verify() names the first row after a deleted one', () => {
    for (let i = 0; i < 4; i++) store.audit.record({ actor: 'bob', action: 'login' });
    store.close();
    const raw = new Database(path.join(dir, 'onco-relay.db'));
    raw.exec('DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE id = 2');
    raw.close();
    store = new Store({ dataDir: dir });
    const v = store.audit.verify();
    assert.equal(v.ok === false && v.firstBadId, 2);
  });

  it('searches the audit trail per actor and per patient, newest first, in keyset pages', () => {
    for (let i = 0; i < 5; i++)
      store.audit.record({ actor: i % 2 ? 'alice' : 'bob', action: 'patient-read', patientId: 7 });
    const first = store.audit.search({ patientId: 7 }, { limit: 2 });
    assert.deepEqual(
      first.items.map((r) => r.id),
      [5, 4],
    );
    const second = store.audit.search({ patientId: 7 }, { limit: 2, after: first.next });
    assert.deepEqual(
      second.items.map((r) => r.id),
      [3, 2],
    );
    assert.deepEqual(
      store.audit.search({ actor: 'alice' }).items.map((r) => r.id),
      [4, 2],
    );
  });

  it('expires a session after its idle time and never stores the token', () => {
    store.accounts.add({ login: 'alice', role: 'viewer', password: 'pw-alice-1' });
    const policy = { idleMs: 1000, maxAgeMs: 10_000 };
    const { token } = store.sessions.create('alice', '127.0.0.1', 0);
    assert.equal(store.sessions.find(token, policy, 500)?.login, 'alice');
    assert.equal(
      store.db.prepare('SELECT count(*) FROM sessions WHERE token_hash = ?').pluck().get(token),
      0,
    );
    assert.equal(store.sessions.find(token, policy, 1600), null);
  });

  it('finds messages by file name words, channel, owner and time, newest first', () => {
    const a = receive({ fileName: 'ADT_A28_dupont.hl7' }, { owner: '330000001', now: 1000 });
    receive({ fileName: 'ORU_R01.hl7' }, { owner: '330000002', now: 2000 });
    const c = receive(
      { fileName: 'adt_a28_martin.hl7', controlId: 'MSG00042' },
      { channel: 'c2', now: 3000 },
    );
    const ids = (f: Parameters<Store['messageSearch']['search']>[0]) =>
      store.messageSearch.search(f).items.map((m) => m.id);
    assert.deepEqual(ids({ text: 'adt a28' }), [c, a]);
    assert.deepEqual(ids({ text: 'msg0004' }), [c]);
    assert.deepEqual(ids({ text: 'adt', channel: 'c1' }), [a]);
    assert.deepEqual(ids({ owner: '330000001' }), [a]);
    assert.deepEqual(ids({ from: 1500, to: 2500 }).length, 1);
    const page = store.messageSearch.search({}, { limit: 2 });
    assert.deepEqual(
      store.messageSearch.search({}, { limit: 2, after: page.next }).items.map((m) => m.id),
      [a],
    );
  });

  it('reports zero and "not available" for yearly figures whose source does not exist yet', () => {
    store.accounts.add({ login: 'alice', role: 'viewer', password: 'pw-alice-1' }, Date.UTC(2025, 2, 3));
    store.audit.record({ actor: 'alice', action: 'login' }, Date.UTC(2025, 4, 1));
    const s = store.stats.yearly(2025);
    assert.equal(s.figures.newUsers.total, 1);
    assert.equal(s.figures.newUsers.monthly[2], 1);
    assert.equal(s.figures.activeUsers.monthly[4], 1);
    assert.deepEqual(s.figures.rcpSessions, { total: 0, monthly: Array(12).fill(0), available: false });
  });
});
