// The built-in SFTP server against real clients: OpenSSH `sftp` in batch mode (key auth) and
// ssh2-sftp-client (password auth, and its raw SFTP channel for requests OpenSSH will not send).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import SftpClient from 'ssh2-sftp-client';
import type { SFTPWrapper } from 'ssh2';
import type { Source } from '../../connectors/contract.ts';
import { sftpDropSpec } from '../../connectors/sftp-drop.ts';
import { HELD } from '../../connectors/sftp-filesystem.ts';
import {
  channelContext,
  startConnectorEngine,
  type ChannelContext,
  type ConnectorEngine,
  type TestAccount,
} from '../support/channel-context.ts';
import { openssh } from '../support/openssh-sftp.ts';

const HL7 =
  'MSH|^~\\&|GAM|CHU-X|DCC|ONCO|20240306111154||ADT^A28^ADT_A05|3975|P|2.5\rPID|1||000003^^^CHU-X&000897406&N^PI\r';

function keyPair(dir: string, name: string): { key: string; pub: string } {
  const key = path.join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', '', '-f', key]);
  return { key, pub: fs.readFileSync(`${key}.pub`, 'utf8').trim() };
}

/** Polls for what a background step produces (ACK and error files); mocha's timeout bounds it. */
async function eventually<T>(probe: () => T | undefined | false): Promise<T> {
  for (;;) {
    const value = probe();
    if (value) return value;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Open, write at an offset and close on ssh2's SFTP channel, each resolving with the server's reply. */
function uploads(sftp: SFTPWrapper) {
  return {
    open: (p: string) =>
      new Promise<Buffer>((resolve, reject) => sftp.open(p, 'w', (e, h) => (e ? reject(e) : resolve(h)))),
    write: (h: Buffer, data: Buffer, at: number) =>
      new Promise<void>((resolve, reject) =>
        sftp.write(h, data, 0, data.length, at, (e) => (e ? reject(e) : resolve())),
      ),
    close: (h: Buffer) =>
      new Promise<void>((resolve, reject) => sftp.close(h, (e) => (e ? reject(e) : resolve()))),
  };
}

function readIfExists(file: string): string | undefined {
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : undefined;
}

describe('sftp-drop: built-in SFTP server', function () {
  let dir: string;
  let dataDir: string;
  let port: number;
  let chuKey: { key: string; pub: string };
  let strangerKey: { key: string; pub: string };
  let identity: ChannelContext;
  let pathology: ChannelContext;
  let sources: Source[];
  // One engine, two channels: their sftp-drop sources share its one SFTP server.
  let engine: ConnectorEngine;
  const clients: SftpClient[] = [];

  const tree = (login: string, ...p: string[]): string => path.join(dataDir, 'sftp', login, ...p);

  async function connect(username: string, password: string): Promise<SftpClient> {
    const client = new SftpClient();
    await client.connect({ host: '127.0.0.1', port, username, password });
    clients.push(client);
    return client;
  }

  /** ssh2's own SFTP channel under ssh2-sftp-client, for requests no polite client sends. */
  function raw(client: SftpClient): SFTPWrapper {
    return (client as unknown as { sftp: SFTPWrapper }).sftp;
  }

  before(async function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sftp-server-'));
    dataDir = path.join(dir, 'data');
    chuKey = keyPair(dir, 'chu');
    strangerKey = keyPair(dir, 'stranger');
    const accounts: TestAccount[] = [
      {
        login: 'chu',
        role: 'establishment',
        finess: '000897406',
        password: 'chu-secret',
        publicKeys: [chuKey.pub],
      },
      { login: 'lab2', role: 'lab', finess: '750000001', password: 'lab2-secret' },
      { login: 'admin', role: 'admin', password: 'admin-secret' },
    ];
    engine = await startConnectorEngine({
      dataDir,
      accounts,
      // The pathology channel's step fails on content holding "boom": a processing ERROR.
      channels: [
        { id: 'identity-feed' },
        { id: 'pathology', steps: [{ type: 'test-upper' }] },
        { id: 'other-channel' },
      ],
    });
    identity = engine.context('identity-feed', {
      beforeReceive: (msg) => {
        if ((msg.staged?.content ?? msg.content)?.toString() === 'JOURNAL-DOWN')
          throw new Error('journal unavailable');
      },
    });
    pathology = engine.context('pathology');
    const spec = sftpDropSpec();
    sources = [
      spec.create({ folder: 'identity', port: 0 }, identity),
      spec.create({ folder: 'pathology', port: 0, maxFileBytes: 64 * 1024 }, pathology),
    ];
    for (const s of sources) await s.start();
    const detail = identity.states.at(-1)?.detail ?? '';
    port = Number(/:(\d+)\//.exec(detail)?.[1]);
    assert.ok(port > 0, `no port in ${detail}`);
  });

  after(async function () {
    for (const c of clients) await c.end().catch(() => undefined);
    for (const s of sources ?? []) await s.stop();
    await engine?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('takes a file on CLOSE with password auth: journaled before the upload is acknowledged, gone from in/', async function () {
    const client = await connect('chu', 'chu-secret');
    await client.put(Buffer.from(HL7), '/in/identity/adt-3975.hl7');
    // put() resolved, so CLOSE was answered: the message must already be in the journal.
    const msg = identity.journal.at(-1);
    assert.ok(msg);
    assert.equal(msg.content.toString(), HL7);
    assert.equal(msg.contentType, 'application/hl7-v2');
    assert.equal(msg.sender, 'chu');
    assert.equal(msg.owner, '000897406');
    assert.equal(msg.meta?.fileName, 'adt-3975.hl7');
    assert.match(msg.dedupKey ?? '', /^sftp:chu:[0-9a-f]{64}$/);
    assert.deepEqual(await client.list('/in/identity'), []);
  });

  it('waits for one write before answering CLOSE: the audit row is committed with the message', async function () {
    const { store } = engine.engine;
    const writes: Array<{ module: string; method: string; args: unknown[] }> = [];
    const run = store.writer.run.bind(store.writer);
    store.writer.run = (module, method, args, mode) => {
      writes.push({ module, method, args });
      return run(module, method, args, mode);
    };
    const client = await connect('chu', 'chu-secret');
    try {
      await client.put(Buffer.from('a pathology report'), '/in/pathology/cr-audited.txt');
      await client.put(Buffer.alloc(0), '/in/pathology/cr-empty.txt');
    } finally {
      store.writer.run = run;
    }
    // An audit write of its own would be a second commit, after the first, before the reply.
    assert.deepEqual(
      writes.filter((w) => w.module === 'audit').map((w) => w.method),
      [],
    );
    const receives = writes.filter((w) => w.module === 'journal' && w.method === 'receive');
    assert.equal(receives.length, 2);
    const [taken, refused] = pathology.journal.slice(-2);
    const rows = store.audit.search({ actor: 'chu', action: 'sftp-upload' }).items;
    const rowOf = (name: string) => rows.find((r) => r.object === `sftp:/in/pathology/${name}`);
    assert.equal(rowOf('cr-audited.txt')?.outcome, 'ok');
    assert.deepEqual(rowOf('cr-audited.txt')?.detail, { size: 18, messageId: taken!.messageId });
    assert.equal(rowOf('cr-empty.txt')?.outcome, 'refused');
    assert.deepEqual(rowOf('cr-empty.txt')?.detail, {
      size: 0,
      rejected: 'file refused: it is empty; send it again with its content',
      messageId: refused!.messageId,
    });
  });

  it('holds a small upload in memory, in the order and at the offsets written; stages one that outgrows it', async function () {
    const staging = path.join(dataDir, 'sftp', '.uploads');
    const f = uploads(raw(await connect('chu', 'chu-secret')));
    const small = await f.open('/in/identity/held.txt');
    await f.write(small, Buffer.from('world'), 8);
    await f.write(small, Buffer.from('hello'), 0);
    await f.write(small, Buffer.from('W'), 8);
    assert.deepEqual(fs.readdirSync(staging), [], 'a small upload has no staging file');
    const big = await f.open('/in/identity/staged.txt');
    const first = Buffer.alloc(HELD.maxBytes - 10, 'a');
    await f.write(big, first, 0);
    await f.write(big, Buffer.from('0123456789b'), first.length);
    assert.equal(fs.readdirSync(staging).length, 1, 'past the held size the upload is on disk');
    await f.close(small);
    assert.equal(identity.journal.at(-1)?.content.toString(), 'hello\0\0\0World');
    await f.close(big);
    assert.deepEqual(identity.journal.at(-1)?.content, Buffer.concat([first, Buffer.from('0123456789b')]));
    assert.deepEqual(fs.readdirSync(staging), []);
  });

  it('holds no more than its memory budget across uploads: the rest go to staging files', async function () {
    const staging = path.join(dataDir, 'sftp', '.uploads');
    const f = uploads(raw(await connect('chu', 'chu-secret')));
    const shipped = HELD.budgetBytes;
    // The shipped budget holds 256 uploads of the largest held size: four show the same rule.
    HELD.budgetBytes = 4 * HELD.maxBytes;
    const contents = Array.from({ length: 7 }, (_, i) => Buffer.alloc(HELD.maxBytes, `budget ${i} `));
    const handles: Buffer[] = [];
    try {
      for (const [i, content] of contents.entries()) {
        const h = await f.open(`/in/identity/budget-${i}.txt`);
        await f.write(h, content, 0);
        handles.push(h);
      }
    } finally {
      HELD.budgetBytes = shipped;
    }
    assert.equal(fs.readdirSync(staging).length, 3);
    const before = identity.journal.length;
    await Promise.all(handles.map((h) => f.close(h)));
    const journaled = identity.journal.slice(before);
    assert.equal(journaled.length, contents.length);
    for (const [i, content] of contents.entries()) {
      const msg = journaled.find((m) => m.meta?.fileName === `budget-${i}.txt`);
      assert.deepEqual(msg?.content, content, `budget-${i}.txt`);
    }
    assert.deepEqual(fs.readdirSync(staging), []);
  });

  it('writes an HL7 ACK file named after the HL7 file into /out/ack', async function () {
    const client = await connect('chu', 'chu-secret');
    await client.put(Buffer.from(HL7), '/in/identity/a28.hl7');
    const ack = await eventually(() => readIfExists(tree('chu', 'out', 'ack', 'a28.hl7.ack.hl7')));
    assert.match(ack, /^MSH\|/);
    assert.match(ack, /\rMSA\|AA\|3975/);
    const listed = (await client.list('/out/ack')).map((e) => e.name);
    assert.ok(listed.includes('a28.hl7.ack.hl7'));
  });

  it('records a re-sent file as a duplicate of the first', async function () {
    const client = await connect('chu', 'chu-secret');
    const content = Buffer.from(HL7.replace('3975', '4001'));
    await client.put(content, '/in/identity/first.hl7');
    const first = identity.journal.at(-1);
    await client.put(content, '/in/identity/again.hl7');
    assert.equal(identity.journal.at(-1)?.duplicateOf, first?.messageId);
  });

  it('takes a file with key auth from OpenSSH sftp', async function () {
    const local = path.join(dir, 'key-upload.hl7');
    fs.writeFileSync(local, HL7);
    const before = identity.journal.length;
    const run = await openssh(port, 'chu', chuKey.key, [`put ${local} /in/identity/by-key.hl7`]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(identity.journal.length, before + 1);
    assert.equal(identity.journal.at(-1)?.meta?.fileName, 'by-key.hl7');
  });

  it('refuses a key that is not the account’s, a wrong password and accounts without SFTP access', async function () {
    const run = await openssh(port, 'chu', strangerKey.key, ['ls /']);
    assert.notEqual(run.code, 0);
    await assert.rejects(connect('chu', 'wrong'));
    await assert.rejects(connect('admin', 'admin-secret'));
  });

  it('leaves a .part file until its rename to a final name, then takes it', async function () {
    const local = path.join(dir, 'slow.hl7');
    fs.writeFileSync(local, HL7);
    const before = identity.journal.length;
    const put = await openssh(port, 'chu', chuKey.key, [
      `put ${local} /in/identity/slow.hl7.part`,
      'ls -1 /in/identity',
    ]);
    assert.equal(put.code, 0, put.stderr);
    assert.match(put.stdout, /^\/in\/identity\/slow\.hl7\.part$/m);
    assert.equal(identity.journal.length, before, 'a .part file must wait for its rename');
    const rename = await openssh(port, 'chu', chuKey.key, [
      'rename /in/identity/slow.hl7.part /in/identity/slow.hl7',
      'ls -1 /in/identity',
    ]);
    assert.equal(rename.code, 0, rename.stderr);
    assert.doesNotMatch(rename.stdout, /^\/in\/identity\/slow/m);
    assert.equal(identity.journal.length, before + 1);
    assert.equal(identity.journal.at(-1)?.meta?.fileName, 'slow.hl7');
    assert.equal(identity.journal.at(-1)?.content.toString(), HL7);
  });

  it('refuses paths leaving the tree, NUL bytes, odd names, symbolic links and writes outside in/', async function () {
    const local = path.join(dir, 'x.hl7');
    fs.writeFileSync(local, HL7);
    for (const command of [
      'get /../../../etc/passwd',
      'get ../etc/passwd',
      'ls ..',
      'cd /in/../..',
      `put ${local} /in/identity/../../../x.hl7`,
      `put ${local} /in/identity/..%2f..%2fx.hl7`,
      `put ${local} /in/identity/sub/x.hl7`,
      `put ${local} /out/x.hl7`,
      `put ${local} /x.hl7`,
      'symlink /in/identity /in/identity/link',
      'ln -s /etc/passwd /in/identity/passwd',
      'mkdir /in/new',
    ]) {
      const run = await openssh(port, 'chu', chuKey.key, [command]);
      assert.notEqual(run.code, 0, `${command} should fail`);
    }
    const client = await connect('chu', 'chu-secret');
    const sftp = raw(client);
    const status = (op: (cb: (err: (Error & { code?: number }) | null | undefined) => void) => void) =>
      new Promise<number | undefined>((resolve) => op((err) => resolve(err ? err.code : 0)));
    assert.equal(await status((cb) => sftp.stat('/in/identity/a\0b', cb)), 3);
    assert.equal(await status((cb) => sftp.realpath('/..', cb)), 3);
    assert.equal(await status((cb) => sftp.open('/in/identity/a\\..\\b.hl7', 'w', cb)), 3);
    assert.equal(await status((cb) => sftp.symlink('/etc/passwd', '/in/identity/p', cb)), 3);
    assert.ok(!fs.existsSync(path.join(dataDir, 'sftp', 'x.hl7')));
    assert.deepEqual(fs.readdirSync(tree('chu', 'in', 'identity')), []);
  });

  it('normalises REALPATH inside the tree', async function () {
    const client = await connect('chu', 'chu-secret');
    assert.equal(await client.realPath('.'), '/');
    assert.equal(await client.realPath('/in/./identity/../pathology/'), '/in/pathology');
  });

  it('shows an account only its own tree', async function () {
    const chu = await connect('chu', 'chu-secret');
    await chu.put(Buffer.from(HL7), '/in/identity/private.hl7');
    await eventually(() => fs.existsSync(tree('chu', 'out', 'ack', 'private.hl7.ack.hl7')));
    const lab = await connect('lab2', 'lab2-secret');
    assert.deepEqual(await lab.list('/out/ack'), []);
    assert.deepEqual((await lab.list('/')).map((e) => e.name).sort(), ['error', 'in', 'out']);
    await assert.rejects(lab.get('/../chu/out/ack/private.hl7.ack.hl7'));
    await assert.rejects(lab.list('/../chu'));
  });

  it('ends READDIR with EOF after listing every entry in slices', async function () {
    for (let i = 0; i < 150; i++) fs.writeFileSync(tree('lab2', 'out', `doc-${i}.pdf`), `document ${i}`);
    const client = await connect('lab2', 'lab2-secret');
    const sftp = raw(client);
    const handle = await new Promise<Buffer>((resolve, reject) =>
      sftp.opendir('/out', (err, h) => (err ? reject(err) : resolve(h))),
    );
    const names: string[] = [];
    let replies = 0;
    for (;;) {
      const batch = await new Promise<string[] | 'eof'>((resolve, reject) =>
        sftp.readdir(handle, (err, list) => {
          if (err && (err as Error & { code?: number }).code === 1) resolve('eof');
          else if (err) reject(err);
          else resolve(list.map((e) => e.filename));
        }),
      );
      if (batch === 'eof') break;
      names.push(...batch);
      assert.ok(++replies <= 150, 'READDIR never reached EOF');
    }
    assert.equal(names.length, 151);
    assert.ok(names.includes('ack') && names.includes('doc-149.pdf'));
    const ls = await openssh(port, 'chu', chuKey.key, ['ls /out']);
    assert.equal(ls.code, 0, ls.stderr);
  });

  it('lets an account pick up and delete a document from /out', async function () {
    fs.writeFileSync(tree('chu', 'out', 'frcp-12.pdf'), 'FRCP');
    const client = await connect('chu', 'chu-secret');
    assert.equal(((await client.get('/out/frcp-12.pdf')) as Buffer).toString(), 'FRCP');
    await client.delete('/out/frcp-12.pdf');
    assert.ok(!fs.existsSync(tree('chu', 'out', 'frcp-12.pdf')));
  });

  it('refuses an oversize upload as it passes the limit and explains it in /error', async function () {
    const client = await connect('chu', 'chu-secret');
    const before = pathology.journal.length;
    await assert.rejects(client.put(Buffer.alloc(200 * 1024, 0x41), '/in/pathology/huge.pdf'));
    const note = fs.readFileSync(tree('chu', 'error', 'huge.pdf.error.txt'), 'utf8');
    assert.match(note, /larger than the 65536 bytes/);
    assert.equal(pathology.journal.length, before);
    assert.deepEqual(fs.readdirSync(tree('chu', 'in', 'pathology')), []);
    assert.deepEqual(fs.readdirSync(path.join(dataDir, 'sftp', '.uploads')), []);
  });

  it('moves a rejected file to /error with NAME.error.txt saying why', async function () {
    const client = await connect('chu', 'chu-secret');
    await client.put(Buffer.alloc(0), '/in/identity/empty.hl7');
    assert.equal(
      identity.journal.at(-1)?.rejected,
      'file refused: it is empty; send it again with its content',
    );
    const listed = (await client.list('/error')).map((e) => e.name);
    assert.ok(listed.includes('empty.hl7') && listed.includes('empty.hl7.error.txt'), listed.join());
    assert.match(fs.readFileSync(tree('chu', 'error', 'empty.hl7.error.txt'), 'utf8'), /it is empty/);
  });

  it('writes NAME.error.txt when processing fails', async function () {
    const client = await connect('chu', 'chu-secret');
    await client.put(Buffer.from('a report that makes the step go boom'), '/in/pathology/cr-1.pdf');
    const note = await eventually(() => readIfExists(tree('chu', 'error', 'cr-1.pdf.error.txt')));
    assert.match(note, /the test step exploded on purpose/);
  });

  it('fails the upload when the journal cannot take it, and keeps nothing half-taken', async function () {
    const client = await connect('chu', 'chu-secret');
    const before = identity.journal.length;
    await assert.rejects(client.put(Buffer.from('JOURNAL-DOWN'), '/in/identity/later.hl7'));
    assert.equal(identity.journal.length, before);
    assert.deepEqual(fs.readdirSync(tree('chu', 'in', 'identity')), []);
    assert.ok(!fs.existsSync(tree('chu', 'error', 'later.hl7')));
  });

  it('refuses a second channel on the same drop folder or with other server settings', async function () {
    const spec = sftpDropSpec();
    const other = (): ChannelContext => engine.context('other-channel');
    await assert.rejects(spec.create({ folder: 'identity', port: 0 }, other()).start(), {
      code: 'SFTP_FOLDER_TAKEN',
    });
    await assert.rejects(spec.create({ folder: 'molecular', port: 2 }, other()).start(), {
      code: 'SFTP_SETTINGS_CLASH',
    });
    // Both failed starts gave the shared server back: it still serves the two running channels.
    const client = await connect('chu', 'chu-secret');
    assert.deepEqual((await client.list('/in')).map((e) => e.name).sort(), [
      'identity',
      'molecular',
      'pathology',
    ]);
  });

  it('keeps its host key across restarts, readable by the owner only', async function () {
    const file = path.join(dataDir, 'ssh_host_ed25519_key');
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    const key = fs.readFileSync(file);
    // Another engine (its own data directory) starting a server on the same key file.
    const elsewhere = await channelContext();
    const again = sftpDropSpec().create({ folder: 'molecular', port: 0, hostKeyFile: file }, elsewhere);
    try {
      await again.start();
      await again.stop();
    } finally {
      await elsewhere.stop();
    }
    assert.ok(fs.readFileSync(file).equals(key));
  });
});
