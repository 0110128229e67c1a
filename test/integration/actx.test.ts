// Contextual calls (ACTX) against a real engine and its dashboard on a loopback port: the contract's
// parameters, each refusal with its status and reason, the durable nonces, account creation by
// RPPS, the identity rules (IPP linked, qualified INS, near match reviewed), the audit trail, a JWT
// establishment, and a URL made by `onco-relay actx-url` fetched by curl.
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { exportSPKI, generateKeyPair, SignJWT } from 'jose';
import { canonicalString } from '../../dashboard/actx-verify.ts';
import { loadConfig } from '../../config/config.ts';
import { listenDashboard } from '../support/dashboard-listen.ts';
import { acceptedInsOids } from '../../connectors/identity-writer.ts';
import { startEngine, tempDir, type Harness } from '../support/engine-harness.ts';
import { insOf } from '../support/pam.ts';

const A = '330000011'; // creates its professionals' accounts
const B = '330000012'; // does not
const C = '330000013'; // no ACTX secret
const J = '330000014'; // signs a JWT with the shared secret
const K = '330000015'; // signs a JWT with its private key; the DCC holds the public one
const SECRET = {
  [A]: 'secret-of-a-0123456789',
  [B]: 'secret-of-b-0123456789',
  [J]: 'secret-of-j-0123456789',
};
const RPPS = '10001234567';
const TEST_INS_OID = '1.2.250.1.213.1.4.10';

/** RFC 3986 percent-encoding, written here again so that a bug in the product's cannot hide in both. */
const enc = (s: string) =>
  encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
const canonical = (p: Record<string, string>) =>
  Object.keys(p)
    .sort()
    .map((k) => `${enc(k)}=${enc(p[k]!)}`)
    .join('&');
const sign = (p: Record<string, string>, secret: string) =>
  crypto.createHmac('sha256', secret).update(canonical(p)).digest('hex');

const now = () => Math.floor(Date.now() / 1000);
const nonce = () => crypto.randomBytes(12).toString('hex');

// URLSearchParams writes the space as '+': the signature is over the decoded value, encoded again.
const professional = { rpps: RPPS, pro_nom: "D'Arc", pro_prenom: 'Anne Marie' };
const dupont = { ipp: 'IPP-1001', nom: 'DUPONT', prenom: 'Jean', ddn: '19600315', sexe: 'M', lieu: '31555' };

