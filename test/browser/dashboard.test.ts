// The dashboard in headless Chromium (Debian's /usr/bin/chromium driven by playwright-core):
// what an integration administrator and a hospital's IT team do, with a screenshot of each page.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { until } from '../support/engine-harness.ts';
import {
  FINESS_A,
  FINESS_B,
  startDashboard,
  users,
  type Dashboard,
  type UserKey,
} from '../integration/dashboard-harness.ts';

const artifacts = path.resolve('test-artifacts', 'browser');
const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

describe('dashboard in a browser', function () {
  this.timeout(60_000);
  let d: Dashboard;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;

  // launch() gives every run a fresh temporary profile of its own (no --user-data-dir allowed).
  before(async () => {
    fs.mkdirSync(artifacts, { recursive: true });
    d = await startDashboard();
    browser = await chromium.launch({
      executablePath: chromiumPath,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--no-first-run',
        '--disable-quic',
        '--disable-sync',
      ],
    });
  });
  after(async () => {
    await browser?.close();
    await d?.stop();
  });
  beforeEach(async () => {
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
  });
  afterEach(() => context.close());

  const shot = (name: string) =>
    page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });

  async function logIn(u: UserKey): Promise<void> {
    await page.goto(`${d.base}/`);
    assert.match(page.url(), /\/login/);
    await shot('login');
    await page.fill('input[name=login]', users[u].login);
    await page.fill('input[name=password]', users[u].password);
    await Promise.all([
      page.waitForURL((url) => !url.pathname.startsWith('/login')),
      page.click('button[type=submit]'),
    ]);
  }

  it('takes the first-start admin from the one-time password to its own before any page', async () => {
    d.h.engine.store.accounts.add({
      login: 'first-start',
      role: 'admin',
      password: 'printed-once-123',
      mustChangePassword: true,
    });
    await page.goto(`${d.base}/messages`);
    await page.fill('input[name=login]', 'first-start');
    await page.fill('input[name=password]', 'printed-once-123');
    await Promise.all([page.waitForURL(/\/password$/), page.click('button[type=submit]')]);
    await shot('password-change');
    await page.goto(`${d.base}/stats`);
    assert.match(page.url(), /\/password$/, 'every page leads back to the form');
    await page.fill('input[name=current]', 'printed-once-123');
    await page.fill('input[name=password]', 'a passphrase of my own');
    await page.fill('input[name=confirm]', 'a passphrase of my own');
    await Promise.all([
      page.waitForURL((url) => url.pathname === '/'),
      page.click('form[action="/password"] button[type=submit]'),
    ]);
    await page.goto(`${d.base}/stats`);
    assert.match(page.url(), /\/stats$/);
  });

  it('follows a dropped file live, opens its stages, replays it, pauses and resumes the channel', async () => {
    await logIn('operator');
    const received = page.locator('td[data-ch="drop"][data-f="received"]');
    const before = Number(await received.textContent());
    fs.writeFileSync(
      path.join(d.inbox, 'adt-browser.hl7'),
      'MSH|^~\\&|SEND|FAC|DCC|DCC|20250101||ADT^A28|B0001|P|2.5\rPID|1||IPP7^^^FAC',
    );
    // The counter moves without a reload: the page listens to server-sent events.
    await received.filter({ hasNotText: String(before) }).waitFor();
    await shot('overview');

    await page.goto(`${d.base}/messages`);
    await page.fill('input[name=text]', 'adt-browser');
    await Promise.all([
      page.waitForURL(/text=adt-browser/),
      page.click('#message-search button[type=submit]'),
    ]);
    await shot('messages');
    await Promise.all([page.waitForURL(/\/messages\/\d+$/), page.click('#messages tbody a')]);
    const id = Number(page.url().split('/').pop());
    await until(() => d.h.engine.store.journal.message(id)?.status === 'SENT', 'the file to be sent');
    await page.reload();
    assert.deepEqual(await page.locator('pre.hl7').first().locator('.seg b').allTextContents(), [
      'MSH',
      'PID',
    ]);
    await shot('message');

    await Promise.all([
      page.waitForURL((u) => u.pathname !== `/messages/${id}`),
      page.click('button[value=replay] >> text=Replay message'),
    ]);
    assert.match((await page.locator('table').first().textContent()) ?? '', new RegExp(`Replay of\\s*${id}`));

    await page.goto(`${d.base}/channels/drop`);
    assert.match((await page.locator('#yaml').textContent()) ?? '', /type: folder/);
    await Promise.all([page.waitForLoadState('load'), page.click('button[value=pause]')]);
    await page.locator('[data-f="state"]', { hasText: 'PAUSED' }).waitFor();
    assert.equal(d.h.engine.channel('drop').state, 'PAUSED');
    await shot('channel-paused');
    await Promise.all([page.waitForLoadState('load'), page.click('button[value=resume]')]);
    await page.locator('[data-f="state"]', { hasText: 'STARTED' }).waitFor();
    assert.equal(d.h.engine.channel('drop').state, 'STARTED');
  });

  it('resolves an identity review item and shows the audited patient record', async () => {
    const { vigilance } = d.h.engine.store;
    const identity = (birthName: string, finess: string, ipp: string) => ({
      birthName,
      firstGivenName: 'Jean',
      givenNames: ['Jean'],
      birthDate: '1961-04-12',
      sex: 'M',
      reliability: 'PROV',
      identifiers: [{ finess, ipp }],
    });
    vigilance.applyIdentity(identity('DUPONT', FINESS_A, 'A-1'), {});
    const second = vigilance.applyIdentity(identity('DUPONTT', FINESS_B, 'B-1'), {});
    assert.ok(second.reviewItemId, `a near match opens a review item (got ${second.action})`);

    await logIn('operator');
    await page.goto(`${d.base}/vigilance`);
    await shot('vigilance');
    const item = page.locator(`#review-${second.reviewItemId}`);
    await Promise.all([page.waitForURL(/\/vigilance$/), item.locator('button[value=merge]').click()]);
    assert.equal(await page.locator(`#review-${second.reviewItemId}`).count(), 0);
    assert.equal(vigilance.getReview(second.reviewItemId!)?.status, 'confirmed');

    await page.goto(`${d.base}/patients?q=dupont`);
    await shot('patients');
    await Promise.all([page.waitForURL(/\/patients\/\d+$/), page.click('#patients a')]);
    assert.equal(await page.locator('#identifiers tbody tr').count(), 2);
    await shot('patient');
    const reads = d.h.engine.store.audit.search({
      actor: users.operator.login,
      action: 'patient-read',
    }).items;
    assert.equal(reads.length, 1);
    const merges = d.h.engine.store.audit.search({
      actor: users.operator.login,
      action: 'patient-merge',
    }).items;
    assert.equal(merges.length, 1);
  });

  it('shows the admin the audit trail and the yearly statistics', async () => {
    await logIn('admin');
    await page.goto(`${d.base}/audit?verify=1`);
    assert.match((await page.locator('#verify').textContent()) ?? '', /Chain intact/);
    await shot('audit');
    await page.goto(`${d.base}/stats`);
    assert.equal(
      await page
        .locator('td[data-figure=newUsers]')
        .textContent()
        .then((t) => parseInt(t ?? '', 10)),
      // The harness's users and the first-start admin of the password test.
      d.h.engine.store.accounts.list().length,
    );
    await shot('stats');
  });

  it('limits a hospital account to its own files, with the reason a file was rejected', async () => {
    await d.h.engine.dispatch('drop', {
      content: Buffer.from('ours'),
      meta: { fileName: 'ours-ok.hl7' },
      owner: FINESS_A,
    });
    await d.h.engine.dispatch('drop', {
      content: Buffer.from('bad'),
      meta: { fileName: 'ours-bad.hl7' },
      owner: FINESS_A,
      rejected: 'MSH-9 missing: not an HL7 v2 message',
    });
    await d.h.engine.dispatch('drop', {
      content: Buffer.from('theirs'),
      meta: { fileName: 'theirs.hl7' },
      owner: FINESS_B,
    });
    await logIn('hospA');
    assert.match(page.url(), /\/my-files$/);
    const table = (await page.locator('#my-files').textContent()) ?? '';
    assert.match(table, /ours-ok\.hl7/);
    assert.match(table, /MSH-9 missing/);
    assert.doesNotMatch(table, /theirs\.hl7/);
    await shot('my-files');
    const res = await page.goto(`${d.base}/`);
    assert.match(page.url(), /\/my-files$/, `the overview sends a hospital to its files (${res?.status()})`);
    assert.equal((await page.goto(`${d.base}/audit`))?.status(), 403);
  });
});
