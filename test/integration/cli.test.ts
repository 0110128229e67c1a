// The appliance as a new user meets it: the shipped configuration, the CLI, first start, SIGTERM.
import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { spawnEngine, startChildEngine } from '../support/child-engine.ts';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { tempDir, until } from '../support/engine-harness.ts';
import { freePort } from '../support/ports.ts';
import { Store } from '../../store/store.ts';

const bin = path.resolve('bin/onco-relay.mjs');
const run = (args: string[], input?: string) =>
  spawnSync(process.execPath, [bin, ...args], { input, encoding: 'utf8', timeout: 30_000 });

/** The shipped configuration on a fresh data directory and free ports. */
async function applianceEnv(data = tempDir()): Promise<NodeJS.ProcessEnv> {
  return {
    ...process.env,
    ONCO_DATA_DIR: data,
    ONCO_HTTP_PORT: String(await freePort()),
    ONCO_SFTP_PORT: String(await freePort()),
    ONCO_MLLP_PORT: String(await freePort()),
    ONCO_SMTP_PORT: String(await freePort()),
  };
}

const health = async (env: NodeJS.ProcessEnv) =>
  (await (await fetch(`http://127.0.0.1:${env.ONCO_HTTP_PORT}/api/health`)).json()) as {
    channels: Array<{ id: string; state: string }>;
  };

