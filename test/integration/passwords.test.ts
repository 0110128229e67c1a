// Passwords and accounts through the dashboard: the one-time password of the first start must be
// changed before anything else, a change ends every session, weak hashes are upgraded at login.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { hashPassword, lowerScryptCostForTests, SCRYPT, verifyPasswordHash } from '../../store/accounts.ts';
import { login, startDashboard, type Dashboard, type Session } from './dashboard-harness.ts';
import { addAccount } from '../support/engine-harness.ts';

const first = { login: 'first-admin', password: 'one-time-pw-1234' };

const basic = (login: string, password: string): string =>
  `Basic ${Buffer.from(`${login}:${password}`).toString('base64')}`;

async function sessionOf(base: string, who: { login: string; password: string }): Promise<Session> {
  const s = await login(base, who);
  if (s instanceof Response) throw new Error(`login of ${who.login} failed: ${s.status}`);
  return s;
}

describe('passwords and accounts', function () {
  this.timeout(60_000);
  let d: Dashboard;
  before(async () => {
    d = await startDashboard();
    await addAccount(d.h.engine.store, { ...first, role: 'admin', mustChangePassword: true });
  });
  after(() => d.stop());

  it('leads the first-start admin to the change form from every page, and the change ends every session', async () => {
    const a = await sessionOf(d.base, first);
    const b = await sessionOf(d.base, first);
    const home = await a.get('/');
    assert.equal(home.status, 303);
    assert.equal(home.headers.get('location'), '/password');
    assert.equal((await a.get('/messages')).headers.get('location'), '/password');
    assert.match(await (await a.get('/password')).text(), /one-time password/);
    const api = await fetch(`${d.base}/api/channels`, {
      headers: { authorization: basic(first.login, first.password) },
    });
    assert.equal(api.status, 403);
    assert.equal(((await api.json()) as { error: string }).error, 'PASSWORD_CHANGE_REQUIRED');

    const change = (password: string, current = first.password) =>
      a.post('/password', { _csrf: a.csrf, current, password, confirm: password });
    assert.match(await (await change('short-pw')).text(), /at least 12/);
    assert.match(await (await change('qwertyuiopasdfgh')).text(), /most common passwords/);
    assert.match(
      await (await change('a new long passphrase', 'wrong current')).text(),
      /current password is wrong/,
    );
    const done = await change('a new long passphrase');
    assert.equal(done.status, 303);
    const fresh = done.headers
      .getSetCookie()
      .map((c) => c.split(';')[0]!)
      .find((c) => c.startsWith('onco_session='))!;

    assert.equal(
      (await fetch(`${d.base}/`, { headers: { cookie: fresh, accept: 'text/html' } })).status,
      200,
    );
    for (const old of [a, b]) {
      const r = await old.get('/');
      assert.equal(r.status, 303);
      assert.match(r.headers.get('location') ?? '', /^\/login/, 'the sessions of the old password ended');
    }
    assert.equal(d.h.engine.store.accounts.get(first.login)?.mustChangePassword, false);
    const audited = d.h.engine.store.audit.search({ action: 'account-password' }).items;
    assert.equal(audited[0]?.object, `account:${first.login}`);
    const ok = await fetch(`${d.base}/api/channels`, {
      headers: { authorization: basic(first.login, 'a new long passphrase') },
    });
    assert.equal(ok.status, 200);
  });

  it('upgrades a hash of a lower scrypt cost at the next successful login', async () => {
    const store = d.h.engine.store;
    await addAccount(store, { login: 'old-hash', role: 'viewer', password: 'placeholder-pass' });
    const salt = crypto.randomBytes(16);
    const key = crypto.scryptSync('old hash password', salt, 32, { N: 1024, r: 8, p: 1 });
    const weak = `scrypt$1024$8$1$${salt.toString('base64')}$${key.toString('base64')}`;
    await store.write.accounts.setPasswordHash('old-hash', weak);
    const r = await fetch(`${d.base}/api/channels`, {
      headers: { authorization: basic('old-hash', 'old hash password') },
    });
    assert.equal(r.status, 200);
    const upgraded = store.accounts.row('old-hash')!.password_hash!;
    assert.notEqual(upgraded, weak);
    assert.match(upgraded, /^scrypt\$16384\$8\$1\$/, 'the cost of this process (tests lower it)');
    assert.equal(await verifyPasswordHash('old hash password', upgraded), true);
  });

  it('hashes at the OWASP cost outside tests: N=2^17, r=8, p=1', async () => {
    const restore = lowerScryptCostForTests(SCRYPT.N);
    try {
      const hash = hashPassword('a long enough passphrase');
      assert.match(hash, /^scrypt\$131072\$8\$1\$/);
      assert.equal(await verifyPasswordHash('a long enough passphrase', hash), true);
    } finally {
      restore();
    }
  });
});
