// Brute force against every protocol that takes a password, through the one authentication service:
// failures counted per account, audited (aggregated), throttled per address; the right password from
// another address still works; a concurrent burst is decided in order. Loopback is all of 127/8 on
// Linux, so each case attacks from its own address (http.request's localAddress, ssh2's localAddress).
import assert from 'node:assert/strict';
import http from 'node:http';
import ssh2 from 'ssh2';
import SftpClient from 'ssh2-sftp-client';
import { main } from '../../bin/cli.ts';
import { buildServer } from '../../dashboard/server.ts';
import { addAccount, startEngine, type Harness } from '../support/engine-harness.ts';
import { freePort } from '../support/ports.ts';
import { startDashboard, users, type Dashboard } from './dashboard-harness.ts';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request from a chosen loopback address. */
function request(
  url: string,
  from: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method: options.method ?? 'GET', headers: options.headers, localAddress: from, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

const basicOf = (login: string, password: string): string =>
  `Basic ${Buffer.from(`${login}:${password}`).toString('base64')}`;

/** Posts the login form from an address, as a browser there would (form token first). */
async function formLogins(base: string, from: string, login: string, passwords: string[]): Promise<number[]> {
  const page = await request(`${base}/login`, from);
  const cookie = String(page.headers['set-cookie']?.[0] ?? '').split(';')[0]!;
  const csrf = /name="_csrf" value="([^"]+)"/.exec(page.body)![1]!;
  const answers = await Promise.all(
    passwords.map((password) =>
      request(`${base}/login`, from, {
        method: 'POST',
        headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ _csrf: csrf, login, password, next: '/' }).toString(),
      }),
    ),
  );
  return answers.map((a) => a.status);
}

