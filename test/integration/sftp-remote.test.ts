// The remote SFTP poller and writer against a real OpenSSH server, including the server dying mid-way.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { SendError, type Outbound } from '../../connectors/contract.ts';
import { SftpPoller, type SftpPollOptions } from '../../connectors/sftp-poller.ts';
import { SftpWriter, type SftpPushOptions } from '../../connectors/sftp-writer.ts';
import { until } from '../support/engine-harness.ts';
import { channelContext, type ChannelContext } from '../support/channel-context.ts';
import { startSshd, type Sshd } from '../support/sshd.ts';

describe('remote SFTP against OpenSSH sshd', function () {
  this.timeout(30000);
  let sshd: Sshd;
  let dirCount = 0;

  before(async () => {
    sshd = await startSshd();
  });
  after(() => sshd?.stop());
  // A test that failed between kill() and restart() must not take the next ones down with it.
  afterEach(async () => {
    if (!sshd.running) await sshd.restart();
  });

  /** A fresh folder on the server's disk for one test. */
  function remoteDir(): string {
    const dir = path.join(sshd.files, `t${++dirCount}`);
    fs.mkdirSync(dir);
    return dir;
  }

  const server = () => ({
    host: '127.0.0.1',
    port: sshd.port,
    username: sshd.user,
    privateKey: sshd.clientPrivateKey,
    hostKeySha256: sshd.hostKeySha256,
    connectTimeoutMs: 5000,
  });

  const lastErrors = (ctx: ChannelContext): string[] =>
    ctx.states.map((r) => r.lastError).filter((e): e is string => typeof e === 'string');

  describe('poller (sftp-poll)', () => {
    let ctx: ChannelContext;
    let poller: SftpPoller | undefined;
    beforeEach(async () => (ctx = await channelContext()));

    function startPoller(dir: string, extra: Partial<SftpPollOptions> = {}): SftpPoller {
      poller = new SftpPoller(
        {
          ...server(),
          path: dir,
          afterRead: 'delete',
          include: '.*',
          pollMs: 100,
          maxFileBytes: 1024 * 1024,
          contentType: 'application/hl7-v2',
          reconnectMinMs: 50,
          reconnectMaxMs: 200,
          ...extra,
        },
        ctx,
      );
      void poller.start();
      return poller;
    }
    afterEach(async () => {
      await poller?.stop();
      poller = undefined;
      await ctx.stop();
    });

    it('takes a stable file and deletes it only once receive() has resolved', async () => {
      const dir = remoteDir();
      fs.writeFileSync(path.join(dir, 'a.hl7'), 'MSH|one');
      let commit!: () => void;
      startPoller(dir);
      ctx.gate = new Promise((resolve) => (commit = resolve));
      const msg = await ctx.nextReceive();
      assert.equal(msg.content?.toString(), 'MSH|one');
      assert.equal(msg.meta?.fileName, 'a.hl7');
      assert.ok(fs.existsSync(path.join(dir, 'a.hl7')), 'file must stay until the commit');
      commit();
      await until(() => !fs.existsSync(path.join(dir, 'a.hl7')), 'a.hl7 deleted after commit');
      assert.equal(ctx.journal.length, 1);
    });

    it('leaves the file on the server while receive() fails, and takes it once it succeeds', async () => {
      const dir = remoteDir();
      fs.writeFileSync(path.join(dir, 'b.hl7'), 'MSH|two');
      startPoller(dir);
      ctx.failure = new Error('journal is down');
      await until(
        () => lastErrors(ctx).some((e) => e.includes('journal is down')),
        'receive failure reported',
      );
      assert.ok(fs.existsSync(path.join(dir, 'b.hl7')));
      assert.equal(ctx.journal.length, 0);
      ctx.failure = null;
      await until(() => !fs.existsSync(path.join(dir, 'b.hl7')), 'b.hl7 taken');
      assert.deepEqual(
        ctx.journal.map((m) => m.content.toString()),
        ['MSH|two'],
      );
    });

    it('ignores NAME.part until it is renamed to NAME', async () => {
      const dir = remoteDir();
      fs.writeFileSync(path.join(dir, 'c.hl7.part'), 'MSH|three');
      fs.writeFileSync(path.join(dir, 'd.hl7'), 'MSH|four');
      startPoller(dir);
      // d.hl7 taken means two polls listed c.hl7.part as well.
      await until(() => !fs.existsSync(path.join(dir, 'd.hl7')), 'd.hl7 taken');
      assert.ok(fs.existsSync(path.join(dir, 'c.hl7.part')));
      assert.deepEqual(
        ctx.journal.map((m) => m.meta?.fileName),
        ['d.hl7'],
      );
      fs.renameSync(path.join(dir, 'c.hl7.part'), path.join(dir, 'c.hl7'));
      await until(() => !fs.existsSync(path.join(dir, 'c.hl7')), 'c.hl7 taken after rename');
      assert.deepEqual(
        ctx.journal.map((m) => m.meta?.fileName),
        ['d.hl7', 'c.hl7'],
      );
    });

    it("moves taken files into moveTo with afterRead: 'move', keeping an earlier file of the same name", async () => {
      const dir = remoteDir();
      const archive = path.join(dir, 'done');
      fs.mkdirSync(archive);
      fs.writeFileSync(path.join(archive, 'e.hl7'), 'older');
      fs.writeFileSync(path.join(dir, 'e.hl7'), 'MSH|five');
      startPoller(dir, { afterRead: 'move', moveTo: archive });
      await until(() => !fs.existsSync(path.join(dir, 'e.hl7')), 'e.hl7 moved');
      assert.equal(fs.readFileSync(path.join(archive, 'e.hl7'), 'utf8'), 'older');
      assert.equal(fs.readFileSync(path.join(archive, 'e.hl7.1'), 'utf8'), 'MSH|five');
    });

    it('survives the server dying while it polls: reconnects and takes the file after the restart', async () => {
      const dir = remoteDir();
      startPoller(dir);
      await until(() => ctx.states.some((r) => r.connected === true), 'connected');
      await sshd.kill();
      await until(() => ctx.states.some((r) => r.connected === false), 'disconnection reported');
      fs.writeFileSync(path.join(dir, 'f.hl7'), 'MSH|six');
      await sshd.restart();
      await until(() => !fs.existsSync(path.join(dir, 'f.hl7')), 'f.hl7 taken after restart');
      assert.deepEqual(
        ctx.journal.map((m) => m.content.toString()),
        ['MSH|six'],
      );
      assert.equal(ctx.states.at(-1)?.connected, true);
    });

    it('a server dying between the commit and the delete: the file is taken again as a recorded duplicate, never lost', async () => {
      const dir = remoteDir();
      fs.writeFileSync(path.join(dir, 'g.hl7'), 'MSH|seven');
      let commit!: () => void;
      startPoller(dir);
      ctx.gate = new Promise((resolve) => (commit = resolve));
      await ctx.nextReceive();
      await sshd.kill();
      ctx.gate = null;
      commit();
      await until(() => ctx.states.some((r) => r.connected === false), 'disconnection reported');
      assert.ok(fs.existsSync(path.join(dir, 'g.hl7')), 'the delete could not happen');
      await sshd.restart();
      await until(() => !fs.existsSync(path.join(dir, 'g.hl7')), 'g.hl7 deleted after restart');
      assert.equal(ctx.journal.length, 2);
      assert.equal(ctx.journal[1]!.duplicateOf, ctx.journal[0]!.messageId, 'the second take is a duplicate');
    });

    it('refuses a server whose host key does not match the pin, printing the offered fingerprint', async () => {
      const dir = remoteDir();
      fs.writeFileSync(path.join(dir, 'h.hl7'), 'MSH|eight');
      startPoller(dir, { hostKeySha256: 'SHA256:' + 'A'.repeat(43) });
      const error = await until(
        () => lastErrors(ctx).find((e) => e.includes('SFTP_HOST_KEY_MISMATCH')),
        'host key refusal',
      );
      assert.ok(error.includes(sshd.hostKeySha256), error);
      assert.ok(fs.existsSync(path.join(dir, 'h.hl7')));
      assert.equal(ctx.journal.length, 0);
    });
  });

  describe('writer (sftp-push)', () => {
    let ctx: ChannelContext;
    before(async () => (ctx = await channelContext()));
    after(() => ctx.stop());
    let writer: SftpWriter | undefined;

    function makeWriter(dir: string, extra: Partial<SftpPushOptions> = {}): SftpWriter {
      writer = new SftpWriter({ ...server(), path: dir, fileName: '{key}.hl7', ...extra }, ctx);
      return writer;
    }
    afterEach(async () => {
      await writer?.stop();
      writer = undefined;
    });

    function outbound(content: Buffer | string, attempt = 1, meta: Outbound['meta'] = {}): Outbound {
      return {
        messageId: 7,
        deliveryId: 9,
        idempotencyKey: 'd9',
        content: Buffer.from(content),
        contentType: 'application/hl7-v2',
        meta,
        attempt,
      };
    }

    it('uploads NAME.part, then renames it to NAME (seen on the server’s disk)', async () => {
      const dir = remoteDir();
      const names: string[] = [];
      const watcher = fs.watch(dir, (_event, name) => names.push(String(name)));
      try {
        const result = await makeWriter(dir).send(outbound('MSH|out'));
        assert.match(result.detail ?? '', /d9\.hl7$/);
        await until(() => names.includes('d9.hl7'), 'rename event');
      } finally {
        watcher.close();
      }
      assert.equal(names[0], 'd9.hl7.part');
      assert.deepEqual(fs.readdirSync(dir), ['d9.hl7']);
      assert.equal(fs.readFileSync(path.join(dir, 'd9.hl7'), 'utf8'), 'MSH|out');
    });

    it('names the file from meta.fileName when the template says so', async () => {
      const dir = remoteDir();
      await makeWriter(dir, { fileName: '{meta.fileName}' }).send(
        outbound('MSH|meta', 1, { fileName: 'CR-ACP 42.xml' }),
      );
      assert.deepEqual(fs.readdirSync(dir), ['CR-ACP_42.xml']);
    });

    it('a retry finding the complete file of an earlier attempt succeeds without rewriting it', async () => {
      const dir = remoteDir();
      const w = makeWriter(dir);
      await w.send(outbound('MSH|once'));
      const inode = fs.statSync(path.join(dir, 'd9.hl7')).ino;
      const result = await w.send(outbound('MSH|once', 2));
      assert.match(result.detail ?? '', /earlier attempt/);
      assert.equal(fs.statSync(path.join(dir, 'd9.hl7')).ino, inode);
    });

    it('the server dying mid-upload leaves no final file; the retry after restart writes it complete', async () => {
      const dir = remoteDir();
      const content = Buffer.alloc(32 * 1024 * 1024, 'x');
      const w = makeWriter(dir);
      const first = w.send(outbound(content)).then(
        () => null,
        (e: unknown) => e,
      );
      const part = path.join(dir, 'd9.hl7.part');
      await until(() => fs.existsSync(part) && fs.statSync(part).size > 0, 'upload under way', 20000);
      await sshd.kill();
      const error = await first;
      assert.ok(error instanceof SendError, String(error));
      assert.equal(error.code, 'SFTP_TRANSFER_FAILED');
      assert.equal(error.retryable, true);
      assert.ok(!fs.existsSync(path.join(dir, 'd9.hl7')), 'no final file from a cut upload');
      assert.ok(fs.statSync(part).size < content.length);

      const down = await w.send(outbound(content, 2)).catch((e: unknown) => e);
      assert.ok(
        down instanceof SendError && down.retryable && down.code === 'SFTP_CONNECT_FAILED',
        String(down),
      );

      await sshd.restart();
      await w.send(outbound(content, 3));
      assert.deepEqual(fs.readdirSync(dir), ['d9.hl7']);
      assert.ok(fs.readFileSync(path.join(dir, 'd9.hl7')).equals(content));
    });

    it('a missing remote folder is a non-retryable refusal naming the path', async () => {
      const dir = path.join(remoteDir(), 'missing');
      const error = await makeWriter(dir)
        .send(outbound('MSH|x'))
        .catch((e: unknown) => e);
      assert.ok(error instanceof SendError, String(error));
      assert.equal(error.code, 'SFTP_REFUSED');
      assert.equal(error.retryable, false);
      assert.ok(error.message.includes(dir), error.message);
    });

    it('refuses an unpinned server and prints the fingerprint to pin', async () => {
      const error = await makeWriter(remoteDir(), { hostKeySha256: undefined })
        .send(outbound('MSH|x'))
        .catch((e: unknown) => e);
      assert.ok(error instanceof SendError, String(error));
      assert.match(error.message, /SFTP_HOST_KEY_NOT_PINNED/);
      assert.ok(error.message.includes(`hostKeySha256: '${sshd.hostKeySha256}'`), error.message);
    });

    it('a refused login says so without echoing the key', async () => {
      const other = path.join(sshd.dir, 'stranger_key');
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', '', '-f', other]);
      const strangerKey = fs.readFileSync(other, 'utf8');
      const error = await makeWriter(remoteDir(), { privateKey: strangerKey })
        .send(outbound('MSH|x'))
        .catch((e: unknown) => e);
      assert.ok(error instanceof SendError, String(error));
      assert.equal(error.retryable, true);
      assert.match(error.message, /SFTP_AUTH_FAILED/);
      const body = strangerKey.split('\n')[1]!;
      assert.ok(!error.message.includes(body) && !JSON.stringify(ctx.states).includes(body));
    });

    it('accepts a server listed in a hashed known_hosts file, as OpenSSH writes it, with a key file', async () => {
      const dir = remoteDir();
      const knownHosts = path.join(sshd.dir, 'known_hosts');
      fs.writeFileSync(knownHosts, `[127.0.0.1]:${sshd.port} ${sshd.hostPublicKey}\n`);
      execFileSync('ssh-keygen', ['-q', '-H', '-f', knownHosts], { stdio: 'ignore' });
      assert.match(fs.readFileSync(knownHosts, 'utf8'), /^\|1\|/);
      await makeWriter(dir, {
        hostKeySha256: undefined,
        knownHostsFile: knownHosts,
        privateKey: undefined,
        privateKeyFile: path.join(sshd.dir, 'client_key'),
      }).send(outbound('MSH|kh'));
      assert.deepEqual(fs.readdirSync(dir), ['d9.hl7']);
    });
  });
});
