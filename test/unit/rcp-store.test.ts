import assert from 'node:assert/strict';
import type { Store } from '../../store/store.ts';
import { openTestStore, removeTestStore } from '../support/test-store.ts';
import { acceptedInsOids } from '../../connectors/identity-writer.ts';
import { DOCUMENTS_OUT, type ValidatedDocument } from '../../store/rcp.ts';
import { formContent, meetingData, ppsContent } from '../fixtures/documents/rcp-store.ts';

const actor = { login: 'dr-rcp', role: 'operator', source: '127.0.0.1' };
const NOW = Date.UTC(2026, 0, 12, 15);

describe('RCP and PPS store', () => {
  let dir: string;
  let store: Store;

  beforeEach(() => ({ dir, store } = openTestStore()));
  afterEach(() => removeTestStore({ dir, store }));

  const patient = async (qualified: boolean, ipp = 'IPP-1'): Promise<number> =>
    (
      await store.write.vigilance.applyIdentity(
        {
          birthName: 'PAT-TEST',
          givenNames: ['CAMILLE'],
          firstGivenName: 'CAMILLE',
          birthDate: '19790328',
          sex: 'F',
          reliability: qualified ? 'QUAL' : 'PROV',
          ins: {
            matricule: '279035121518989',
            oid: '1.2.250.1.213.1.4.10',
            status: qualified ? 'QUAL' : 'PROV',
          },
          identifiers: [{ finess: '310000001', ipp }],
        },
        { messageId: null, insOids: acceptedInsOids({ acceptTestIns: true }) },
      )
    ).patientId!;

  /** A draft RCP form of the patient at the meeting, with the shared fixture's content. */
  const draftForm = (patientId: number, meetingId: number) =>
    store.write.rcp.create('frcp', { patientId, meetingId, content: formContent }, actor, NOW);

  const outboxDocument = (outboxId: number): ValidatedDocument =>
    JSON.parse(store.outbox.row(outboxId)!.content.toString()) as ValidatedDocument;

  it('validating a form writes its outbox row in the same transaction, with the patient and the meeting', async () => {
    const patientId = await patient(true);
    const meeting = await store.write.rcp.createMeeting(meetingData, actor, NOW);
    const form = await draftForm(patientId, meeting.id);
    assert.deepEqual(form, { id: form.id, status: 'draft', version: 1 });
    assert.equal(store.outbox.waitingCount(DOCUMENTS_OUT), 0, 'a draft sends nothing');
    const done = await store.write.rcp.validate('frcp', form.id, actor, NOW + 1000);
    assert.equal(done.status, 'validated');
    const row = store.outbox.row(done.outboxId)!;
    assert.equal(row.channel, DOCUMENTS_OUT);
    assert.equal(row.owner, '310000001');
    assert.deepEqual(row.meta, {
      documentKind: 'frcp',
      documentId: form.id,
      setId: `FRCP-${form.id}`,
      version: 1,
      patientId,
    });
    const doc = outboxDocument(done.outboxId);
    assert.deepEqual(doc.patient.ins, { matricule: '279035121518989', oid: '1.2.250.1.213.1.4.10' });
    assert.deepEqual(doc.patient.identifiers, [{ finess: '310000001', ipp: 'IPP-1' }]);
    assert.equal(doc.meeting!.committee.name, 'Sein');
    assert.equal(doc.content.question, formContent.question);
    assert.equal(doc.mesAllowed, true);
    assert.equal(store.rcp.document('frcp', form.id)!.outboxId, done.outboxId);
    const acts = store.audit.search({ actor: 'dr-rcp' }, {}).items.map((r) => r.action);
    assert.deepEqual(acts.sort(), ['frcp-create', 'frcp-validate', 'rcp-meeting-create']);
  });

  it('a failed validation leaves neither the status nor an outbox row', async () => {
    const patientId = await patient(true);
    const meeting = await store.write.rcp.createMeeting(meetingData, actor, NOW);
    const form = await draftForm(patientId, meeting.id);
    await store.write.rcp.validate('frcp', form.id, actor, NOW);
    await assert.rejects(store.write.rcp.validate('frcp', form.id, actor, NOW), { code: 'RCP_NOT_DRAFT' });
    assert.equal(store.outbox.waitingCount(DOCUMENTS_OUT), 1);
  });

  it('a correction after validation is the next version of the same set, replacing the first', async () => {
    const patientId = await patient(true);
    const meeting = await store.write.rcp.createMeeting(meetingData, actor, NOW);
    const v1 = await draftForm(patientId, meeting.id);
    await store.write.rcp.validate('frcp', v1.id, actor, NOW);
    const corrected = { ...formContent, question: 'Question corrigée ?' };
    const correct = () =>
      store.write.rcp.update(
        'frcp',
        v1.id,
        { patientId, meetingId: meeting.id, content: corrected },
        actor,
        NOW,
      );
    const v2 = await correct();
    assert.equal(v2.version, 2);
    assert.notEqual(v2.id, v1.id);
    assert.equal(store.rcp.document('frcp', v1.id)!.content.question, formContent.question, 'version 1 kept');
    await assert.rejects(correct(), { code: 'RCP_NOT_LATEST' });
    const done = await store.write.rcp.validate('frcp', v2.id, actor, NOW);
    const doc = outboxDocument(done.outboxId);
    assert.equal(doc.version, 2);
    assert.equal(doc.setId, `FRCP-${v1.id}`);
    assert.deepEqual(doc.replaces, { documentId: v1.id, version: 1 });
    assert.deepEqual(
      store.rcp.versions('frcp', v2.id).map((d) => [d.version, d.status]),
      [
        [1, 'validated'],
        [2, 'validated'],
      ],
    );
  });

  it('Mon espace santé only for a qualified INS and no opposition; an unqualified INS never leaves the store', async () => {
    const meeting = await store.write.rcp.createMeeting(meetingData, actor, NOW);
    const send = async (patientId: number) => {
      const f = await draftForm(patientId, meeting.id);
      return outboxDocument((await store.write.rcp.validate('frcp', f.id, actor, NOW)).outboxId);
    };
    const unqualified = await send(await patient(false, 'IPP-2'));
    assert.equal(unqualified.mesAllowed, false);
    assert.equal(unqualified.patient.ins, null);
    const opposed = await patient(true, 'IPP-3');
    await store.write.rcp.setOpposition(opposed, 'mes', true, actor, NOW);
    assert.equal(store.rcp.hasOpposition(opposed), true);
    assert.equal((await send(opposed)).mesAllowed, false);
    await store.write.rcp.setOpposition(opposed, 'mes', false, actor, NOW);
    assert.equal((await send(opposed)).mesAllowed, true);
  });

  it('stores and validates a PPS; refuses incomplete input with the missing fields named', async () => {
    const patientId = await patient(true);
    const pps = await store.write.rcp.create('pps', { patientId, content: ppsContent }, actor, NOW);
    const done = await store.write.rcp.validate('pps', pps.id, actor, NOW);
    assert.equal(outboxDocument(done.outboxId).kind, 'pps');
    await assert.rejects(
      store.write.rcp.create('frcp', { patientId, content: { question: 'q' } }, actor, NOW),
      {
        code: 'RCP_INVALID',
        message: /meetingId, clinicalSummary, diagnosis, proposal, referringPhysician/,
      },
    );
    await assert.rejects(store.write.rcp.create('pps', { patientId: 999, content: ppsContent }, actor, NOW), {
      code: 'RCP_UNKNOWN',
    });
  });

  it('imports forms produced elsewhere: each validated, a second import of the same form refused', async () => {
    const patientId = await patient(true);
    const meeting = await store.write.rcp.createMeeting(meetingData, actor, NOW);
    const item = { patientId, meetingId: meeting.id, content: formContent, externalId: 'DCC-X-42' };
    const bad = { patientId, meetingId: meeting.id, content: {}, externalId: 'DCC-X-43' };
    const results = await store.write.rcp.importForms([item, bad, item], actor, NOW);
    assert.equal(results[0]!.status, 'validated');
    assert.equal(results[1]!.error!.code, 'RCP_INVALID');
    assert.equal(results[2]!.error!.code, 'RCP_ALREADY_IMPORTED');
    assert.equal(store.outbox.waitingCount(DOCUMENTS_OUT), 1);
  });

  it('lists sessions by date and committee', async () => {
    await store.write.rcp.createMeeting(meetingData, actor, NOW);
    await store.write.rcp.createMeeting(
      { ...meetingData, date: '2026-02-03', committee: { id: 'x', name: 'Digestif' } },
      actor,
      NOW,
    );
    assert.deepEqual(
      store.rcp.meetings('2026-01-01', '2027-01-01').map((m) => [m.date, m.committee]),
      [
        ['2026-02-03', 'Digestif'],
        ['2026-01-12', 'Sein'],
      ],
    );
    assert.equal(store.rcp.meetings('2026-01-01', '2027-01-01', 'Sein').length, 1);
  });

  it('yearly statistics: sessions by date, forms once per set, distinct patients presented, PPS', async () => {
    const a = await patient(true, 'IPP-A');
    const b = await patient(false, 'IPP-B');
    const jan = await store.write.rcp.createMeeting({ ...meetingData, date: '2024-01-10' }, actor, NOW);
    const mar = await store.write.rcp.createMeeting(
      { ...meetingData, date: '20240305140000+0100' },
      actor,
      NOW,
    );
    await store.write.rcp.createMeeting({ ...meetingData, date: '2025-01-10' }, actor, NOW);
    const first = await draftForm(a, jan.id);
    await store.write.rcp.validate('frcp', first.id, actor, NOW);
    await store.write.rcp.update(
      'frcp',
      first.id,
      { patientId: a, meetingId: jan.id, content: formContent },
      actor,
      NOW,
    );
    await draftForm(b, jan.id);
    await draftForm(a, mar.id);
    await store.write.rcp.create('pps', { patientId: a, content: ppsContent }, actor, Date.UTC(2024, 5, 1));
    const f = store.stats.yearly(2024).figures;
    assert.equal(f.rcpSessions.total, 2);
    assert.deepEqual(f.rcpSessions.monthly.slice(0, 3), [1, 0, 1]);
    assert.equal(f.rcpForms.total, 3, 'a corrected form is still one form');
    assert.deepEqual(f.patientsPresented.monthly.slice(0, 3), [2, 0, 1]);
    assert.equal(f.patientsPresented.total, 2);
    assert.equal(f.pps.monthly[5], 1);
  });
});
