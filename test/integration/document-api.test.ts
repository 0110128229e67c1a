// The documents API over HTTP (real engine, real server, fetch): a patient's documents, a document's
// metadata, its original bytes and PDF, each read audited; an establishment sees only what it sent;
// unfiled documents in the vigilance queue, attached by hand (audited); OpenAPI lists the routes;
// the year's reports and results per lab.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { acceptedInsOids } from '../../connectors/identity-writer.ts';
import { toDocumentInput } from '../../connectors/document-writer.ts';
import { readReport, clinicalStepSchema } from '../../transformers/clinical-steps.ts';
import { readOptions } from '../../transformers/contract.ts';
import type { FilingResult } from '../../store/documents.ts';
import { basic, FINESS_A, startDashboard, type Dashboard, type UserKey } from './dashboard-harness.ts';

const fixtures = path.resolve(import.meta.dirname, '../fixtures/clinical');
const fixture = (name: string) => fs.readFileSync(path.join(fixtures, name));
const insOids = acceptedInsOids({ acceptTestIns: true });

describe('documents API', () => {
  let d: Dashboard;
  let patientId: number;
  let hprim: FilingResult;
  let pdf: FilingResult;
  let unfiled: FilingResult;

  before(async () => {
    d = await startDashboard();
    const { store } = d.h.engine;
    patientId = (
      await store.write.vigilance.applyIdentity(
        {
          birthName: 'FICTIF',
          firstGivenName: 'Camille',
          birthDate: '1979-03-28',
          sex: 'F',
          identifiers: [{ finess: FINESS_A, ipp: 'IPP-000123' }],
        },
        { messageId: null, insOids },
      )
    ).patientId;
    const file = (content: Buffer, meta: Record<string, string>, owner: string) => {
      const report = readReport(
        { content, contentType: 'application/octet-stream', meta },
        'pathology',
        readOptions(clinicalStepSchema, { acceptTestIns: true }),
      );
      return store.write.documents.file(toDocumentInput(report, owner), {
        insOids,
        provenance: { messageId: null, channel: 'pathology', fileName: meta.fileName ?? null, owner },
      });
    };
    hprim = await file(fixture('report.hpr'), { fileName: 'report.hpr' }, FINESS_A);
    const sidecar = JSON.parse(fixture('report.json').toString()) as { patient: Record<string, string> };
    sidecar.patient.finess = FINESS_A;
    pdf = await file(
      fixture('report.pdf'),
      { fileName: 'scan.pdf', sidecar: JSON.stringify(sidecar) },
      FINESS_A,
    );
    sidecar.patient.ipp = 'IPP-NOT-YET';
    sidecar.patient.birthName = 'FICTIFF';
    unfiled = await file(
      Buffer.concat([fixture('report.pdf'), Buffer.from(' ')]),
      { fileName: 'other.pdf', sidecar: JSON.stringify({ ...sidecar, documentId: 'doc-other' }) },
      FINESS_A,
    );
  });
  after(() => d.stop());

  const get = (who: UserKey, url: string) =>
    fetch(`${d.base}${url}`, { headers: { authorization: basic(who) } });
  const audited = (action: string) => d.h.engine.store.audit.search({ action }).items;

  it("lists a patient's documents and returns a document's metadata, each read audited", async () => {
    assert.equal(hprim.action, 'filed');
    const list = await get('viewer', `/api/patients/${patientId}/documents`);
    assert.equal(list.status, 200);
    const { items } = (await list.json()) as { items: Array<Record<string, unknown>> };
    assert.deepEqual(items.map((i) => [i.id, i.kind, i.status, i.formatCode, i.source]).sort(), [
      [hprim.documentId, 'pathology', 'final', '60568-3', 'report.hpr'],
      [pdf.documentId, 'pathology', 'final', '60568-3', 'scan.pdf'],
    ]);
    assert.equal(audited('patient-documents-read')[0]?.patientId, patientId);

    const meta = await get('viewer', `/api/documents/${hprim.documentId}`);
    const doc = (await meta.json()) as {
      findings: Array<{ kind: string; code: string }>;
      versions: unknown[];
    };
    assert.ok(doc.findings.some((f) => f.kind === 'adicap' && f.code === 'BHDCA7G0'));
    assert.equal(doc.versions.length, 1);
    assert.equal(audited('document-read')[0]?.object, `document:${hprim.documentId}`);
  });

  it('serves the original bytes and the PDF, audited; a document without PDF has none', async () => {
    const original = await get('viewer', `/api/documents/${hprim.documentId}/original`);
    assert.equal(original.status, 200);
    assert.deepEqual(Buffer.from(await original.arrayBuffer()), fixture('report.hpr'));
    const content = await get('viewer', `/api/documents/${hprim.documentId}/content`);
    assert.equal(content.status, 200);
    const asPdf = await get('viewer', `/api/documents/${pdf.documentId}/pdf`);
    assert.equal(asPdf.headers.get('content-type'), 'application/pdf');
    assert.deepEqual(Buffer.from(await asPdf.arrayBuffer()), fixture('report.pdf'));
    assert.equal(audited('document-pdf-read')[0]?.patientId, patientId);
    const none = await get('viewer', `/api/documents/${hprim.documentId}/pdf`);
    assert.equal(none.status, 404);
    assert.equal(((await none.json()) as { error: string }).error, 'DOCUMENT_NO_CONTENT');
  });

  it('shows an establishment only the documents it sent', async () => {
    assert.equal((await get('hospA', `/api/documents/${hprim.documentId}`)).status, 200);
    const other = await get('hospB', `/api/documents/${hprim.documentId}`);
    assert.equal(other.status, 404);
    assert.equal((await get('hospB', `/api/documents/${hprim.documentId}/original`)).status, 404);
    const list = await get('hospB', `/api/patients/${patientId}/documents`);
    assert.deepEqual(((await list.json()) as { items: unknown[] }).items, []);
  });

  it('lists unfiled documents for review and files one by hand, audited; a viewer may not', async () => {
    assert.equal(unfiled.action, 'review');
    const queue = (await (await get('viewer', '/api/vigilance/documents')).json()) as {
      items: Array<{ id: number; reviews: Array<{ candidateId: number }> }>;
    };
    assert.deepEqual(
      queue.items.map((i) => [i.id, i.reviews.map((r) => r.candidateId)]),
      [[unfiled.documentId, [patientId]]],
    );
    const attach = (who: UserKey) =>
      fetch(`${d.base}/api/documents/${unfiled.documentId}/attach`, {
        method: 'POST',
        headers: { authorization: basic(who), 'content-type': 'application/json' },
        body: JSON.stringify({ patientId, note: 'same person, typo in the lab system' }),
      });
    assert.equal((await attach('viewer')).status, 403);
    const done = await attach('operator');
    assert.equal(done.status, 200);
    assert.equal(((await done.json()) as { patientId: number }).patientId, patientId);
    assert.equal((await attach('operator')).status, 409);
    const row = audited('document-attach')[0];
    assert.equal(row?.patientId, patientId);
    assert.equal(row?.actor, 'oper1');
  });

  it('lists the routes in the OpenAPI document and counts reports per lab in the yearly statistics', async () => {
    const api = (await (await get('viewer', '/api/openapi.json')).json()) as {
      paths: Record<string, unknown>;
    };
    for (const p of [
      '/api/patients/{id}/documents',
      '/api/documents/{id}',
      '/api/documents/{id}/original',
      '/api/documents/{id}/pdf',
      '/api/vigilance/documents',
      '/api/documents/{id}/attach',
    ])
      assert.ok(api.paths[p], p);
    const year = new Date().getUTCFullYear();
    const stats = (await (await get('viewer', `/api/stats?year=${year}`)).json()) as {
      figures: Record<string, { total: number }>;
      byLab: Array<{ lab: string; pathologyReports: number }>;
    };
    assert.equal(stats.figures.pathologyReports?.total, 3);
    assert.deepEqual(stats.byLab, [{ lab: '310000002', pathologyReports: 3, molecularResults: 0 }]);
  });
});
