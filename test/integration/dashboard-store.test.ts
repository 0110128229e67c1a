import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { Store } from '../../store/store.ts';
import { acceptedInsOids } from '../../connectors/identity-writer.ts';
import { main } from '../../bin/cli.ts';
import { tempDir } from '../support/engine-harness.ts';
import { MessageIndexer, searchMessages } from '../../channels/message-index.ts';
import type { MessageFilter } from '../../store/message-search.ts';
import { a28, a40, insOf, type PamPatient } from '../support/pam.ts';
import { basic, FINESS_A, startDashboard } from './dashboard-harness.ts';

const patientA: PamPatient = {
  ipp: 'IPP-0',
  finess: FINESS_A,
  birthName: 'DUPONT',
  given: 'JEAN',
  birthDate: '19610412',
  sex: 'M',
};

describe('dashboard store: audit chain, sessions, message search, stats', () => {
  let dir: string;
  let store: Store;
  beforeEach(() => {
    dir = tempDir('onco-dash-store-');
    store = new Store({ dataDir: dir, writer: 'inline' });
  });
  afterEach(() => {
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const receive = (
    meta: Record<string, unknown>,
    extra: {
      owner?: string;
      channel?: string;
      now?: number;
      content?: string;
      sender?: string;
      rejected?: string;
    } = {},
  ) =>
    store.journal.receive({
      channel: extra.channel ?? 'c1',
      content: Buffer.from(extra.content ?? 'x'),
      contentType: 'text/plain',
      meta,
      sender: extra.sender ?? null,
      owner: extra.owner ?? null,
      dedupKey: null,
      rejected: extra.rejected ?? null,
      destinations: ['out'],
      now: extra.now ?? Date.now(),
    }).messageId;
  const silent = { debug() {}, info() {}, warn() {}, error() {} };
  /** Runs the background indexer until the journal is indexed. */
  const indexAll = async (batch = 200) => {
    const indexer = new MessageIndexer(store, { log: silent, batch });
    while ((await indexer.indexBatch()) > 0);
  };
  const found = (f: MessageFilter, limit?: number) =>
    searchMessages(store, f, { limit }).items.map((m) => m.id);

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
    store = new Store({ dataDir: dir, writer: 'inline' });
    const v = store.audit.verify();
    assert.equal(v.ok, false);
    assert.equal(v.ok === false && v.firstBadId, 3);
    assert.match(v.ok === false ? v.reason : '', /changed/);
    store.close();
    assert.equal(await main(['audit', 'verify', '--data', dir]), 1, 'onco-relay audit verify exits 1');
    store = new Store({ dataDir: dir, writer: 'inline' });
  });

  it('verify() names the first row after a deleted one', () => {
    for (let i = 0; i < 4; i++) store.audit.record({ actor: 'bob', action: 'login' });
    store.close();
    const raw = new Database(path.join(dir, 'onco-relay.db'));
    raw.exec('DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE id = 2');
    raw.close();
    store = new Store({ dataDir: dir, writer: 'inline' });
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

  it('finds messages by file name words, channel, owner and time, newest first', async () => {
    const a = receive({ fileName: 'ADT_A28_dupont.hl7' }, { owner: '330000001', now: 1000 });
    receive({ fileName: 'ORU_R01.hl7' }, { owner: '330000002', now: 2000 });
    const c = receive(
      { fileName: 'adt_a28_martin.hl7', controlId: 'MSG00042' },
      { channel: 'c2', now: 3000 },
    );
    const ids = (f: MessageFilter) => found(f);
    assert.deepEqual(ids({ text: 'adt a28' }), [c, a]);
    assert.deepEqual(ids({ text: 'msg0004' }), [c]);
    assert.deepEqual(ids({ text: 'adt', channel: 'c1' }), [a]);
    assert.deepEqual(ids({ owner: '330000001' }), [a]);
    assert.deepEqual(ids({ from: 1500, to: 2500 }).length, 1);
    await indexAll();
    assert.deepEqual(ids({ text: 'adt a28' }), [c, a]);
    assert.deepEqual(ids({ text: 'msg0004' }), [c]);
    const page = store.messageSearch.search({}, { limit: 2 });
    assert.deepEqual(
      store.messageSearch.search({}, { limit: 2, after: page.next }).items.map((m) => m.id),
      [a],
    );
  });

  const patient = (ipp: string, insBase?: string): PamPatient => ({
    ...patientA,
    ipp,
    ...(insBase ? { insBase } : {}),
  });
  it('finds a message by MSH-10, IPP, INS, file name and sender, refused ones too, never by name', async () => {
    const accepted = receive(
      { fileName: 'identites-0412.hl7' },
      { content: a28(patient('IPP-7781', '1610499123456'), 'CTRL-5501'), sender: 'chu-demo' },
    );
    const refused = receive(
      { fileName: 'broken.hl7' },
      {
        content: a28(patient('IPP-9902'), 'CTRL-5502').replace('19610412', ''),
        sender: 'clinique-sud',
        rejected: 'IDENTITY_NO_BIRTH_DATE: PID-7 is empty',
      },
    );
    receive({ fileName: 'other.hl7' }, { content: 'not hl7 at all' });
    const every = () => {
      assert.deepEqual(found({ text: 'CTRL-5501' }), [accepted]);
      assert.deepEqual(found({ text: 'ctrl 5502' }), [refused]);
      assert.deepEqual(found({ text: 'IPP-7781' }), [accepted]);
      assert.deepEqual(found({ text: 'ipp-99' }), [refused]);
      assert.deepEqual(found({ text: insOf('1610499123456') }), [accepted]);
      assert.deepEqual(found({ text: 'identites-0412' }), [accepted]);
      assert.deepEqual(found({ text: 'clinique-sud' }), [refused]);
      assert.deepEqual(found({ text: 'IDENTITY_NO_BIRTH_DATE' }), [refused]);
      assert.deepEqual(found({ text: 'ADT A28' }), [refused, accepted]);
      assert.deepEqual(found({ text: 'dupont' }), [], 'patient names are never indexed');
      assert.deepEqual(found({ text: 'jean' }), []);
    };
    // Just received: the receive path wrote no index row, the search reads the messages past the mark.
    assert.equal(store.db.prepare('SELECT count(*) FROM message_text').pluck().get(), 0);
    every();
    await indexAll();
    assert.equal(store.messageSearch.highWater(), refused + 1);
    assert.deepEqual(
      store.messageSearch.search({ text: 'CTRL-5501' }).items.map((m) => m.id),
      [accepted],
    );
    every();
  });

  it('indexes in the background past a durable mark: after a restart it resumes, no row twice', async () => {
    const ids = Array.from({ length: 5 }, (_, i) =>
      receive({ fileName: `batch-${i}.hl7` }, { content: a28(patient(`IPP-${i}`), `RESUME-${i}`) }),
    );
    const indexer = new MessageIndexer(store, { log: silent, batch: 2 });
    assert.equal(await indexer.indexBatch(), 2);
    store.close();
    store = new Store({ dataDir: dir, writer: 'inline' });
    assert.equal(store.messageSearch.highWater(), ids[1]);
    await indexAll(2);
    assert.equal(store.messageSearch.highWater(), ids[4]);
    assert.equal(store.db.prepare('SELECT count(*) FROM message_text').pluck().get(), 5);
    assert.deepEqual(
      store.messageSearch.search({ text: 'resume' }).items.map((m) => m.id),
      [...ids].reverse(),
    );
    assert.deepEqual(
      store.messageSearch.search({ text: 'resume 3' }).items.map((m) => m.id),
      [ids[3]],
    );
  });

  it('?patient= finds the messages the identity decisions link to a patient and to those merged into it', async () => {
    const one = receive({}, { content: a28(patient('IPP-1'), 'PAT0001') });
    const two = receive({}, { content: a28({ ...patient('IPP-2'), birthName: 'MARTIN' }, 'PAT0002') });
    const three = receive({}, { content: a40(patient('IPP-1'), 'IPP-2', 'PAT0003') });
    receive({}, { content: 'unrelated' });
    const identity = (ipp: string, birthName: string) => ({
      birthName,
      firstGivenName: 'JEAN',
      birthDate: '1961-04-12',
      sex: 'M',
      identifiers: [{ finess: FINESS_A, ipp }],
    });
    const first = store.vigilance.applyIdentity(identity('IPP-1', 'DUPONT'), {
      messageId: one,
      insOids: acceptedInsOids(),
    });
    const second = store.vigilance.applyIdentity(identity('IPP-2', 'MARTIN'), {
      messageId: two,
      insOids: acceptedInsOids(),
    });
    assert.notEqual(first.patientId, second.patientId);
    assert.deepEqual(found({ patient: first.patientId! }), [one]);
    assert.deepEqual(found({ patient: second.patientId! }), [two]);
    store.patients.merge(first.patientId!, second.patientId!, { messageId: three });
    assert.deepEqual(found({ patient: first.patientId! }), [three, two, one]);
    assert.deepEqual(found({ patient: first.patientId! }, 2), [three, two]);
    assert.deepEqual(found({ patient: first.patientId!, text: 'PAT0002' }), [two]);
  });

  it('reports yearly figures by month; RCP figures are zero, and available, on a store without sessions', () => {
    store.accounts.add({ login: 'alice', role: 'viewer', password: 'pw-alice-1' }, Date.UTC(2025, 2, 3));
    store.audit.record({ actor: 'alice', action: 'login' }, Date.UTC(2025, 4, 1));
    const s = store.stats.yearly(2025);
    assert.equal(s.figures.newUsers.total, 1);
    assert.equal(s.figures.newUsers.monthly[2], 1);
    assert.equal(s.figures.activeUsers.monthly[4], 1);
    assert.deepEqual(s.figures.rcpSessions, { total: 0, monthly: Array(12).fill(0), available: true });
  });
});

describe('GET /api/messages on a running engine', function () {
  this.timeout(30_000);
  it('honours limit, text (MSH-10, IPP, file name) and ?patient=, and audits the patient search', async () => {
    const d = await startDashboard();
    try {
      const { engine } = d.h;
      const ids: number[] = [];
      for (let i = 0; i < 4; i++) {
        const r = await engine.dispatch('drop', {
          content: Buffer.from(a28({ ...patientA, ipp: `API-IPP-${i}` }, `APICTL${i}`)),
          meta: { fileName: `api-${i}.hl7` },
          owner: FINESS_A,
        });
        ids.push(r.messageId);
      }
      const linked = await engine.store.write.vigilance.applyIdentity(
        {
          birthName: 'DUPONT',
          firstGivenName: 'JEAN',
          birthDate: '1961-04-12',
          sex: 'M',
          identifiers: [{ finess: FINESS_A, ipp: 'API-IPP-1' }],
        },
        { messageId: ids[1], insOids: acceptedInsOids() },
      );
      const get = async (query: string) => {
        const res = await fetch(`${d.base}/api/messages?${query}`, {
          headers: { authorization: basic('viewer') },
        });
        assert.equal(res.status, 200, await res.clone().text());
        const body = (await res.json()) as { items: Array<{ id: number }>; next: string | null };
        return { ids: body.items.map((m) => m.id), next: body.next };
      };
      const two = await get('limit=2');
      assert.deepEqual(two.ids, [ids[3], ids[2]]);
      assert.deepEqual((await get(`limit=2&after=${two.next}`)).ids, [ids[1], ids[0]]);
      assert.deepEqual((await get('text=APICTL2')).ids, [ids[2]]);
      assert.deepEqual((await get('text=API-IPP-3')).ids, [ids[3]]);
      assert.deepEqual((await get('text=api-0.hl7')).ids, [ids[0]]);
      assert.deepEqual((await get(`patient=${linked.patientId}`)).ids, [ids[1]]);
      const bad = await fetch(`${d.base}/api/messages?limit=0`, {
        headers: { authorization: basic('viewer') },
      });
      assert.equal(bad.status, 400);
      const audited = engine.store.audit.search({ action: 'patient-messages' }).items;
      assert.deepEqual(
        audited.map((a) => [a.actor, a.patientId]),
        [['view1', linked.patientId]],
      );
    } finally {
      await d.stop();
    }
  });
});
