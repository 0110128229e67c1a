// The SFTP clients of the transport bench, in a process of their own so that their encryption does
// not share the engine's event loop. Connects, prints "ready", uploads on "go" from stdin (each put
// resolves once the server has journaled the file), prints "done".
//   node --import tsx test/bench/sftp-uploader.ts PORT LOGIN FILES CONNECTIONS UPLOADS_PER_CONNECTION
// The password comes in ONCO_BENCH_SFTP_PASSWORD, never on the command line.
import SftpClient from 'ssh2-sftp-client';
import { smallFile } from './transport-ingest.ts';

const [port, login, files, connections, parallel] = process.argv.slice(2);
const total = Number(files);

const clients = await Promise.all(
  Array.from({ length: Number(connections) }, async () => {
    const sftp = new SftpClient();
    await sftp.connect({
      host: '127.0.0.1',
      port: Number(port),
      username: login!,
      password: process.env.ONCO_BENCH_SFTP_PASSWORD!,
    });
    return sftp;
  }),
);
process.stdout.write('ready\n');
await new Promise((resolve) => process.stdin.once('data', resolve));
process.stdin.destroy(); // or its open handle keeps this process alive
let handed = 0;
await Promise.all(
  clients.flatMap((sftp) =>
    Array.from({ length: Number(parallel) }, async () => {
      while (handed < total) {
        const i = handed++;
        await sftp.put(smallFile(i), `/in/pathology/r${i}.txt`);
      }
    }),
  ),
);
process.stdout.write('done\n');
await Promise.all(clients.map((sftp) => sftp.end()));