describe('authentication under brute force', function () {
  // scrypt at OWASP cost takes about a second a check on a loaded two-core machine.
  this.timeout(120_000);
  let d: Dashboard;
  before(async () => {
    d = await startDashboard();
  });
  after(() => d.stop());

  const failedAudit = (actor: string, source: string) =>
    d.h.engine.store.audit
      .search({ actor, action: 'login-failed' }, { limit: 500 })
      .items.filter((r) => r.source === source);

  it('dashboard form: five failures throttle the address, not the account; counted and audited once a window', async () => {
    const viewer = users.viewer;
    const wrong = await formLogins(d.base, '127.0.0.11', viewer.login, ['a', 'b', 'c', 'd', 'e']);
    assert.deepEqual(wrong, [401, 401, 401, 401, 401]);
    assert.deepEqual(await formLogins(d.base, '127.0.0.11', viewer.login, [viewer.password]), [401]);
    assert.equal(d.h.engine.store.accounts.get(viewer.login)!.failedLogins, 5);
    // The account is not locked: its owner, elsewhere, logs in.
    assert.deepEqual(await formLogins(d.base, '127.0.0.12', viewer.login, [viewer.password]), [303]);
    // Six refusals, one row now; the rest summed into one row when the window closes.
    assert.equal(failedAudit(viewer.login, '127.0.0.11').length, 1);
    await d.h.engine.store.auth.flushFailures();
    const rows = failedAudit(viewer.login, '127.0.0.11');
    assert.equal(rows.length, 2);
    assert.deepEqual(rows[0]!.detail?.reasons, { 'bad-password': 4, throttled: 1 });
    const trail = JSON.stringify(d.h.engine.store.audit.search({}, { limit: 500 }).items);
    assert.doesNotMatch(trail, new RegExp(viewer.password));
  });

  it('dashboard form: a burst of 100 concurrent guesses with the right password last is refused', async () => {
    const admin = users.admin;
    const guesses = [...Array.from({ length: 99 }, (_, i) => `guess-${i}`), admin.password];
    const statuses = await formLogins(d.base, '127.0.0.13', admin.login, guesses);
    assert.equal(statuses.at(-1), 401, 'the right password, decided after 99 failures, is refused');
    assert.ok(statuses.every((s) => s === 401));
    assert.equal(d.h.engine.store.accounts.get(admin.login)!.failedLogins, 5, 'only 5 were checked');
    await d.h.engine.store.auth.flushFailures();
    const rows = failedAudit(admin.login, '127.0.0.13');
    assert.equal(rows.length, 2, '100 refusals, 2 audit rows: the trail cannot be flooded');
    assert.equal(rows[0]!.detail?.attempts, 99);
    assert.deepEqual(await formLogins(d.base, '127.0.0.14', admin.login, [admin.password]), [303]);
  });

  it('HTTP Basic: throttled per address, the right password works from another one; unknown logins too', async () => {
    const op = users.operator;
    const api = `${d.base}/api/channels`;
    for (let i = 0; i < 5; i++) {
      const r = await request(api, '127.0.0.15', { headers: { authorization: basicOf(op.login, `x${i}`) } });
      assert.equal(r.status, 401);
    }
    const right = { authorization: basicOf(op.login, op.password) };
    assert.equal((await request(api, '127.0.0.15', { headers: right })).status, 401);
    assert.equal((await request(api, '127.0.0.16', { headers: right })).status, 200);
    assert.equal(d.h.engine.store.accounts.get(op.login)!.failedLogins, 0, 'reset by the success');
    // Spraying unknown logins from one address throttles it just the same.
    for (let i = 0; i < 5; i++) {
      await request(api, '127.0.0.17', { headers: { authorization: basicOf(`nobody${i}`, 'x') } });
    }
    assert.equal((await request(api, '127.0.0.17', { headers: right })).status, 401);
    assert.equal(failedAudit('unknown', '127.0.0.17').length, 1);
  });

  it('behind a trusted reverse proxy, throttles the client named by X-Forwarded-For, not the proxy', async () => {
    const app = buildServer(d.h.engine, { bind: '127.0.0.1', port: 0, trustProxy: ['127.0.0.1'] });
    try {
      const as = (client: string, password: string) =>
        app.inject({
          url: '/api/channels',
          headers: { authorization: basicOf(users.viewer.login, password), 'x-forwarded-for': client },
        });
      for (let i = 0; i < 5; i++) assert.equal((await as('10.1.1.1', `no${i}`)).statusCode, 401);
      assert.equal((await as('10.1.1.1', users.viewer.password)).statusCode, 401);
      assert.equal((await as('10.2.2.2', users.viewer.password)).statusCode, 200);
      assert.equal(failedAudit(users.viewer.login, '10.1.1.1').length, 1);
    } finally {
      await app.close();
    }
  });

  it('onco-relay user unlock clears the failures of the account and of the addresses throttled on it', async () => {
    const hosp = users.hospA;
    await formLogins(d.base, '127.0.0.18', hosp.login, ['1', '2', '3', '4', '5']);
    assert.deepEqual(await formLogins(d.base, '127.0.0.18', hosp.login, [hosp.password]), [401]);
    assert.equal(await main(['user', 'unlock', hosp.login, '--data', d.h.dataDir]), 0);
    assert.equal(d.h.engine.store.accounts.get(hosp.login)!.failedLogins, 0);
    assert.deepEqual(await formLogins(d.base, '127.0.0.18', hosp.login, [hosp.password]), [303]);
    const unlock = d.h.engine.store.audit.search({ action: 'account-unlock' }).items;
    assert.equal(unlock[0]?.object, `account:${hosp.login}`);
  });
});

