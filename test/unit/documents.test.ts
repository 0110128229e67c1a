// The documents store on a real SQLite file: reports read by the real readers, filed through the
// document writer's mapping; versions, duplicates, queryable findings and variants, the bytes kept
// as files; matching through the identity rules, waiting, automatic attachment, review, attach by hand.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Store } from '../../store/store.ts';
import { openTestStore, removeTestStore } from '../support/test-store.ts';
import type { FilingContext, FilingResult } from '../../store/documents.ts';
import { readReport, clinicalStepSchema } from '../../transformers/clinical-steps.ts';
import { readOptions } from '../../transformers/contract.ts';
import type { ReportKind } from '../../transformers/clinical-report.ts';
import { toDocumentInput } from '../../connectors/document-writer.ts';
import { acceptedInsOids } from '../../connectors/identity-writer.ts';
import type { IdentityStep } from '../../store/identity-filing.ts';
import { identity, ipp } from './identity-fixtures.ts';

const fixtures = path.resolve(import.meta.dirname, '../fixtures/clinical');
const kit = process.env.ONCO_ANS_KIT;
const stepOptions = readOptions(clinicalStepSchema, { acceptTestIns: true });
const insOids = acceptedInsOids({ acceptTestIns: true });

describe('documents store', () => {
  let dir: string;
  let store: Store;
  let messageId = 0;

  beforeEach(() => ({ dir, store } = openTestStore()));
  afterEach(() => removeTestStore({ dir, store }));

  const file = (
    content: Buffer,
    kind: ReportKind,
    options: { owner?: string | null; meta?: Record<string, string>; rules?: FilingContext['rules'] } = {},
  ): FilingResult => {
    const meta = options.meta ?? {};
    const report = readReport({ content, contentType: 'application/octet-stream', meta }, kind, stepOptions);
    const owner = options.owner === undefined ? '310000001' : options.owner;
    return store.documents.file(toDocumentInput(report, owner), {
      insOids,
      ...(options.rules ? { rules: options.rules } : {}),
      provenance: { messageId: ++messageId, channel: kind, fileName: meta.fileName ?? null, owner },
    });
  };
  const fixture = (name: string) => fs.readFileSync(path.join(fixtures, name));
  const camilleIdentity = (overrides: Parameters<typeof identity>[0] = {}) =>
    identity({
      birthName: 'FICTIF',
      givenNames: ['Camille'],
      firstGivenName: 'Camille',
      birthDate: '1979-03-28',
      sex: 'F',
      birthPlace: null,
      ...overrides,
    });
  const camille = (overrides: Parameters<typeof identity>[0] = {}) =>
    store.vigilance.applyIdentity(camilleIdentity(overrides), { messageId: ++messageId, insOids });

  it('files a report on the patient its IPP designates, with its findings queryable and its bytes in a file', () => {
    const { patientId } = camille({ identifiers: [ipp('IPP-000123', '310000001')] });
    const hprim = fixture('report.hpr');
    const result = file(hprim, 'pathology', { meta: { fileName: 'report.hpr' } });
    assert.equal(result.action, 'filed');
    assert.equal(result.rule, 'ipp-known', 'the HPRIM IPP is read under the sending account');
    assert.equal(result.patientId, patientId);

    const [adicap] = store.documents.findingsWith('adicap', 'BHDCA7G0');
    assert.equal(adicap?.documentId, result.documentId);
    assert.equal(store.documents.findingsWith('icdo3-morphology', '8140/3').length, 1);

    const original = store.documents.content(result.documentId, 'original')!;
    assert.ok(original.file.startsWith(path.join(dir, 'documents')), 'beside the database');
    assert.deepEqual(fs.readFileSync(original.file), hprim);
    const blobs = store.db
      .prepare(
        "SELECT COUNT(*) FROM document_versions WHERE typeof(text) = 'blob' OR typeof(patient) = 'blob'",
      )
      .pluck()
      .get();
    assert.equal(blobs, 0);
    const listed = store.documents.listOfPatient(patientId);
    assert.deepEqual(
      listed.map((d) => [d.id, d.kind, d.status, d.formatCode, d.source]),
      [[result.documentId, 'pathology', 'final', '60568-3', 'report.hpr']],
    );
  });

  it('keeps the bytes as blobs: the files of a filing rolled back go at the recovery sweep, filed ones stay', async () => {
    camille({ identifiers: [ipp('IPP-000123', '310000001')] });
    const filed = file(fixture('report.hpr'), 'pathology');
    const kept = store.documents.content(filed.documentId, 'original')!;
    assert.equal(kept.file, path.join(dir, 'documents', kept.sha256), 'a blob named by its digest');

    // A filing whose transaction never commits (a crash, a refusal): its bytes were placed first.
    const pdf = Buffer.concat([fixture('report.pdf'), Buffer.from('\n')]);
    assert.throws(() =>
      store.db.transaction(() => {
        file(pdf, 'pathology', { meta: { fileName: 'a.pdf', sidecar: fixture('report.json').toString() } });
        throw new Error('the commit never happens');
      })(),
    );
    const orphan = path.join(dir, 'documents', createHash('sha256').update(pdf).digest('hex'));
    assert.ok(fs.existsSync(orphan), 'placed before the commit');
    const swept = await store.documentFiles!.sweep((d) => store.documents.holdsBlob(d), { staging: true });
    assert.equal(swept, 1);
    assert.equal(fs.existsSync(orphan), false);
    assert.deepEqual(fs.readFileSync(kept.file), fixture('report.hpr'));
  });

  it('reads the documents of a data directory written before blobs: their shard folders moved at opening', async () => {
    camille({ identifiers: [ipp('IPP-000123', '310000001')] });
    const filed = file(fixture('report.hpr'), 'pathology');
    const { sha256 } = store.documents.content(filed.documentId, 'original')!;
    await store.close();
    // The layout of DocumentFiles: <data>/documents/ab/abcdef…, and a write it never finished.
    const documents = path.join(dir, 'documents');
    fs.mkdirSync(path.join(documents, sha256.slice(0, 2)));
    fs.renameSync(path.join(documents, sha256), path.join(documents, sha256.slice(0, 2), sha256));
    fs.writeFileSync(path.join(documents, sha256.slice(0, 2), `${sha256}.123.tmp`), 'half');

    store = openTestStore(dir).store;
    const read = store.documents.content(filed.documentId, 'original')!;
    assert.equal(read.file, path.join(documents, sha256));
    assert.deepEqual(fs.readFileSync(read.file), fixture('report.hpr'));
    assert.deepEqual(fs.readdirSync(documents).sort(), ['.staging', sha256]);
  });

  it('closes the molecular order a result answers, in the transaction that files it; an unknown order number files an ordinary result', async () => {
    const { patientId } = camille({ identifiers: [ipp('IPP-000123', '310000001')] });
    const order = await store.write.orders.create(
      {
        patientId,
        analysis: { code: '51969-4', display: 'Génétique moléculaire', system: '2.16.840.1.113883.6.1' },
        labFiness: '310000003',
        prescriber: { rpps: '10000000001', familyName: 'ONCOTEST' },
      },
      { login: 'oper1', role: 'operator', source: '127.0.0.1' },
      Date.now(),
    );
    const answering = Buffer.from(
      fixture('molecular-oru.hl7').toString('utf8').replaceAll('CMD-MOL-0007', order.orderNumber),
    );
    const result = file(answering, 'molecular', { owner: '310000003' });
    assert.equal(result.action, 'filed');
    assert.equal(result.orderClosed, order.orderNumber);
    const closed = store.orders.get(order.id)!;
    assert.equal(closed.status, 'resulted');
    assert.equal(closed.resultDocumentId, result.documentId);

    const ordinary = file(fixture('molecular-oru.hl7'), 'molecular', { owner: '310000003' });
    assert.equal(ordinary.action, 'filed');
    assert.equal(ordinary.orderClosed, undefined, 'CMD-MOL-0007 is no order of the DCC');
  });

  it('waits for an identity that is not there yet, and files itself on it when it arrives (no human act)', () => {
    const early = file(fixture('report.hpr'), 'pathology');
    assert.equal(early.action, 'waiting');
    assert.equal(early.patientId, null);
    assert.deepEqual(
      store.documents.listWaiting().items.map((d) => [d.id, d.match]),
      [[early.documentId, 'waiting']],
    );

    const { patientId } = camille({ identifiers: [ipp('IPP-000123', '310000001')] });
    const doc = store.documents.get(early.documentId)!;
    assert.equal(doc.patientId, patientId);
    assert.equal(doc.match, 'filed');
    assert.equal(doc.matchRule, 'ipp-known');
    assert.deepEqual(doc.events.at(-1)?.detail, { how: 'automatic', patientId });
    assert.equal(store.documents.listWaiting().items.length, 0);
  });

  /** A PAM FR event as the identity feed files it: one writer method, one transaction. */
  const pam = (step: IdentityStep) =>
    store.write.identityFiling.file({
      steps: [step],
      ctx: { messageId: ++messageId },
      rules: {},
      insOids,
      sourceReliability: null,
    });

  /** An A40 of establishment 310000001: Camille under `survivorIpp` absorbs `mergedIpp`. */
  const a40 = (survivorIpp: string, mergedIpp: string) =>
    pam({
      event: 'A40',
      kind: 'merge',
      survivor: camilleIdentity({ identifiers: [ipp(survivorIpp, '310000001')] }),
      survivorRef: ipp(survivorIpp, '310000001'),
      mergedRef: ipp(mergedIpp, '310000001'),
    });

  it('files a waiting report when an A47 gives its patient the IPP it names (no human act)', async () => {
    const { patientId } = camille({ identifiers: [ipp('IPP-OLD', '310000001')] });
    // Traits alone never file here: the report waits for the IPP it names.
    const early = file(fixture('report.hpr'), 'pathology', { rules: { strictTraitsMatch: 'review' } });
    assert.deepEqual([early.action, early.rule], ['review', 'strict-traits-review']);

    await pam({
      event: 'A47',
      kind: 'change-identifier',
      from: ipp('IPP-OLD', '310000001'),
      toIpp: 'IPP-000123',
    });
    const doc = store.documents.get(early.documentId)!;
    assert.deepEqual([doc.match, doc.matchRule, doc.patientId], ['filed', 'ipp-known', patientId]);
    assert.deepEqual(doc.events.at(-1)?.detail, { how: 'automatic', patientId });
    assert.deepEqual(
      doc.reviews.map((r) => r.status),
      ['attached'],
    );
    assert.equal(store.documents.listWaiting().items.length, 0);
  });

  it('files a waiting report on the survivor when an A40 absorbs the IPP it names, never sent before', async () => {
    const { patientId } = camille({ identifiers: [ipp('IPP-A', '310000001')] });
    // Traits alone never file here: the report waits for the IPP it names (IPP-000123).
    const early = file(fixture('report.hpr'), 'pathology', { rules: { strictTraitsMatch: 'review' } });
    assert.deepEqual([early.action, early.rule], ['review', 'strict-traits-review']);

    await a40('IPP-A', 'IPP-000123');
    const doc = store.documents.get(early.documentId)!;
    assert.deepEqual([doc.match, doc.matchRule, doc.patientId], ['filed', 'ipp-known', patientId]);
    assert.deepEqual(doc.events.at(-1)?.detail, { how: 'automatic', patientId });
    assert.equal(store.documents.listWaiting().items.length, 0);
  });

  it('files a waiting report when an A40 merges the duplicates that made its traits ambiguous', async () => {
    const survivor = camille({ identifiers: [ipp('IPP-A', '310000001')] }).patientId;
    // The same establishment's duplicate record: same traits under another IPP.
    const duplicate = camille({ identifiers: [ipp('IPP-B', '310000001')] }).patientId;
    assert.notEqual(survivor, duplicate);
    const sidecar = JSON.parse(fixture('report.json').toString()) as { patient: Record<string, string> };
    sidecar.patient.ipp = 'IPP-UNKNOWN';
    const early = file(fixture('report.pdf'), 'pathology', {
      meta: { fileName: 'report.pdf', sidecar: JSON.stringify(sidecar) },
    });
    assert.deepEqual([early.action, early.rule], ['review', 'strict-traits-review']);

    await a40('IPP-A', 'IPP-B');
    const doc = store.documents.get(early.documentId)!;
    assert.deepEqual([doc.match, doc.matchRule, doc.patientId], ['filed', 'strict-traits', survivor]);
    assert.deepEqual(doc.events.at(-1)?.detail, { how: 'automatic', patientId: survivor });
    assert.deepEqual(
      store.documents.listOfPatient(duplicate).map((d) => d.id),
      [early.documentId],
    );
    assert.equal(store.documents.listWaiting().items.length, 0);
  });

  it('opens a review item on close traits and never files on a guess; a reviewer attaches it by hand', () => {
    const { patientId } = camille({ birthName: 'FICTIFF', identifiers: [ipp('IPP-9', '310000001')] });
    const pdf = fixture('report.pdf');
    const sidecar = JSON.parse(fixture('report.json').toString()) as { patient: Record<string, string> };
    sidecar.patient.ipp = 'IPP-UNKNOWN';
    const result = file(pdf, 'pathology', {
      meta: { fileName: 'report.pdf', sidecar: JSON.stringify(sidecar) },
    });
    assert.equal(result.action, 'review');
    assert.equal(result.patientId, null);
    assert.equal(result.rule, 'near-match');
    const [waiting] = store.documents.listWaiting().items;
    assert.deepEqual(
      waiting?.reviews.map((r) => [r.candidateId, r.status]),
      [[patientId, 'open']],
    );
    assert.deepEqual(store.documents.listOfPatient(patientId), [], 'not on the patient');

    const attached = store.documents.attach(result.documentId, patientId, { author: 'reviewer' });
    assert.equal(attached.rule, 'manual');
    const doc = store.documents.get(result.documentId)!;
    assert.equal(doc.patientId, patientId);
    assert.deepEqual(
      doc.reviews.map((r) => [r.status, r.resolvedBy]),
      [['attached', 'reviewer']],
    );
    assert.equal(doc.events.at(-1)?.author, 'reviewer');
    assert.equal(store.documents.content(result.documentId, 'pdf')?.mediaType, 'application/pdf');
    assert.throws(
      () => store.documents.attach(result.documentId, patientId, { author: 'reviewer' }),
      (e: Error & { code?: string }) => e.code === 'DOCUMENT_ALREADY_FILED',
    );
  });

  it('files on equal strict traits, or opens a review when the channel asks for one', () => {
    const { patientId } = camille({ identifiers: [ipp('IPP-1', '310000001')] });
    const sidecar = (id: string) =>
      JSON.stringify({
        patient: {
          ipp: `IPP-${id}`,
          finess: '310000001',
          birthName: 'Fictif',
          firstGivenName: 'Camille',
          birthDate: '1979-03-28',
          sex: 'F',
        },
        documentId: id,
      });
    const pdf = fixture('report.pdf');
    const linked = file(pdf, 'pathology', { meta: { fileName: 'a.pdf', sidecar: sidecar('doc-a') } });
    assert.deepEqual([linked.action, linked.rule, linked.patientId], ['filed', 'strict-traits', patientId]);
    const other = Buffer.concat([pdf, Buffer.from('\n')]);
    const reviewed = file(other, 'pathology', {
      meta: { fileName: 'b.pdf', sidecar: sidecar('doc-b') },
      rules: { strictTraitsMatch: 'review' },
    });
    assert.deepEqual([reviewed.action, reviewed.rule], ['review', 'strict-traits-review']);
  });

  it('recognises a copy by its bytes or its document id, and keeps one version', () => {
    camille({ identifiers: [ipp('IPP-000123', '310000001')] });
    const first = file(fixture('report.hpr'), 'pathology');
    const again = file(fixture('report.hpr'), 'pathology');
    assert.equal(again.action, 'duplicate');
    assert.equal(again.versionId, first.versionId);

    const pdf = fixture('report.pdf');
    const meta = { fileName: 'report.pdf', sidecar: fixture('report.json').toString() };
    const a = file(pdf, 'pathology', { meta });
    const b = file(Buffer.concat([pdf, Buffer.from('\n')]), 'pathology', { meta });
    assert.equal(b.action, 'duplicate', 'same document id, same status');
    assert.equal(b.documentId, a.documentId);
    assert.equal(store.documents.get(a.documentId)!.versions.length, 1);
  });

  it('refuses a deletion of a document never filed, and a correction from another sender', () => {
    const pdf = fixture('report.pdf');
    const sidecar = JSON.parse(fixture('report.json').toString()) as Record<string, unknown>;
    const withStatus = (status: string, bytes = pdf) =>
      file(bytes, 'pathology', {
        meta: { fileName: 'r.pdf', sidecar: JSON.stringify({ ...sidecar, status, replaces: 'never-filed' }) },
      });
    assert.throws(
      () => withStatus('deletion'),
      (e: Error & { code?: string }) => e.code === 'DOCUMENT_TO_DELETE_UNKNOWN',
    );
    file(pdf, 'pathology', { meta: { fileName: 'r.pdf', sidecar: JSON.stringify(sidecar) } });
    assert.throws(
      () =>
        file(Buffer.concat([pdf, Buffer.from(' ')]), 'pathology', {
          owner: '310000003',
          meta: {
            fileName: 'r.pdf',
            sidecar: JSON.stringify({ ...sidecar, status: 'replacement', replaces: sidecar.documentId }),
          },
        }),
      (e: Error & { code?: string }) => e.code === 'DOCUMENT_NOT_OWNER',
    );
  });

  describe('the ANS kit', function () {
    before(function () {
      if (kit === undefined) this.skip();
    });

    it('CR-GM: every variant filed and queryable by gene, on the patient of the qualified INS', () => {
      const content = fs.readFileSync(
        path.join(kit!, 'TestContenuCDA-3-0/ExemplesCDA/CANCER-CR-GM_2022.01_AnalyseRealisee.xml'),
      );
      const report = readReport({ content, contentType: 'text/xml', meta: {} }, 'molecular', stepOptions);
      const p = report.patient;
      const { patientId } = store.vigilance.applyIdentity(
        identity({
          birthName: p.birthName!,
          firstGivenName: p.firstGivenName!,
          givenNames: p.givenNames ?? null,
          birthDate: p.birthDate!,
          sex: p.sex ?? 'U',
          birthPlace: null,
          reliability: 'QUAL',
          ins: { matricule: p.ins!.matricule, oid: p.ins!.oid, status: 'QUAL' },
        }),
        { messageId: 1, insOids },
      );
      const result = file(content, 'molecular', { owner: null });
      assert.deepEqual([result.action, result.rule, result.patientId], ['filed', 'ins-qualified', patientId]);
      const doc = store.documents.get(result.documentId)!;
      assert.equal(doc.variants.length, report.variants.length);
      assert.deepEqual(
        store.documents
          .variantsOfGene('EGFR')
          .map((v) => [v.referenceSequence, v.dnaChange, v.proteinChange]),
        [
          ['NM_005228.3', 'c.2573T>G', 'p.Leu858Arg'],
          [undefined, undefined, 'p.L858R'],
        ],
      );
      assert.equal(store.documents.variantsOfGene('EGFR')[0]?.classification?.code, 'MED-536');
      assert.equal(doc.kind, 'molecular');
      assert.equal(store.documents.content(result.documentId, 'cda')?.mediaType, 'text/xml');
    });

    it('MDM: initial, replacement and deletion are three versions of one document, the copy a duplicate', () => {
      const mdm = path.join(
        kit!,
        'hl7v2-examples/Vague 2/Trans_Doc-CDA-HL7V2/TRANSMISSION_DOCS_CDA_EN_HL7V2_V2.1/MDM',
      );
      const read = (f: string) => fs.readFileSync(path.join(mdm, f));
      const init = file(read('Transmission initiale MDM/message_MDM_CR_Radio_INIT_N1.er7'), 'pathology', {
        owner: null,
      });
      const copy = file(
        read('Transmission initiale MDM/message_MDM_CR_Radio_INIT_N1_Base64.er7'),
        'pathology',
        {
          owner: null,
        },
      );
      assert.equal(copy.action, 'duplicate');
      const rplc = file(read('Remplacement MDM/message_MDM_CR_Radio_RPLC_N1.er7'), 'pathology', {
        owner: null,
      });
      assert.equal(rplc.documentId, init.documentId);
      assert.equal(rplc.version, 2);
      assert.equal(store.documents.get(init.documentId)!.status, 'replacement');
      const del = file(read('Suppression MDM/message_MDM_CR_Radio_DEL_N1.er7'), 'pathology', { owner: null });
      assert.equal(del.action, 'deleted');
      const doc = store.documents.get(init.documentId)!;
      assert.equal(doc.status, 'deleted');
      assert.deepEqual(
        doc.versions.map((v) => [v.version, v.status]),
        [
          [1, 'final'],
          [2, 'replacement'],
          [3, 'deletion'],
        ],
      );
    });
  });
});
