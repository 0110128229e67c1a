import assert from 'node:assert/strict';
import { registeredRoutes } from '../../dashboard/server.ts';
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

  it('answers no route but /api/health and the login form without a login', async () => {
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
    assert.deepEqual(open.sort(), ['GET /api/health → 200', 'GET /login → 200', 'POST /login → 403'].sort());
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
    const patientId = d.h.engine.store.patients.create(
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

  it('locks an account after five failed logins, audits every attempt, and keeps the password out of the trail', async () => {
    for (let i = 0; i < 5; i++) {
      const r = await login(d.base, 'viewer', `wrong-${i}`);
      assert.ok(r instanceof Response && r.status === 401);
    }
    const locked = await login(d.base, 'viewer');
    assert.ok(
      locked instanceof Response && locked.status === 401,
      'the right password is refused while locked',
    );
    // Every refusal shows the same text (no account enumeration), so the lock is read from the store.
    const lockedUntil = d.h.engine.store.accounts.get(users.viewer.login)?.lockedUntil ?? 0;
    assert.ok(lockedUntil > Date.now(), 'five failures lock the account');
    const failures = d.h.engine.store.audit.search({
      actor: users.viewer.login,
      action: 'login-failed',
    }).items;
    assert.equal(failures.length, 6);
    assert.equal(failures[0]!.detail?.reason, 'locked');
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