describe('authentication under brute force: SFTP and the HTTP listener', function () {
  this.timeout(120_000);
  let h: Harness;
  let sftpPort: number;
  let httpPort: number;
  before(async () => {
    sftpPort = await freePort();
    httpPort = await freePort();
    h = await startEngine({
      channels: [
        {
          id: 'drop',
          source: { type: 'sftp-drop', folder: 'pathology', port: sftpPort, bind: '127.0.0.1' },
          destinations: [{ name: 'out', type: 'file-writer', path: 'out' }],
        },
        {
          id: 'post',
          source: { type: 'http-listener', port: httpPort, bind: '127.0.0.1', auth: 'basic' },
          destinations: [{ name: 'out', type: 'file-writer', path: 'out2' }],
        },
      ],
    });
    await addAccount(h.engine.store, {
      login: 'chu',
      role: 'establishment',
      finess: '310000001',
      password: 'chu-secret-pass',
    });
    await h.engine.start();
  });
  after(() => h.stop());

  /** One SSH password authentication from an address: true when accepted. */
  const sshLogin = (from: string, password: string): Promise<boolean> =>
    new Promise((resolve, reject) => {
      const client = new ssh2.Client();
      client
        .on('ready', () => {
          client.end();
          resolve(true);
        })
        .on('error', (err: Error & { level?: string }) => {
          if (err.level === 'client-authentication') resolve(false);
          else reject(err);
        })
        .connect({
          host: '127.0.0.1',
          port: sftpPort,
          localAddress: from,
          username: 'chu',
          password,
          tryKeyboard: false,
        });
    });

  it('SFTP: wrong passwords are counted, audited and throttle the address; another address gets in', async () => {
    for (let i = 0; i < 5; i++) assert.equal(await sshLogin('127.0.0.21', `wrong-${i}`), false);
    assert.equal(await sshLogin('127.0.0.21', 'chu-secret-pass'), false, 'throttled');
    assert.equal(h.engine.store.accounts.get('chu')!.failedLogins, 5);
    const failed = h.engine.store.audit.search({ actor: 'chu', action: 'login-failed' }).items;
    assert.equal(failed.length, 1);
    assert.equal(failed[0]!.detail?.via, 'sftp');
    assert.equal(await sshLogin('127.0.0.22', 'chu-secret-pass'), true);
    const logins = h.engine.store.audit.search({ actor: 'chu', action: 'login' }).items;
    assert.equal(logins[0]?.source, '127.0.0.22');
    assert.equal(logins[0]?.detail?.via, 'sftp');
  });

  it('SFTP: an upload is audited with its account, address and file', async () => {
    const client = new SftpClient();
    await client.connect({
      host: '127.0.0.1',
      port: sftpPort,
      localAddress: '127.0.0.25',
      username: 'chu',
      password: 'chu-secret-pass',
    });
    try {
      await client.put(Buffer.from('MSH|^~\\&|A|B\r'), '/in/pathology/report-1.hl7');
    } finally {
      await client.end();
    }
    const upload = h.engine.store.audit.search({ actor: 'chu', action: 'sftp-upload' }).items[0];
    assert.equal(upload?.object, 'sftp:/in/pathology/report-1.hl7');
    assert.equal(upload?.source, '127.0.0.25');
    assert.equal(upload?.establishment, '310000001');
  });

  it('HTTP listener: wrong Basic credentials are counted, audited and throttle the address', async () => {
    const url = `http://127.0.0.1:${httpPort}/`;
    const post = (from: string, password: string) =>
      request(url, from, { method: 'POST', headers: { authorization: basicOf('chu', password) }, body: 'x' });
    for (let i = 0; i < 5; i++) assert.equal((await post('127.0.0.23', `bad${i}`)).status, 401);
    assert.equal((await post('127.0.0.23', 'chu-secret-pass')).status, 401, 'throttled');
    const failed = h.engine.store.audit
      .search({ actor: 'chu', action: 'login-failed' })
      .items.filter((r) => r.source === '127.0.0.23');
    assert.equal(failed.length, 1);
    assert.equal(failed[0]!.detail?.via, 'http-listener');
    assert.equal((await post('127.0.0.24', 'chu-secret-pass')).status, 200);
  });
});