describe('onco-relay command line', function () {
  // Child processes hash at the full OWASP scrypt cost (seconds each on a loaded machine).
  this.timeout(180_000);
  const children: ChildProcess[] = [];
  const dataDirs: string[] = [];
  after(() => {
    children.forEach((c) => c.kill('SIGKILL'));
    // An engine that outlived its parent (npm) is found by the pid it wrote in its data directory.
    for (const dir of dataDirs) {
      const file = path.join(dir, 'onco-relay.pid');
      if (!fs.existsSync(file)) continue;
      const { pid } = JSON.parse(fs.readFileSync(file, 'utf8')) as { pid: number };
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone: the lock file outlives a killed engine by design.
      }
    }
  });

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
      ONCO_SMTP_PORT: String(await freePort()),
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
      ['documents-mail', 'STARTED'],
      ['documents-mllp', 'UNDEPLOYED'],
      ['documents-out', 'STARTED'],
      ['documents-pickup', 'STARTED'],
      ['documents-sftp', 'UNDEPLOYED'],
      ['file-drop', 'STARTED'],
      ['identity-feed-mllp', 'STARTED'],
      ['identity-feed-sftp', 'STARTED'],
      ['molecular', 'STARTED'],
      ['molecular-orders', 'UNDEPLOYED'],
      ['mss-identity', 'STARTED'],
      ['mss-imap', 'UNDEPLOYED'],
      ['mss-molecular', 'STARTED'],
      ['mss-pathology', 'STARTED'],
      ['mss-replies', 'STARTED'],
      ['pathology', 'STARTED'],
    ]);
    assert.equal(await first.stop(), 0, first.out());
    const second = await start();
    assert.doesNotMatch(second.out(), /one-time password/);
    assert.equal(await second.stop(), 0, second.out());
  });

  it('start: a second engine on the same data directory refuses, naming the holder; kill -9 frees it', async () => {
    const env = await applianceEnv();
    const first = await startChildEngine([], env);
    children.push(first);
    // Other ports, so that only the data directory is shared.
    const { child: second, outcome } = spawnEngine([], await applianceEnv(env.ONCO_DATA_DIR));
    children.push(second);
    assert.equal(await outcome, 'exited', second.output());
    assert.equal(await second.exited, 1);
    assert.match(second.output(), new RegExp(`in use by the engine of process ${first.pid}\\b`));
    assert.match(second.output(), /DATA_DIR_IN_USE: .*Hint: stop it first \(kill -TERM \d+\)/);
    assert.equal((await health(env)).channels.length, 16, 'the first engine keeps running');

    first.kill('SIGKILL');
    await first.exited;
    const third = await startChildEngine([], env);
    children.push(third);
    third.kill('SIGTERM');
    assert.equal(await third.exited, 0, third.output());
  });

  for (const taken of ['ONCO_MLLP_PORT', 'ONCO_HTTP_PORT'] as const) {
    it(`start: ${taken} in use closes everything opened and exits 1 naming the port`, async () => {
      const blocker = net.createServer();
      await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
      const port = (blocker.address() as net.AddressInfo).port;
      try {
        const { child, outcome } = spawnEngine([], { ...(await applianceEnv()), [taken]: String(port) });
        children.push(child);
        assert.equal(await outcome, 'exited', child.output());
        // 'exited' resolves when the process has ended: a listener left open would have kept it alive.
        assert.equal(await child.exited, 1, child.output());
        assert.match(child.output(), new RegExp(`127\\.0\\.0\\.1:${port}\\b.*EADDRINUSE`));
        assert.match(child.output(), /PORT_IN_USE/);
      } finally {
        blocker.close();
      }
    });
  }

  it('npm start: SIGTERM sent to npm reaches the engine, which drains and exits 0', async () => {
    const env = await applianceEnv();
    dataDirs.push(env.ONCO_DATA_DIR!);
    const child = await startChildEngine([], env, { viaNpm: true });
    children.push(child);
    child.kill('SIGTERM');
    assert.equal(await child.exited, 0, child.output());
    assert.match(child.output(), /"signal":"SIGTERM".*\n.*onco-relay stopped/);
  });

  it('deploy CHANNEL: the running appliance picks up an edited channel file, and refuses a broken one', async function () {
    // Four CLI processes, each compiling the sources through tsx: slow on a loaded machine.
    this.timeout(180_000);
    const config = tempDir('onco-config-');
    fs.cpSync(path.resolve('config'), config, { recursive: true });
    const env = await applianceEnv();
    const engine = await startChildEngine(['--config', config], env);
    children.push(engine);
    const password = 'kestrel harbour violin 7319';
    const added = run(
      ['user', 'add', 'night-shift', '--role', 'operator', '--password-stdin', '--data', env.ONCO_DATA_DIR!],
      `${password}\n`,
    );
    assert.equal(added.status, 0, added.stderr);
    const deploy = (channel: string) =>
      spawnSync(
        process.execPath,
        [
          bin,
          'deploy',
          channel,
          '--url',
          `http://127.0.0.1:${env.ONCO_HTTP_PORT}`,
          '--user',
          'night-shift',
          '--password-stdin',
        ],
        { input: `${password}\n`, encoding: 'utf8', timeout: 30_000 },
      );
    const file = path.join(config, 'channels', 'file-drop.yaml');
    const shipped = fs.readFileSync(file, 'utf8');

    fs.writeFileSync(file, shipped.replace('path: outbox/files', 'path: outbox/edited'));
    const ok = deploy('file-drop');
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal(ok.stdout, 'channel "file-drop": STARTED\n');
    fs.writeFileSync(path.join(env.ONCO_DATA_DIR!, 'inbox', 'files', 'edited.txt'), 'after deploy');
    await until(
      () =>
        fs.existsSync(path.join(env.ONCO_DATA_DIR!, 'outbox', 'edited')) &&
        fs
          .readdirSync(path.join(env.ONCO_DATA_DIR!, 'outbox', 'edited'))
          .some((n) => n.endsWith('edited.txt')),
      'the file written where the edited channel says',
    );

    fs.writeFileSync(file, shipped.replace('type: file-writer', 'type: file-writter'));
    const refused = deploy('file-drop');
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /the running version is unchanged; its file has 1 problem\(s\)/);
    assert.match(refused.stderr, /file-drop\.yaml:\d+: \/destinations\/0\/type: .*file-writter/);
    assert.match(
      refused.stderr,
      /^onco-relay deploy: CHANNEL_FILE_INVALID: channel "file-drop" not deployed/,
    );
    const state = (await health(env)).channels.find((c) => c.id === 'file-drop')?.state;
    assert.equal(state, 'STARTED');
    engine.kill('SIGTERM');
    assert.equal(await engine.exited, 0);
  });
});
