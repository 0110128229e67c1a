// A contextual call as a clinician makes it: a link in the hospital's record system (another site)
// opens the DCC in headless Chromium, which must land on the patient's page, logged in, with the
// access in the audit trail under the professional's RPPS.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Browser } from 'playwright-core';
import { launchChromium } from '../support/chromium.ts';
import { buildServer } from '../../dashboard/server.ts';
import { hmacVerifier } from '../../dashboard/actx-verify.ts';
import { startEngine, type Harness } from '../support/engine-harness.ts';

const FINESS = '330000021';
const SECRET = 'browser-test-secret-0123456789';
const RPPS = '10009876543';
const artifacts = path.resolve('test-artifacts', 'browser');

describe('contextual call in a browser', function () {
  this.timeout(60_000);
  let h: Harness;
  let app: FastifyInstance;
  let browser: Browser;
  let dpi: http.Server;
  let link = '';

  before(async () => {
    fs.mkdirSync(artifacts, { recursive: true });
    h = await startEngine({
      channels: [],
      directory: {
        establishments: [
          { finess: FINESS, name: 'CH Browser', actx: { secret: SECRET, createAccounts: true } },
        ],
      },
    });
    app = buildServer(h.engine, { bind: '127.0.0.1', port: 0 });
    await app.listen({ host: '127.0.0.1', port: 0 });
    // The record system's page is served from `localhost`, another site than the DCC's 127.0.0.1:
    // the link is a cross-site navigation, as it is in a hospital.
    dpi = http.createServer((_req, res) => {
      res.setHeader('content-type', 'text/html; charset=utf-8');
      res.end(`<!doctype html><title>DPI</title><a id="open-dcc" href="${link}">Dossier DCC</a>`);
    });
    await new Promise<void>((resolve) => dpi.listen(0, '127.0.0.1', resolve));
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    dpi?.close();
    await app?.close();
    await h?.stop();
    fs.rmSync(h.dataDir, { recursive: true, force: true });
    fs.rmSync(h.configDir, { recursive: true, force: true });
  });

  it("opens the patient's page, logged in, from a link in the record system; audited with the RPPS", async () => {
    const params = {
      finess: FINESS,
      ipp: 'IPP-B-77',
      nom: 'BERNARD',
      prenom: 'Lucie',
      ddn: '19681107',
      sexe: 'F',
      rpps: RPPS,
      pro_nom: 'Petit',
      pro_prenom: 'Hélène',
      ts: String(Math.floor(Date.now() / 1000)),
      nonce: crypto.randomBytes(12).toString('hex'),
    };
    const dcc = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
    link = `${dcc}/actx/patient?${await hmacVerifier.sign(params, { secret: SECRET, publicKey: null })}`;
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`http://localhost:${(dpi.address() as { port: number }).port}/`);
    await Promise.all([page.waitForURL(/\/patients\/\d+$/), page.click('#open-dcc')]);
    await page.locator('#identity').waitFor();
    await page.screenshot({ path: path.join(artifacts, 'actx-patient.png'), fullPage: true });
    const identity = await page.locator('#identity').textContent();
    assert.match(identity!, /BERNARD/);
    assert.match(identity!, /PROV/, 'the identity shows its reliability');
    const patientId = Number(new URL(page.url()).pathname.split('/').pop());
    const trail = h.engine.store.audit.search({ patientId }).items.map((r) => [r.action, r.actor, r.outcome]);
    assert.deepEqual(trail, [
      ['patient-read', RPPS, 'ok'],
      ['actx-patient', RPPS, 'ok'],
    ]);
    await context.close();
  });
});
