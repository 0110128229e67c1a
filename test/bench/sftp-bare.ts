// The SFTP bench's baseline: the same uploader against a bare ssh2 server that answers OPEN, WRITE
// and CLOSE at once and keeps nothing. What it reaches is the ceiling the SSH layer and the client
// leave on this machine; the engine's figure beside it shows what journaling costs on top.
import crypto from 'node:crypto';
import net, { type AddressInfo } from 'node:net';
import ssh2 from 'ssh2';
import { driveUploader, type UploaderRun } from './transport-ingest.ts';

const OK = 0;

export async function bareSftpIngest(files: number): Promise<UploaderRun & { rate: number; closes: number }> {
  const password = crypto.randomBytes(12).toString('hex');
  let closes = 0;
  const server = new ssh2.Server(
    { hostKeys: [ssh2.utils.generateKeyPairSync('ed25519').private] },
    (client) => {
      client.on('authentication', (ctx) =>
        ctx.method === 'password' && ctx.password === password ? ctx.accept() : ctx.reject(['password']),
      );
      client.on('ready', () =>
        client.on('session', (accept) =>
          accept().on('sftp', (acceptSftp) => {
            const sftp = acceptSftp();
            let handles = 0;
            sftp.on('OPEN', (id: number) => {
              const handle = Buffer.alloc(4);
              handle.writeUInt32BE(handles++);
              sftp.handle(id, handle);
            });
            sftp.on('WRITE', (id: number) => sftp.status(id, OK));
            sftp.on('CLOSE', (id: number) => {
              closes++;
              sftp.status(id, OK);
            });
          }),
        ),
      );
    },
  );
  // As the engine's server does: each small reply leaves at once (no Nagle).
  const listener = net.createServer({ noDelay: true }, (socket) => server.injectSocket(socket));
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', () => resolve()));
  try {
    const { port } = listener.address() as AddressInfo;
    const run = await driveUploader(port, 'lab', password, files);
    return { ...run, rate: files / run.seconds, closes };
  } finally {
    await new Promise<void>((resolve) => listener.close(() => resolve()));
  }
}
