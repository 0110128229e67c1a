// Documents in headless Chromium: the patient page lists the patient's documents; a document's page
// shows the CDA as readable text, its findings as a table, a PDF inline; each view is in the audit
// trail; a reviewer files an unfiled document from the vigilance page.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../support/chromium.ts';
import { until } from '../support/engine-harness.ts';
import { acceptedInsOids } from '../../connectors/identity-writer.ts';
import { toDocumentInput } from '../../connectors/document-writer.ts';
import { readReport, clinicalStepSchema } from '../../transformers/clinical-steps.ts';
import { readOptions } from '../../transformers/contract.ts';
import { FINESS_A, startDashboard, users, type Dashboard } from '../integration/dashboard-harness.ts';

const artifacts = path.resolve('test-artifacts', 'browser');
const fixtures = path.resolve(import.meta.dirname, '../fixtures/clinical');
const insOids = acceptedInsOids({ acceptTestIns: true });

describe('documents in a browser', function () {
  this.timeout(60_000);
  let d: Dashboard;
  let browser: Browser;
  let page: Page;
  let patientId: number;

  before(async () => {
    fs.mkdirSync(artifacts, { recursive: true });
    d = await startDashboard();
    browser = await launchChromium();
    patientId = (
      await d.h.engine.store.write.vigilance.applyIdentity(
        {
          birthName: 'FICTIF',
          givenNames: ['Camille', 'Marie'],
          firstGivenName: 'Camille',
          birthDate: '1979-03-28',
          sex: 'F',
          identifiers: [{ finess: FINESS_A, ipp: 'IPP-000123' }],
        },
        { messageId: null, insOids },
      )
    ).patientId;
    page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
    await page.goto(`${d.base}/login`);
    await page.fill('input[name=login]', users.operator.login);
    await page.fill('input[name=password]', users.operator.password);
    await Promise.all([
      page.waitForURL((url) => !url.pathname.startsWith('/login')),
      page.click('button[type=submit]'),
    ]);
  });
  after(async () => {
    await browser?.close();
    await d?.stop();
  });

  const file = (
    name: string,
    meta: Record<string, string> = {},
    content = fs.readFileSync(path.join(fixtures, name)),
  ) => {
    const report = readReport(
      { content, contentType: 'application/octet-stream', meta },
      'pathology',
      readOptions(clinicalStepSchema, { acceptTestIns: true }),
    );
    return d.h.engine.store.write.documents.file(toDocumentInput(report, FINESS_A), {
      insOids,
      provenance: { messageId: null, channel: 'pathology', fileName: name, owner: FINESS_A },
    });
  };
  const audited = (action: string) =>
    d.h.engine.store.audit.search({ action, actor: users.operator.login }).items;

  it('lists the documents on the patient page and shows a CDA as text with its findings, the view audited', async () => {
    const cda = await file('cr-acp.xml');
    assert.equal(cda.patientId, patientId);
    await page.goto(`${d.base}/patients/${patientId}`);
    await page.click(`#documents tr[data-document="${cda.documentId}"] a`);
    await page.waitForURL(`**/documents/${cda.documentId}`);
    const narrative = await page.textContent('#narrative');
    assert.match(narrative ?? '', /Conclusion/);
    const findings = await page.$$eval('#findings tbody tr', (rows) => rows.map((r) => r.textContent ?? ''));
    assert.ok(
      findings.some((f) => f.includes('BHDCA7G0')),
      findings.join('|'),
    );
    await page.screenshot({ path: path.join(artifacts, 'document-cda.png'), fullPage: true });
    assert.equal(audited('document-read')[0]?.object, `document:${cda.documentId}`);
  });

  it('shows a PDF inline: the browser fetches it, and that read is audited too', async () => {
    const pdf = await file('report.pdf', {
      fileName: 'report.pdf',
      sidecar: fs.readFileSync(path.join(fixtures, 'report.json'), 'utf8').replace('310000001', FINESS_A),
    });
    assert.equal(pdf.patientId, patientId);
    const fetched = page.waitForResponse((r) => r.url().endsWith(`/api/documents/${pdf.documentId}/pdf`));
    await page.goto(`${d.base}/documents/${pdf.documentId}`);
    const response = await fetched;
    assert.equal(response.status(), 200);
    assert.equal(response.headers()['content-type'], 'application/pdf');
    await until(() => audited('document-pdf-read').length === 1, 'the audited PDF read');
    assert.equal(audited('document-pdf-read')[0]?.patientId, patientId);
  });

  it('files an unfiled document on its close candidate from the vigilance page', async () => {
    const sidecar = JSON.parse(fs.readFileSync(path.join(fixtures, 'report.json'), 'utf8')) as {
      patient: Record<string, string>;
      documentId: string;
    };
    sidecar.patient = { ...sidecar.patient, ipp: 'IPP-LATER', finess: FINESS_A, birthName: 'FICTIFF' };
    sidecar.documentId = 'doc-unfiled';
    // Another PDF whose sidecar names an IPP not known yet and a birth name one letter off.
    const waiting = await file(
      'late.pdf',
      { fileName: 'late.pdf', sidecar: JSON.stringify(sidecar) },
      Buffer.concat([fs.readFileSync(path.join(fixtures, 'report.pdf')), Buffer.from('\n')]),
    );
    assert.equal(waiting.action, 'review');
    await page.goto(`${d.base}/vigilance`);
    await Promise.all([
      page.waitForURL('**/vigilance'),
      page.click(`#unfiled-${waiting.documentId} .candidate button`),
    ]);
    assert.equal(await page.$(`#unfiled-${waiting.documentId}`), null);
    assert.equal(d.h.engine.store.documents.get(waiting.documentId)?.patientId, patientId);
    assert.equal(audited('document-attach')[0]?.patientId, patientId);
  });
});
