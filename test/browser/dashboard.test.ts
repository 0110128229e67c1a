// The dashboard in headless Chromium (Debian's /usr/bin/chromium driven by playwright-core):
// what an integration administrator and a hospital's IT team do, with a screenshot of each page.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { launchChromium } from '../support/chromium.ts';
import { addAccount, until } from '../support/engine-harness.ts';
import { insOf } from '../support/pam.ts';
import { acceptedInsOids } from '../../connectors/identity-writer.ts';
import {
  FINESS_A,
  FINESS_B,
  startDashboard,
  users,
  type Dashboard,
  type UserKey,
} from '../integration/dashboard-harness.ts';

const artifacts = path.resolve('test-artifacts', 'browser');

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
    browser = await launchChromium();
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
    await addAccount(d.h.engine.store, {
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

  it('resolves an identity review item: traits side by side, differences marked, a merge confirmed first', async () => {
    const { vigilance } = d.h.engine.store.write;
    const identity = (birthName: string, finess: string, ipp: string, ins?: string) => ({
      birthName,
      firstGivenName: 'Jean',
      givenNames: ['Jean'],
      birthDate: '1961-04-12',
      sex: 'M',
      birthPlace: '75056',
      reliability: 'PROV',
      identifiers: [{ finess, ipp }],
      ...(ins ? { ins: { matricule: ins, oid: '1.2.250.1.213.1.4.8', status: 'PROV' } } : {}),
    });
    await vigilance.applyIdentity(identity('DUPONT', FINESS_A, 'A-1', insOf('1610499123456')), {
      insOids: acceptedInsOids(),
    });
    const second = await vigilance.applyIdentity(identity('DUPONTT', FINESS_B, 'B-1'), {
      insOids: acceptedInsOids(),
    });
    assert.ok(second.reviewItemIds[0], `a near match opens a review item (got ${second.action})`);
    const reviewId = second.reviewItemIds[0]!;

    await logIn('operator');
    await page.goto(`${d.base}/vigilance`);
    await shot('vigilance');
    const item = page.locator(`#review-${reviewId}`);
    const row = (trait: string) => item.locator(`tr[data-trait="${trait}"] td`);
    assert.deepEqual(
      (await row('Birth name').allTextContents()).map((t) => t.replace(/\s+/g, ' ').trim()),
      ['≠ DUPONTT', '≠ DUPONT'],
    );
    assert.deepEqual(await row('Birth name').evaluateAll((tds) => tds.map((td) => td.className)), [
      'differs',
      'differs',
    ]);
    assert.deepEqual(await row('Birth date').evaluateAll((tds) => tds.map((td) => td.className)), ['', '']);
    assert.deepEqual(
      (await row('Birth place (INSEE)').allTextContents()).map((t) => t.trim()),
      ['75056', '75056'],
    );
    assert.match((await row('INS').nth(1).textContent()) ?? '', new RegExp(insOf('1610499123456')));
    assert.equal(await row('INS').first().getAttribute('class'), 'differs');
    const ipps = await row('IPP').allTextContents();
    assert.match(ipps[0]!, new RegExp(`FINESS ${FINESS_B} · IPP B-1`));
    assert.match(ipps[1]!, new RegExp(`FINESS ${FINESS_A} · IPP A-1`));

    // Merge asks first: nothing is merged until the reviewer confirms on the next page.
    await Promise.all([
      page.waitForURL(/\/vigilance\/\d+\/merge$/),
      item.locator('button[value=merge]').click(),
    ]);
    assert.equal(d.h.engine.store.vigilance.getReview(reviewId)?.status, 'open');
    assert.match((await page.locator('h1').textContent()) ?? '', new RegExp(`Merge review ${reviewId}\\?`));
    assert.equal(await page.locator('#confirm-merge td.differs').count(), 4);
    await shot('vigilance-confirm-merge');
    await Promise.all([page.waitForURL(/\/vigilance$/), page.click('button[value=yes]')]);
    assert.equal(await page.locator(`#review-${reviewId}`).count(), 0);
    assert.equal(d.h.engine.store.vigilance.getReview(reviewId)?.status, 'confirmed');

    await page.goto(`${d.base}/patients?q=dupont`);
    await shot('patients');
    await Promise.all([page.waitForURL(/\/patients\/\d+$/), page.click('#patients a')]);
    assert.equal(await page.locator('#identifiers tbody tr').count(), 2);
    const patientId = Number(page.url().split('/').pop());
    assert.equal(
      await page.locator('#patient-messages').getAttribute('href'),
      `/messages?patient=${patientId}`,
    );
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

  it('goes from a patient to the messages about that patient, and finds a message by its IPP', async () => {
    const { engine } = d.h;
    const receipt = await engine.dispatch('drop', {
      content: Buffer.from(
        'MSH|^~\\&|GAM|HOP|DCC|DCC|20250101||ADT^A28|PATMSG1|P|2.5\rPID|1||IPP-BROWSER-9^^^HOP&330000001&M^PI',
      ),
      meta: { fileName: 'patient-link.hl7' },
      owner: FINESS_A,
    });
    const decision = await engine.store.write.vigilance.applyIdentity(
      {
        birthName: 'LEGRAND',
        firstGivenName: 'Anne',
        birthDate: '1970-01-02',
        sex: 'F',
        identifiers: [{ finess: FINESS_A, ipp: 'IPP-BROWSER-9' }],
      },
      { messageId: receipt.messageId, insOids: acceptedInsOids() },
    );
    await logIn('operator');
    await page.goto(`${d.base}/patients/${decision.patientId}`);
    await Promise.all([page.waitForURL(/\/messages\?patient=\d+$/), page.click('#patient-messages')]);
    assert.deepEqual(await page.locator('#messages tbody tr td:first-child').allTextContents(), [
      String(receipt.messageId),
    ]);
    assert.match((await page.locator('#patient-filter').textContent()) ?? '', /about\s+patient/);
    await shot('patient-messages');
    await page.goto(`${d.base}/messages`);
    await page.fill('input[name=text]', 'IPP-BROWSER-9');
    await Promise.all([
      page.waitForURL(/text=IPP-BROWSER-9/),
      page.click('#message-search button[type=submit]'),
    ]);
    assert.deepEqual(await page.locator('#messages tbody tr td:first-child').allTextContents(), [
      String(receipt.messageId),
    ]);
  });

  it('answers a refused or unknown page with an error page in the layout, the API with JSON', async () => {
    await logIn('viewer');
    const refused = await page.goto(`${d.base}/audit`);
    assert.equal(refused?.status(), 403);
    assert.equal(await page.locator('header a[href="/messages"]').count(), 1, 'the menu is there');
    assert.equal(await page.locator('h1').textContent(), 'Not allowed');
    assert.match((await page.locator('#error-page').textContent()) ?? '', /role viewer may not do this/);
    await shot('error-403');
    const missing = await page.goto(`${d.base}/no-such-page`);
    assert.equal(missing?.status(), 404);
    assert.equal(await page.locator('h1').textContent(), 'Not found');
    assert.match((await page.locator('#error-page').textContent()) ?? '', /nothing at GET \/no-such-page/);
    assert.equal(await page.locator('#error-page a[href="/"]').count(), 1);
    await shot('error-404');
    const api = await page.goto(`${d.base}/api/no-such-thing`);
    assert.equal(api?.status(), 404);
    assert.equal(((await api!.json()) as { error: string }).error, 'ROUTE_UNKNOWN');
    const apiRefused = await page.goto(`${d.base}/api/audit`);
    assert.equal(apiRefused?.status(), 403);
    assert.equal(((await apiRefused!.json()) as { error: string }).error, 'FORBIDDEN');
  });

  it('lists the channels from the menu, with state, counters and links to each channel', async () => {
    await logIn('viewer');
    await Promise.all([page.waitForURL(/\/channels$/), page.click('header a[href="/channels"]')]);
    assert.equal(await page.locator('h1').textContent(), 'Channels');
    const row = page.locator('#channels tr[data-channel="drop"]');
    assert.match((await row.textContent()) ?? '', /File drop\s+folder/);
    assert.equal(await row.locator('[data-f="state"]').textContent(), 'STARTED');
    assert.equal(
      Number(await row.locator('[data-f="received"]').textContent()),
      d.h.engine.channel('drop').status().metrics.received,
    );
    await shot('channels');
    await Promise.all([
      page.waitForURL(/\/channels\/drop$/),
      row.locator('a[href="/channels/drop"]').click(),
    ]);
    assert.match((await page.locator('#yaml').textContent()) ?? '', /type: folder/);
  });

  it('draws charts with axes, a unit and month labels, and no bar for a month not begun', async () => {
    await logIn('admin');
    await page.goto(`${d.base}/stats`);
    const chart = page.locator('#chart-newUsers');
    assert.deepEqual(
      (await chart.locator('text.x-label').allTextContents()).map((t) => t.trim()),
      ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'],
    );
    assert.equal((await chart.locator('text.unit').textContent())?.trim(), 'users');
    assert.equal(await chart.locator('line.axis').count(), 2);
    const month = new Date().getUTCMonth();
    assert.equal(await chart.locator('rect.bar').count(), month + 1, 'one bar per month begun');
    const bars = await chart
      .locator('rect.bar')
      .evaluateAll((rs) => rs.map((r) => r.getAttribute('data-label')));
    assert.equal(
      bars.at(-1),
      ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'][month],
    );
    await shot('stats-charts');
    await page.goto(`${d.base}/stats?year=${new Date().getUTCFullYear() - 1}`);
    assert.equal(await page.locator('#chart-newUsers rect.bar').count(), 12);
    await page.goto(`${d.base}/`);
    const hour = page.locator('#chart-hour');
    assert.equal((await hour.locator('text.unit').textContent())?.trim(), 'messages');
    assert.equal((await hour.locator('text.x-label').allTextContents()).at(-1)?.trim(), 'now');
    assert.ok((await hour.locator('text.y-label').count()) >= 2, 'a scale on the vertical axis');
  });
});

describe('dashboard in a browser, before anything happened', function () {
  this.timeout(60_000);
  let d: Dashboard;
  let browser: Browser;
  before(async () => {
    d = await startDashboard();
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await d?.stop();
  });

  it('says so when there is nothing yet: no messages, no review items, no files', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    try {
      const logIn = async (u: UserKey) => {
        await page.goto(`${d.base}/login`);
        await page.fill('input[name=login]', users[u].login);
        await page.fill('input[name=password]', users[u].password);
        await Promise.all([
          page.waitForURL((url) => !url.pathname.startsWith('/login')),
          page.click('button[type=submit]'),
        ]);
      };
      await logIn('viewer');
      await page.goto(`${d.base}/messages`);
      assert.match((await page.locator('#no-messages').textContent()) ?? '', /No messages yet/);
      assert.equal(await page.locator('#messages').count(), 0);
      await page.screenshot({ path: path.join(artifacts, 'empty-messages.png'), fullPage: true });
      await page.goto(`${d.base}/messages?text=nothing-like-this`);
      assert.match(
        (await page.locator('#no-messages').textContent()) ?? '',
        /No message matches these filters/,
      );
      await page.goto(`${d.base}/vigilance`);
      assert.match((await page.locator('#no-reviews').textContent()) ?? '', /No review items/);
      await page.goto(`${d.base}/`);
      assert.match(
        (await page.locator('#chart-hour').locator('xpath=..').textContent()) ?? '',
        /No message received in the last hour/,
      );
      await page.goto(`${d.base}/patients?q=nobody`);
      assert.match((await page.locator('#no-patients').textContent()) ?? '', /No patient matches/);
      await context.clearCookies();
      await logIn('hospA');
      assert.match((await page.locator('#no-files').textContent()) ?? '', /No files yet/);
    } finally {
      await context.close();
    }
  });
});
