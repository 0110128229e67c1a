// A 200 MiB upload through the built-in SFTP server must stream to disk: the server process never
// holds the file. OpenSSH's sftp (a separate process) sends it; we watch our own RSS meanwhile.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SftpServer, type Upload } from '../../connectors/sftp-server.ts';
import { channelContext, type ChannelContext } from '../support/channel-context.ts';
import { openssh } from '../support/openssh-sftp.ts';
import { generate, sha256Of } from '../support/large-file.ts';

const MiB = 1024 * 1024;
const SIZE = 200 * MiB;

describe('sftp server: large uploads', function () {
  this.timeout(180_000);
  let dir: string;
  let server: SftpServer;
  let ctx: ChannelContext | undefined;

  before(async function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sftp-large-'));
  });

  after(async function () {
    await server?.stop();
    await ctx?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('streams a 200 MiB upload to disk without holding it in memory', async function () {
    const key = path.join(dir, 'key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', '', '-f', key]);
    // The engine's real accounts: the key is checked as the appliance checks it.
    ctx = await channelContext({
      accounts: [
        {
          login: 'lab',
          role: 'lab',
          finess: '750000001',
          publicKeys: [fs.readFileSync(`${key}.pub`, 'utf8')],
        },
      ],
    });
    server = new SftpServer({
      port: 0,
      bind: '127.0.0.1',
      hostKeyFile: path.join(dir, 'host_key'),
      dataDir: path.join(dir, 'data'),
      accounts: ctx.accounts,
      log: ctx.log,
    });
    await server.start();
    const taken: Array<{ size: number; sha256: string }> = [];
    server.route('molecular', {
      maxFileBytes: 300 * MiB,
      take: async (upload: Upload) =>
        void taken.push({ size: upload.size, sha256: await sha256Of(await upload.file()) }),
    });
    const local = path.join(dir, 'wgs.vcf');
    const expected = await generate(local, SIZE);

    global.gc?.();
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10);
    const run = await openssh(server.address().port, 'lab', key, [`put ${local} /in/molecular/wgs.vcf`]);
    clearInterval(sampler);

    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(taken, [{ size: SIZE, sha256: expected }]);
    const growth = peak - baseline;
    assert.ok(
      growth < SIZE / 4,
      `RSS grew by ${Math.round(growth / MiB)} MiB for a ${SIZE / MiB} MiB upload`,
    );
  });
});
