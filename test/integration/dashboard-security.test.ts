import assert from 'node:assert/strict';
import { buildServer, registeredRoutes } from '../../dashboard/server.ts';
import { safeNext } from '../../dashboard/pages/login.ts';
import { until } from '../support/engine-harness.ts';
import {
  basic,
  FINESS_A,
  FINESS_B,
  login,
  session,
  startDashboard,
  users,
  type Dashboard,
} from './dashboard-harness.ts';

describe('dashboard security', () => {
  let d: Dashboard;
  before(async () => {
    d = await startDashboard();
  });
  after(() => d.stop());

  const dispatch = (fileName: string, owner: string | undefined, content = 'MSH|^~\\&|A|B\rPID|1||123') =>
    d.h.engine.dispatch('drop', {
      content: Buffer.from(content),
      contentType: 'text/plain',
      meta: { fileName },
      owner,
    });

  it('answers no route but /api/health, the login form and the signed contextual calls without a login', async () => {
    const open: string[] = [];
    for (const r of registeredRoutes(d.app)) {
      for (const method of [r.method].flat()) {
        if (method === 'HEAD') continue;
        const url = r.url.replace(/:[A-Za-z]+/g, (p) =>
          p === ':action' ? 'pause' : p === ':decision' ? 'reject' : '1',
        );
        const res = await d.app.inject({ method: method as 'GET', url, headers: { accept: 'text/html' } });
        const refused =
          res.statusCode === 401 ||
          (res.statusCode === 303 && /^\/login\?next=/.test(String(res.headers.location)));
        if (!refused) open.push(`${method} ${r.url} → ${res.statusCode}`);
      }
    }
    // A contextual call authenticates by its signature (checked in test/integration/actx.test.ts).
    assert.deepEqual(
      open.sort(),
      [
        'GET /actx/continue → 200',
        'GET /actx/global → 400',
        'GET /actx/patient → 400',
        'GET /api/health → 200',
        'GET /login → 200',
        'POST /login → 403',
      ].sort(),
    );
    assert.ok(registeredRoutes(d.app).length > 30, 'the enumeration saw the routes');
  });

  it('refuses wrong Basic credentials with 401 and a challenge', async () => {
    const res = await fetch(`${d.base}/api/channels`, {
      headers: { authorization: `Basic ${Buffer.from('admin1:nope').toString('base64')}` },
    });
    assert.equal(res.status, 401);
    assert.match(res.headers.get('www-authenticate') ?? '', /^Basic/);
  });

  it("shows an establishment only its own messages; another's message by id is not found", async () => {
    const mine = await dispatch('mine.hl7', FINESS_A);
    const theirs = await dispatch('theirs.hl7', FINESS_B);
    const list = (await (
      await fetch(`${d.base}/api/messages`, { headers: { authorization: basic('hospA') } })
    ).json()) as {
      items: Array<{ id: number; owner: string }>;
    };
    assert.ok(list.items.length > 0);
    assert.ok(list.items.every((m) => m.owner === FINESS_A));
    assert.ok(list.items.some((m) => m.id === mine.messageId));
    const other = await fetch(`${d.base}/api/messages/${theirs.messageId}`, {
      headers: { authorization: basic('hospA') },
    });
    assert.equal(other.status, 404);
    const s = await session(d.base, 'hospA');
    assert.equal((await s.get(`/messages/${theirs.messageId}`)).status, 404);
    assert.equal((await s.get(`/messages/${mine.messageId}`)).status, 200);
    const files = await (await s.get('/my-files')).text();
    assert.match(files, /mine\.hl7/);
    assert.doesNotMatch(files, /theirs\.hl7/);
    // An establishment has no business on the overview, channels or patients.
    assert.equal(
      (await fetch(`${d.base}/api/channels`, { headers: { authorization: basic('hospA') } })).status,
      403,
    );
    assert.equal((await s.get('/patients?q=dupont')).status, 403);
  });

  it('refuses a form post without the CSRF token, and takes it with the token', async () => {
    const s = await session(d.base, 'operator');
    const refused = await s.post('/channels/drop/pause', {});
    assert.equal(refused.status, 403);
    assert.equal(d.h.engine.channel('drop').state, 'STARTED');
    const forged = await s.post('/channels/drop/pause', { _csrf: 'x'.repeat(s.csrf.length) });
    assert.equal(forged.status, 403);
    const ok = await s.post('/channels/drop/pause');
    assert.equal(ok.status, 303);
    assert.equal(d.h.engine.channel('drop').state, 'PAUSED');
    await s.post('/channels/drop/resume');
    assert.equal(d.h.engine.channel('drop').state, 'STARTED');
    // Cached Basic credentials must not turn a cross-site form into an API call.
    const basicForm = await fetch(`${d.base}/api/channels/drop/pause`, {
      method: 'POST',
      headers: { authorization: basic('operator'), 'content-type': 'application/x-www-form-urlencoded' },
      body: 'x=1',
    });
    assert.equal(basicForm.status, 415);
    assert.equal(d.h.engine.channel('drop').state, 'STARTED');
  });

  it('lets a viewer read but not act', async () => {
    const s = await session(d.base, 'viewer');
    assert.equal((await s.get('/')).status, 200);
    assert.equal((await s.post('/channels/drop/pause')).status, 403);
    assert.equal(d.h.engine.channel('drop').state, 'STARTED');
    assert.equal((await s.get('/audit')).status, 403);
  });

  it('keeps XSS probes in message content, file names and patient names inert', async () => {
    const probe = '<script>alert(1)</script>';
    const { messageId } = await dispatch(
      `${probe}.hl7`,
      FINESS_A,
      `MSH|^~\\&|<img src=x onerror=alert(1)>\rPID|1||${probe}`,
    );
    const patientId = await d.h.engine.store.write.patients.create(
      {
        birthName: `<svg onload=alert(1)>`,
        givenNames: `"><script>alert(2)</script>`,
        firstGivenName: `"><script>alert(2)</script>`,
        birthDate: '1970-01-01',
        sex: 'F',
        birthPlace: null,
        usedName: null,
        usedGivenName: null,
        ins: null,
        reliability: 'PROV',
        collectionMode: null,
      },
      { author: 'test' },
    );
    const s = await session(d.base, 'admin');
    const pages = [
      await (await s.get(`/messages/${messageId}`)).text(),
      await (await s.get('/messages')).text(),
      await (await s.get(`/patients/${patientId}`)).text(),
    ];
    for (const page of pages) {
      assert.doesNotMatch(page, /<script>alert|<img src=x|<svg onload/);
    }
    assert.match(pages[0]!, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
    assert.match(pages[2]!, /&lt;svg onload=alert\(1\)&gt;/);
    const hosp = await session(d.base, 'hospA');
    assert.doesNotMatch(await (await hosp.get('/my-files')).text(), /<script>alert/);
  });

  it('redirects after login only to a path of this site', async () => {
    for (const next of [
      '/\t/evil.example',
      '/\\evil.example',
      '//evil.example',
      'https://evil.example',
      '/\n/evil',
    ]) {
      assert.equal(safeNext(next), '/', JSON.stringify(next));
    }
    assert.equal(safeNext('/messages?channel=drop#top'), '/messages?channel=drop#top');
    const form = await fetch(`${d.base}/login`);
    const cookie = form.headers.getSetCookie()[0]!.split(';')[0]!;
    const csrf = /name="_csrf" value="([^"]+)"/.exec(await form.text())![1]!;
    const res = await fetch(`${d.base}/login`, {
      method: 'POST',
      redirect: 'manual',
      headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        _csrf: csrf,
        login: users.operator.login,
        password: users.operator.password,
        next: '/\t/evil.example',
      }),
    });
    assert.equal(res.status, 303);
    assert.equal(res.headers.get('location'), '/');
  });

  it('gives /api/health without a login states and counts only; with a login everything', async () => {
    const anonymous = await (await fetch(`${d.base}/api/health`)).text();
    assert.doesNotMatch(anonymous, /lastError|detail/);
    assert.ok(!anonymous.includes(d.h.dataDir), 'no path of the appliance');
    const health = JSON.parse(anonymous) as {
      channels: Array<{ id: string; state: string; backlog: number }>;
    };
    assert.equal(health.channels[0]?.id, 'drop');
    assert.equal(typeof health.channels[0]?.backlog, 'number');
    const full = await (
      await fetch(`${d.base}/api/health`, { headers: { authorization: basic('viewer') } })
    ).json();
    assert.ok('lastError' in (full as { channels: object[] }).channels[0]!);
  });

  it('answers a malformed cookie and a repeated query parameter with 4xx, never 500', async () => {
    const bad = { cookie: 'onco_login_csrf=%E0%A4%A; onco_session=%' };
    assert.equal((await fetch(`${d.base}/login`, { headers: bad })).status, 200);
    const api = await fetch(`${d.base}/api/channels`, {
      headers: { ...bad, authorization: basic('viewer') },
    });
    assert.equal(api.status, 200);
    const repeated = await fetch(`${d.base}/api/messages?channel=drop&channel=other`, {
      headers: { authorization: basic('viewer') },
    });
    assert.equal(repeated.status, 400);
    assert.equal(((await repeated.json()) as { error: string }).error, 'QUERY_REPEATED');
    const page = await fetch(`${d.base}/login?next=/a&next=/b`);
    assert.equal(page.status, 400);
  });

  it('marks the cookies Secure behind a TLS proxy (auto), always or never as configured', async () => {
    const secure = async (mode: 'auto' | 'always' | 'never', headers: Record<string, string>) => {
      const app = buildServer(d.h.engine, { bind: '127.0.0.1', port: 0, secureCookies: mode });
      try {
        const res = await app.inject({ method: 'GET', url: '/login', headers });
        return /;\s*Secure/i.test(String(res.headers['set-cookie']));
      } finally {
        await app.close();
      }
    };
    assert.equal(await secure('auto', {}), false);
    assert.equal(await secure('auto', { 'x-forwarded-proto': 'https' }), true);
    assert.equal(await secure('always', {}), true);
    assert.equal(await secure('never', { 'x-forwarded-proto': 'https' }), false);
  });

  it('audits the query of a patient search, not only its result count', async () => {
    const res = await fetch(`${d.base}/api/patients?q=${encodeURIComponent('martin, lea')}`, {
      headers: { authorization: basic('viewer') },
    });
    assert.equal(res.status, 200);
    const row = d.h.engine.store.audit.search({ action: 'patient-search' }).items[0];
    assert.equal(row?.actor, users.viewer.login);
    assert.equal(row?.detail?.query, 'martin, lea');
  });

  it('throttles the address after five failed logins, audits them, and keeps the password out of the trail', async () => {
    for (let i = 0; i < 5; i++) {
      const r = await login(d.base, 'viewer', `wrong-${i}`);
      assert.ok(r instanceof Response && r.status === 401);
    }
    const throttled = await login(d.base, 'viewer');
    assert.ok(
      throttled instanceof Response && throttled.status === 401,
      'the right password is refused from the throttled address',
    );
    // Every refusal shows the same text (no account enumeration): the throttle is read from the store.
    assert.match(await throttled.text(), /too many failures from your address/);
    await d.h.engine.store.auth.flushFailures();
    const failures = d.h.engine.store.audit.search({
      actor: users.viewer.login,
      action: 'login-failed',
    }).items;
    assert.equal(failures.length, 2, 'the first failure, then one row summing the others');
    assert.equal(failures[0]!.detail?.attempts, 5);
    assert.equal(failures.at(-1)!.source, '127.0.0.1');
    const trail = JSON.stringify(d.h.engine.store.audit.search({}, { limit: 500 }).items);
    assert.doesNotMatch(trail, /wrong-0|view-pass-1/);
  });

  it('ends an idle session', async () => {
    const idle = await startDashboard({ auth: { idleMs: 150 } });
    try {
      const s = await session(idle.base, 'admin');
      assert.equal((await s.get('/')).status, 200);
      await until(async () => (await s.get('/')).status === 303, 'the session to expire', 3000);
      assert.match((await s.get('/')).headers.get('location') ?? '', /^\/login/);
    } finally {
      await idle.stop();
    }
  });
});
