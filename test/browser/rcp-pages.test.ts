// The RCP pages in headless Chromium: sessions by date and committee, a session's forms, and a form
// with its versions, the PDF of each validated version (GET /api/rcp/forms/{id}/pdf, audited) and
// the delivery status of each recipient.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import type { Browser, Page } from 'playwright-core';
import type { FastifyInstance } from 'fastify';
import { listenDashboard } from '../support/dashboard-listen.ts';
import { launchChromium } from '../support/chromium.ts';
import { addAccount, startEngine, until, type Harness } from '../support/engine-harness.ts';
import { documentDirectory, knownPatient, NORD, SUD } from '../support/documents-out.ts';
import { formContent, meetingData } from '../fixtures/documents/rcp-store.ts';

const artifacts = path.resolve('test-artifacts', 'browser');
const shipped = (id: string): object =>
  YAML.parse(fs.readFileSync(path.resolve('config/channels', `${id}.yaml`), 'utf8'));
const viewer = { login: 'view-rcp', password: 'view-rcp-pass-1', role: 'viewer' as const };

describe('RCP pages in a browser', function () {
  this.timeout(60_000);
  let h: Harness;
  let app: FastifyInstance;
  let base: string;
  let browser: Browser;
  let page: Page;
  let formId: number;

  before(async () => {
    fs.mkdirSync(artifacts, { recursive: true });
    // CHU Nord has no SFTP account: its pickup fails, and the page must say so.
    const directory = {
      ...documentDirectory,
      establishments: documentDirectory.establishments.map((e) => ({ ...e, documents: undefined })),
    };
    h = await startEngine({
      channels: [shipped('documents-out'), shipped('documents-pickup'), shipped('documents-mail')],
      directory,
    });
    await addAccount(h.engine.store, viewer);
    await addAccount(h.engine.store, {
      login: 'chu-sud',
      role: 'establishment',
      finess: SUD,
      password: 'pw-chu-sud-b',
    });
    const patientId = await knownPatient(h.engine.store, true);
    const { rcp } = h.engine.store.write;
    const actor = { login: 'dr-rcp' };
    const sein = await rcp.createMeeting({ ...meetingData, date: '2026-01-12' }, actor, Date.now());
    await rcp.createMeeting(
      { ...meetingData, date: '2026-02-03', committee: { id: 'dig', name: 'Digestif' } },
      actor,
      Date.now(),
    );
    formId = (
      await rcp.create('frcp', { patientId, meetingId: sein.id, content: formContent }, actor, Date.now())
    ).id;
    await rcp.validate('frcp', formId, actor, Date.now());
    await rcp.update(
      'frcp',
      formId,
      { patientId, meetingId: sein.id, content: formContent },
      actor,
      Date.now(),
    );
    await until(
      () => h.engine.store.rcp.document('frcp', formId)?.status === 'sent',
      'form 1 written and queued',
    );
    ({ app, base } = await listenDashboard(h.engine));
    browser = await launchChromium();
    page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
    await page.goto(`${base}/`);
    await page.fill('input[name=login]', viewer.login);
    await page.fill('input[name=password]', viewer.password);
    await Promise.all([
      page.waitForURL((u) => !u.pathname.startsWith('/login')),
      page.click('button[type=submit]'),
    ]);
  });
  after(async () => {
    await browser?.close();
    await app?.close();
    await h?.stop();
  });

  it('lists the sessions of a period, newest first, and narrows them to one committee', async () => {
    await page.click('header a[href="/rcp"]');
    await page.fill('input[name=from]', '2026-01-01');
    await page.fill('input[name=to]', '2027-01-01');
    await Promise.all([page.waitForURL(/\/rcp\?/), page.click('form.card button[type=submit]')]);
    const rows = await page.locator('#meetings tbody tr').allInnerTexts();
    assert.equal(rows.length, 2);
    assert.match(rows[0]!, /2026-02-03\s+Digestif/);
    assert.match(rows[1]!, /2026-01-12\s+Sein.*\s1$/);
    await Promise.all([page.waitForURL(/committee=Sein/), page.click('#meetings a:text("Sein")')]);
    assert.equal(await page.locator('#meetings tbody tr').count(), 1);
    await page.screenshot({ path: path.join(artifacts, 'rcp-meetings.png'), fullPage: true });
  });

  it('shows a form’s versions and each recipient’s delivery status, from its session', async () => {
    await page.click('#meetings a:text("2026-01-12")');
    // The session lists the form in its latest version: the correction, a draft still.
    await Promise.all([page.waitForURL(/\/rcp\/forms\//), page.click(`#forms a:text("FRCP-${formId}")`)]);
    assert.equal(await page.locator('#status').innerText(), 'draft');
    const versions = await page.locator('#versions tbody tr').allInnerTexts();
    assert.equal(versions.length, 2);
    assert.match(versions[1]!, new RegExp(`2\\s+FRCP-${formId}-2\\s+draft`));
    await Promise.all([
      page.waitForURL(new RegExp(`/rcp/forms/${formId}$`)),
      page.click('#versions a:text("1")'),
    ]);
    assert.equal(await page.locator('#status').innerText(), 'sent');
    await until(async () => {
      await page.reload();
      return (
        (await page.locator(`#recipients tr[data-recipient="finess:${NORD}"] td.status-ERROR`).count()) === 1
      );
    }, 'CHU Nord’s failed pickup shown');
    assert.match(
      await page.locator(`#recipients tr[data-recipient="finess:${SUD}"] td`).nth(2).innerText(),
      /^SENT\b/,
    );
    assert.match(
      await page.locator(`#recipients tr[data-recipient="finess:${NORD}"] td.error`).innerText(),
      /PICKUP_NO_ACCOUNT/,
    );
    assert.equal(await page.locator('#recipients tr[data-recipient="mes"]').count(), 1);
    // CHU Sud's pickup wrote two files, each a delivery of its own: both are shown.
    assert.match(
      await page.locator(`#recipients tr[data-recipient="finess:${SUD}"] .parts`).innerText(),
      /document SENT, pdf SENT/,
    );
    await page.screenshot({ path: path.join(artifacts, 'rcp-form.png'), fullPage: true });
    const cda = await page.request.get(`${base}/api/rcp/forms/${formId}/cda`);
    assert.match(await cda.text(), new RegExp(`extension="FRCP-${formId}-1"`));
  });

  it('links the PDF of each validated version, served as a PDF and audited; a draft has none', async () => {
    await page.goto(`${base}/rcp/forms/${formId}`);
    const versions = page.locator('#versions tbody tr');
    assert.equal(await versions.nth(0).locator('a.pdf').count(), 1, 'version 1, validated');
    assert.equal(await versions.nth(1).locator('a.pdf').count(), 0, 'version 2, a draft');
    const href = await page.locator('#pdf').getAttribute('href');
    assert.equal(href, `/api/rcp/forms/${formId}/pdf`);
    assert.equal(await versions.nth(0).locator('a.pdf').getAttribute('href'), href);
    const pdf = await page.request.get(`${base}${href}`);
    assert.equal(pdf.status(), 200);
    assert.equal(pdf.headers()['content-type'], 'application/pdf');
    const bytes = await pdf.body();
    assert.equal(bytes.subarray(0, 5).toString('latin1'), '%PDF-');
    // The same PDF CHU Sud picked up.
    const picked = fs.readFileSync(path.join(h.dataDir, 'sftp', 'chu-sud', 'out', `FRCP-${formId}-1.pdf`));
    assert.ok(bytes.equals(picked), 'the PDF the recipients were sent');
    const reads = h.engine.store.audit.search({ action: 'frcp-pdf-read' }).items;
    assert.equal(reads.length, 1);
    assert.equal(reads[0]!.object, `frcp:${formId}`);
    assert.equal(reads[0]!.actor, viewer.login);
    const draft = versions.nth(1).locator('a').first();
    const draftId = Number((await draft.getAttribute('href'))!.split('/').pop());
    assert.equal((await page.request.get(`${base}/api/rcp/forms/${draftId}/pdf`)).status(), 404);
  });
});
