// The appliance as a new user meets it: the shipped configuration, the CLI, first start, SIGTERM.
import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { startChildEngine } from '../support/child-engine.ts';
import fs from 'node:fs';
import path from 'node:path';
import { tempDir, until } from '../support/engine-harness.ts';
import { freePort } from '../support/ports.ts';
import { Store } from '../../store/store.ts';

const bin = path.resolve('bin/onco-relay.mjs');
const run = (args: string[], input?: string) =>
  spawnSync(process.execPath, [bin, ...args], { input, encoding: 'utf8', timeout: 30_000 });

describe('onco-relay command line', function () {
  this.timeout(60_000);
  const children: ChildProcess[] = [];
  after(() => children.forEach((c) => c.kill('SIGKILL')));

  it('validate: exit 0 on the shipped config, 1 naming file and line on a broken one', () => {
    assert.equal(run(['validate']).status, 0);
    const dir = tempDir();
    fs.mkdirSync(path.join(dir, 'channels'));
    fs.writeFileSync(
      path.join(dir, 'channels', 'x.yaml'),
      'id: x\nsource: { type: folder }\ndestinations: []\n',
    );
    fs.writeFileSync(
      path.join(dir, 'channels', 'y.yaml'),
      'id: y\nsource: { type: folder }\ndestinations: [{ name: d, type: file-writer, path: out }]\n',
    );
    const r = run(['validate', '--config', dir]);
    assert.equal(r.status, 1);
    assert.match(
      r.stderr,
      /\/channels\/y\.yaml:2: \/source: missing required setting "path" \(fix: add path: …\)/,
    );
    assert.match(r.stderr, /channels\/x\.yaml:3: \/destinations: must NOT have fewer than 1 items/);
  });

  it('user add: creates an account from a password on stdin, refuses a duplicate and a bad role', () => {
    const data = tempDir();
    const ok = run(
      [
        'user',
        'add',
        'chu-x',
        '--role',
        'establishment',
        '--finess',
        '310000001',
        '--password-stdin',
        '--data',
        data,
      ],
      'a long enough passphrase\n',
    );
    assert.equal(ok.status, 0, ok.stderr);
    const again = run(
      [
        'user',
        'add',
        'chu-x',
        '--role',
        'establishment',
        '--finess',
        '310000001',
        '--password-stdin',
        '--data',
        data,
      ],
      'another long passphrase\n',
    );
    assert.equal(again.status, 1);
    assert.match(again.stderr, /already exists/);
    assert.equal(
      run(['user', 'add', 'y', '--role', 'root', '--password-stdin', '--data', data], 'x\n').status,
      2,
    );
    const store = new Store({ dataDir: data });
    assert.equal(store.accounts.get('chu-x')?.finess, '310000001');
    assert.equal(store.audit.search({ action: 'account-add' }).items[0]?.object, 'account:chu-x');
    store.close();
  });

  it('user add and passwd: short or common passwords and a FINESS outside the directory are refused', function () {
    // Seven commands, two of them hashing at full scrypt cost.
    this.timeout(240_000);
    const data = tempDir();
    const add = (login: string, finess: string, password: string) =>
      run(
        ['user', 'add', login, '--role', 'lab', '--finess', finess, '--password-stdin', '--data', data],
        password,
      );
    const unknown = add('lab-x', '999999999', 'a long enough passphrase\n');
    assert.equal(unknown.status, 1);
    assert.match(unknown.stderr, /FINESS 999999999 is not in the directory/);
    assert.match(add('lab-x', '310000002', 'short pw\n').stderr, /at least 12/);
    assert.match(add('lab-x', '310000002', 'qwertyuiopasdfgh\n').stderr, /most common passwords/);
    assert.equal(add('lab-x', '310000002', 'a long enough passphrase\n').status, 0);
    assert.match(run(['user', 'passwd', 'lab-x', '--data', data], '123qweasdzxc\n').stderr, /most common/);
    const changed = run(['user', 'passwd', 'lab-x', '--data', data], 'another long passphrase\n');
    assert.equal(changed.status, 0, changed.stderr);
    assert.equal(run(['user', 'disable', 'lab-x', '--data', data]).status, 0);
    const store = new Store({ dataDir: data });
    assert.equal(store.accounts.get('lab-x')?.disabled, true);
    const acts = store.audit
      .search({ actor: `cli:${process.env.USER ?? 'unknown'}` })
      .items.map((r) => r.action);
    assert.deepEqual(acts, ['account-disable', 'account-password', 'account-add']);
    store.close();
  });

  it('start: first-start admin password once, a dropped file journaled and written out, SIGTERM exits 0', async () => {
    const data = tempDir();
    const env = {
      ...process.env,
      ONCO_DATA_DIR: data,
      ONCO_HTTP_PORT: String(await freePort()),
      ONCO_SFTP_PORT: String(await freePort()),
      ONCO_MLLP_PORT: String(await freePort()),
    };
    const start = async (): Promise<{ out: () => string; stop: () => Promise<number | string | null> }> => {
      const child = await startChildEngine([], env);
      children.push(child);
      return {
        out: child.output,
        stop: () => {
          child.kill('SIGTERM');
          return new Promise((r) => child.once('exit', (code, signal) => r(code ?? signal)));
        },
      };
    };
    const first = await start();
    assert.match(first.out(), /one-time password\s+(\S{12,})/);
    fs.writeFileSync(path.join(data, 'inbox', 'files', 'hello.txt'), 'hello DCC');
    const written = await until(
      () => fs.readdirSync(path.join(data, 'outbox', 'files')).find((n) => n.endsWith('hello.txt')),
      'the file written out',
    );
    assert.equal(fs.readFileSync(path.join(data, 'outbox', 'files', written), 'utf8'), 'hello DCC');
    const health = (await (await fetch(`http://127.0.0.1:${env.ONCO_HTTP_PORT}/api/health`)).json()) as {
      channels: Array<{ id: string; state: string }>;
    };
    assert.deepEqual(health.channels.map((c) => [c.id, c.state]).sort(), [
      ['file-drop', 'STARTED'],
      ['identity-feed-mllp', 'STARTED'],
      ['identity-feed-sftp', 'STARTED'],
    ]);
    assert.equal(await first.stop(), 0, first.out());
    const second = await start();
    assert.doesNotMatch(second.out(), /one-time password/);
    assert.equal(await second.stop(), 0, second.out());
  });
});