describe('contextual calls (ACTX)', function () {
  this.timeout(60_000);
  let h: Harness;
  let app: FastifyInstance;
  let base: string;

  const keys = tempDir('onco-actx-keys-');
  let privateKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
  before(async () => {
    const pair = await generateKeyPair('ES256');
    privateKey = pair.privateKey;
    fs.writeFileSync(path.join(keys, 'k.pem'), await exportSPKI(pair.publicKey));
    fs.writeFileSync(path.join(keys, 'b.secret'), `${SECRET[B]}\n`);
  });
  const open = async (dataDir?: string) => {
    h = await startEngine({
      channels: [],
      dataDir,
      directory: {
        establishments: [
          {
            finess: A,
            name: 'CH A',
            actx: { secret: SECRET[A], createAccounts: true, acceptTestIns: true },
          },
          { finess: B, name: 'CH B', actx: { secretFile: path.join(keys, 'b.secret') } },
          { finess: C, name: 'CH C', actx: { secret: '' } },
          { finess: J, name: 'CH J', actx: { verifier: 'jwt', secret: SECRET[J], createAccounts: true } },
          {
            finess: K,
            name: 'CH K',
            actx: { verifier: 'jwt', publicKeyFile: path.join(keys, 'k.pem'), createAccounts: true },
          },
        ],
      },
    });
    ({ app, base } = await listenDashboard(h.engine));
  };
  const close = async () => {
    await app.close();
    await h.stop();
  };
  before(() => open());
  after(async () => {
    await close();
    fs.rmSync(h.dataDir, { recursive: true, force: true });
    fs.rmSync(h.configDir, { recursive: true, force: true });
    fs.rmSync(keys, { recursive: true, force: true });
  });

  /** A call signed as the establishment would; `tamper` changes the query after signing. */
  function url(
    kind: 'patient' | 'global',
    params: Record<string, string>,
    o: { secret?: string; tamper?: Record<string, string | undefined> } = {},
  ): string {
    const p: Record<string, string> = { ts: String(now()), nonce: nonce(), ...params };
    const signed = { ...p, sig: sign(p, o.secret ?? SECRET[p.finess as keyof typeof SECRET] ?? 'none') };
    for (const [k, v] of Object.entries(o.tamper ?? {})) {
      if (v === undefined) delete (signed as Record<string, string>)[k];
      else (signed as Record<string, string>)[k] = v;
    }
    return `${base}/actx/${kind}?${new URLSearchParams(signed).toString()}`;
  }
  const json = (u: string) => fetch(u, { headers: { accept: 'application/json' }, redirect: 'manual' });
  const lastAudit = () => h.engine.store.audit.search({}, { limit: 1 }).items[0]!;

  it('signs the canonical string as the contract writes it', () => {
    assert.equal(
      canonical({ pro_nom: "D'Arc", prenom: 'Anne Marie', nom: 'ÉLOI', b: '*~' }),
      'b=%2A~&nom=%C3%89LOI&prenom=Anne%20Marie&pro_nom=D%27Arc',
    );
    assert.equal(
      canonicalString({ sig: 'x', pro_nom: "D'Arc", prenom: 'Anne Marie', nom: 'ÉLOI', b: '*~' }),
      'b=%2A~&nom=%C3%89LOI&prenom=Anne%20Marie&pro_nom=D%27Arc',
    );
  });

  it('creates the patient and the account on a first call, and reuses both on the next', async () => {
    const first = await json(url('patient', { finess: A, ...professional, ...dupont }));
    assert.equal(first.status, 200);
    const body = (await first.json()) as { patientId: number; patientCreated: boolean; userCreated: boolean };
    assert.equal(body.patientCreated, true);
    assert.equal(body.userCreated, true);
    const account = h.engine.store.accounts.get(RPPS)!;
    assert.deepEqual([account.role, account.finess], ['establishment', A]);
    const view = h.engine.store.patients.view(body.patientId)!;
    assert.equal(view.patient.birthName, 'DUPONT');
    assert.deepEqual(
      view.identifiers.map((i) => [i.finess, i.ipp]),
      [[A, 'IPP-1001']],
    );
    const audited = lastAudit();
    assert.deepEqual(
      [audited.actor, audited.action, audited.outcome, audited.patientId, audited.establishment],
      [RPPS, 'actx-patient', 'ok', body.patientId, A],
    );
    assert.equal((audited.detail as { rpps: string }).rpps, RPPS);

    const again = await json(url('patient', { finess: A, ...professional, ...dupont }));
    assert.equal(again.status, 200);
    assert.deepEqual(await again.json(), {
      patientId: body.patientId,
      patientCreated: false,
      userCreated: false,
    });
  });

  it('answers a browser with the session cookie and a redirect to the patient page it may read', async () => {
    const res = await fetch(url('patient', { finess: A, ...professional, ...dupont }), {
      redirect: 'manual',
    });
    assert.equal(res.status, 302);
    // Through a page of our own (the SameSite=Strict cookie would not follow a cross-site chain).
    const landing = await fetch(`${base}${res.headers.get('location')!}`);
    const location = /http-equiv="refresh" content="0;url=([^"]+)"/.exec(await landing.text())?.[1] ?? '';
    assert.match(location, /^\/patients\/\d+$/);
    const cookie = res.headers
      .getSetCookie()
      .map((c) => c.split(';')[0]!)
      .find((c) => c.startsWith('onco_session='))!;
    assert.ok(cookie, 'a session cookie is set');
    const page = await fetch(`${base}${location}`, { headers: { cookie, accept: 'text/html' } });
    assert.equal(page.status, 200);
    assert.match(await page.text(), /DUPONT/);
    // Least privilege: a patient its establishment has no IPP for is unknown to this session.
    const other = await h.engine.store.write.vigilance.applyIdentity(
      {
        birthName: 'AUTRE',
        firstGivenName: 'Paul',
        birthDate: '19700101',
        sex: 'M',
        identifiers: [{ finess: B, ipp: 'B-1' }],
      },
      { author: 'test', insOids: acceptedInsOids() },
    );
    const refused = await fetch(`${base}/patients/${other.patientId}`, {
      headers: { cookie, accept: 'text/html' },
    });
    assert.equal(refused.status, 404);
    assert.equal(lastAudit().outcome, 'refused');
    const search = await fetch(`${base}/patients?q=autre`, { headers: { cookie, accept: 'text/html' } });
    assert.equal(search.status, 403);
  });

  it('lands a global call on the home page, without a patient', async () => {
    const res = await fetch(url('global', { finess: A, ...professional }), { redirect: 'manual' });
    assert.equal(res.status, 302);
    assert.equal(res.headers.get('location'), '/actx/continue?to=%2F');
    const body = await (await json(url('global', { finess: A, ...professional }))).json();
    assert.deepEqual(body, { patientId: null, patientCreated: false, userCreated: false });
    assert.equal(lastAudit().action, 'actx-global');
  });

  it('continues only to a page of this site', async () => {
    for (const to of ['//evil.example/x', 'https://evil.example/', '/\\evil.example']) {
      const page = await (await fetch(`${base}/actx/continue?to=${encodeURIComponent(to)}`)).text();
      assert.match(page, /content="0;url=\/"/, to);
    }
  });

  const refusals: Array<[string, () => string, number, string, RegExp]> = [
    [
      'wrong signature',
      () => url('patient', { finess: A, ...professional, ...dupont }, { tamper: { nom: 'DURAND' } }),
      401,
      'ACTX_SIGNATURE_INVALID',
      /signature/,
    ],
    [
      'wrong secret',
      () => url('patient', { finess: A, ...professional, ...dupont }, { secret: SECRET[B] }),
      401,
      'ACTX_SIGNATURE_INVALID',
      /signature/,
    ],
    [
      'stale ts',
      () => url('patient', { finess: A, ...professional, ...dupont, ts: String(now() - 310) }),
      401,
      'ACTX_TS_OUT_OF_WINDOW',
      /-31\d s away/,
    ],
    [
      'future ts',
      () => url('patient', { finess: A, ...professional, ...dupont, ts: String(now() + 310) }),
      401,
      'ACTX_TS_OUT_OF_WINDOW',
      /\+3(09|10) s away/,
    ],
    [
      'missing trait',
      () => {
        const { nom: _n, ...rest } = dupont;
        return url('patient', { finess: A, ...professional, ...rest });
      },
      400,
      'ACTX_PARAM_MISSING',
      /parameter nom is missing/,
    ],
    [
      'malformed date',
      () => url('patient', { finess: A, ...professional, ...dupont, ddn: '19601301' }),
      400,
      'ACTX_PARAM_INVALID',
      /parameter ddn is malformed/,
    ],
    [
      'bad INS key',
      () =>
        url('patient', {
          finess: A,
          ...professional,
          ...dupont,
          ins: '160037512345600',
          ins_oid: TEST_INS_OID,
        }),
      400,
      'ACTX_PARAM_INVALID',
      /parameter ins is malformed/,
    ],
    [
      'unknown FINESS',
      () => url('patient', { finess: '339999999', ...professional, ...dupont }),
      401,
      'ACTX_ESTABLISHMENT_UNKNOWN',
      /339999999 is not an establishment/,
    ],
    [
      'establishment without secret',
      () => url('patient', { finess: C, ...professional, ...dupont }),
      401,
      'ACTX_NOT_ENABLED',
      /not enabled for FINESS 330000013/,
    ],
    [
      'missing signature',
      () => url('patient', { finess: A, ...professional, ...dupont }, { tamper: { sig: undefined } }),
      400,
      'ACTX_PARAM_MISSING',
      /parameter sig is missing/,
    ],
    [
      'unknown professional where accounts are not created',
      () => url('patient', { finess: B, ...professional, rpps: '19999999999', ...dupont }),
      403,
      'ACTX_ACCOUNT_UNKNOWN',
      /no DCC account for RPPS 19999999999/,
    ],
  ];
  for (const [what, make, status, code, message] of refusals) {
    it(`refuses ${what}: ${status} ${code}, audited with the RPPS`, async () => {
      // Each the first of its minute (the next ones of a minute are counted, as tested below).
      await h.engine.store.write.actx.closeRefusalWindows(now() + 3600);
      const res = await json(make());
      assert.equal(res.status, status);
      const body = (await res.json()) as { error: string; message: string; hint?: string };
      assert.equal(body.error, code);
      assert.match(body.message, message);
      assert.ok(body.hint, 'a hint says what to do');
      const audited = lastAudit();
      assert.equal(audited.outcome, 'refused');
      assert.equal((audited.detail as { reason: string }).reason, code);
      assert.match(audited.actor, /^1\d{10}$/);
    });
  }

  it('sums refused calls per establishment (or address), reason and minute; an accepted call keeps its row', async () => {
    const { store } = h.engine;
    const afterEveryMinute = () => now() + 3600;
    // The minutes of the refusals above closed first, so that these calls open their own.
    await store.write.actx.closeRefusalWindows(afterEveryMinute());
    const before = lastAudit().id;
    const started = Date.now();
    const unsigned = () =>
      url('patient', { finess: A, ...professional, ...dupont }, { tamper: { sig: '0'.repeat(64) } });
    for (let i = 0; i < 200; i++) assert.equal((await json(unsigned())).status, 401);
    // An invented FINESS per call: summed by the caller's address, not one count each.
    for (let i = 0; i < 50; i++) {
      const invented = url('global', { finess: `33${9_000_000 + i}`, ...professional });
      assert.equal((await json(invented)).status, 401);
    }
    const minutes = Math.ceil((Date.now() - started) / 60_000) + 1;
    assert.equal((await json(url('patient', { finess: A, ...professional, ...dupont }))).status, 200);
    const accepted = lastAudit();
    await store.write.actx.closeRefusalWindows(afterEveryMinute());

    const rows = store.audit.search({}, { limit: 500 }).items.filter((r) => r.id > before);
    const of = (reason: string) => rows.filter((r) => (r.detail as { reason?: string }).reason === reason);
    const calls = (audited: typeof rows) =>
      audited.reduce((n, r) => n + ((r.detail as { attempts?: number }).attempts ?? 1), 0);
    const signature = of('ACTX_SIGNATURE_INVALID');
    assert.equal(calls(signature), 200, 'every refused call is counted');
    assert.ok(signature.length <= 2 * minutes, `${signature.length} rows for 200 calls`);
    assert.ok(signature.every((r) => r.establishment === A && r.action === 'actx-patient'));
    const first = signature.find((r) => r.id === Math.min(...signature.map((s) => s.id)))!;
    assert.equal(first.actor, RPPS, 'the first refusal of the minute is audited with its RPPS');
    const invented = of('ACTX_ESTABLISHMENT_UNKNOWN');
    assert.equal(calls(invented), 50);
    assert.ok(invented.length <= 2 * minutes, `${invented.length} rows for 50 calls`);
    assert.ok(invented.some((r) => (r.detail as { attempts?: number }).attempts && r.source === '127.0.0.1'));
    assert.deepEqual(
      [accepted.actor, accepted.action, accepted.outcome, (accepted.detail as { rpps: string }).rpps],
      [RPPS, 'actx-patient', 'ok', RPPS],
      'an accepted call writes its own row, with the RPPS',
    );
  });

  it('accepts a ts inside the window, either way', async () => {
    for (const skew of [-290, 290]) {
      const res = await json(
        url('patient', { finess: A, ...professional, ...dupont, ts: String(now() + skew) }),
      );
      assert.equal(res.status, 200, `skew ${skew}`);
    }
  });

  it('refuses a replayed nonce with 409, also after a restart', async () => {
    const once = url('patient', { finess: A, ...professional, ...dupont });
    assert.equal((await json(once)).status, 200);
    const replay = await json(once);
    assert.equal(replay.status, 409);
    assert.equal(((await replay.json()) as { error: string }).error, 'ACTX_NONCE_REPLAYED');
    assert.equal(lastAudit().outcome, 'refused');
    const { dataDir, configDir } = h;
    const before = base;
    await close();
    await open(dataDir);
    fs.rmSync(configDir, { recursive: true, force: true });
    assert.equal((await json(once.replace(before, base))).status, 409, 'the spent nonce outlives the engine');
  });

  it('refuses an account another establishment owns', async () => {
    const res = await json(url('patient', { finess: B, ...professional, ...dupont }));
    assert.equal(res.status, 403);
    const body = (await res.json()) as { error: string; message: string };
    assert.equal(body.error, 'ACTX_ACCOUNT_MISMATCH');
    assert.match(body.message, new RegExp(`belongs to FINESS ${A}`));
  });

  it('follows the identity rules: a qualified INS is kept, a near match opens a review item', async () => {
    const ins = insOf('2750731555001');
    const qualified = (await (
      await json(
        url('patient', {
          finess: A,
          ...professional,
          ipp: 'IPP-2001',
          nom: 'LEROY',
          prenom: 'Claire',
          ddn: '19750701',
          sexe: 'F',
          ins,
          ins_oid: TEST_INS_OID,
        }),
      )
    ).json()) as { patientId: number };
    const p = h.engine.store.patients.get(qualified.patientId)!;
    assert.deepEqual([p.reliability, p.ins?.matricule], ['QUAL', ins]);

    const near = (await (
      await json(url('patient', { finess: A, ...professional, ...dupont, ipp: 'IPP-1002', nom: 'DUPOND' }))
    ).json()) as { patientId: number; patientCreated: boolean };
    assert.equal(near.patientCreated, true, 'never glued to DUPONT on a guess');
    const open = h.engine.store.vigilance.listOpen().items.filter((r) => r.patientId === near.patientId);
    assert.equal(open.length, 1);
    assert.equal(h.engine.store.patients.get(open[0]!.candidateId)!.birthName, 'DUPONT');
  });

  it('lets a nonce be used again only once its window has passed (pruned)', async () => {
    const { actx } = h.engine.store.write;
    const t = now();
    const entry = {
      kind: 'global' as const,
      finess: A,
      nonce: 'prune-test-nonce',
      windowS: 300,
      professional: { rpps: RPPS, family: 'Martin', given: 'Anne' },
      identity: null,
      insOids: [],
      createAccounts: true,
      accountRole: 'establishment' as const,
      source: '127.0.0.1',
    };
    assert.equal((await actx.enter({ ...entry, ts: t, now: t })).ok, true);
    assert.equal((await actx.enter({ ...entry, ts: t + 10, now: t + 10 })).ok, false);
    assert.equal((await actx.enter({ ...entry, ts: t + 301, now: t + 301 })).ok, true);
  });

  it('verifies a JWT establishment through the same flow', async () => {
    const token = (secret: string, jti = nonce()) =>
      new SignJWT({ finess: J, ...professional, rpps: '10001111111', ...dupont })
        .setProtectedHeader({ alg: 'HS256' })
        .setIssuedAt()
        .setJti(jti)
        .sign(new TextEncoder().encode(secret));
    const jti = nonce();
    const good = `${base}/actx/patient?finess=${J}&jwt=${await token(SECRET[J], jti)}`;
    const res = await json(good);
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { userCreated: boolean }).userCreated, true);
    assert.equal((await json(good)).status, 409);
    const forged = await json(`${base}/actx/patient?finess=${J}&jwt=${await token(SECRET[A])}`);
    assert.equal(forged.status, 401);
    assert.equal(((await forged.json()) as { error: string }).error, 'ACTX_TOKEN_INVALID');
  });

  it('verifies a JWT signed with the private key of an establishment whose public key the DCC holds', async () => {
    const claims = { finess: K, ...professional, rpps: '10002222222', ...dupont };
    const token = (key: typeof privateKey | Uint8Array, alg: string) =>
      new SignJWT(claims).setProtectedHeader({ alg }).setIssuedAt().setJti(nonce()).sign(key);
    const res = await json(`${base}/actx/patient?finess=${K}&jwt=${await token(privateKey, 'ES256')}`);
    assert.equal(res.status, 200);
    // The public key is public: an HS256 token "signed" with it must not pass.
    const pem = new TextEncoder().encode(fs.readFileSync(path.join(keys, 'k.pem'), 'utf8'));
    const confused = await json(`${base}/actx/patient?finess=${K}&jwt=${await token(pem, 'HS256')}`);
    assert.equal(confused.status, 401);
  });

  it('refuses a HEAD without spending the nonce', async () => {
    const once = url('patient', { finess: A, ...professional, ...dupont });
    assert.ok((await fetch(once, { method: 'HEAD' })).status >= 400);
    assert.equal((await json(once)).status, 200);
  });

  it('refuses a short ACTX secret in the configuration', () => {
    const dir = tempDir();
    fs.writeFileSync(
      path.join(dir, 'directory.yaml'),
      `establishments:\n  - { finess: '${A}', name: A, actx: { secret: short } }\n`,
    );
    const { problems } = loadConfig(dir);
    fs.rmSync(dir, { recursive: true, force: true });
    assert.deepEqual(
      problems.map((p) => p.path),
      ['/establishments/0/actx/secret'],
    );
  });

  it('takes a URL made by `onco-relay actx-url`, fetched by curl', async () => {
    const made = spawnSync(
      process.execPath,
      [
        path.resolve('bin/onco-relay.mjs'),
        'actx-url',
        'patient',
        '--config',
        h.configDir,
        '--url',
        base,
        '--finess',
        A,
        '--rpps',
        '10007654321',
        '--pro-nom',
        "D'Alembert",
        '--pro-prenom',
        'Jean Baptiste',
        '--ipp',
        'IPP-3001',
        '--nom',
        'MARTIN',
        '--prenom',
        'Léa',
        '--ddn',
        '19820212',
        '--sexe',
        'F',
      ],
      { encoding: 'utf8' },
    );
    assert.equal(made.status, 0, made.stderr);
    const signed = made.stdout.trim();
    // curl runs beside the server of this very process: asynchronously, or neither could answer.
    const curl = (...args: string[]) => promisify(execFile)('curl', ['-sS', ...args], { encoding: 'utf8' });
    const { stdout } = await curl('-H', 'Accept: application/json', '-w', '\n%{http_code}', signed);
    const [body, status] = stdout.split('\n');
    assert.equal(status, '200');
    assert.deepEqual(Object.keys(JSON.parse(body!) as object), [
      'patientId',
      'patientCreated',
      'userCreated',
    ]);
    const again = await curl('-o', '/dev/null', '-w', '%{http_code}', signed);
    assert.equal(again.stdout, '409', 'the same URL works once');
    assert.equal(h.engine.store.accounts.get('10007654321')?.finess, A);
  });
});
