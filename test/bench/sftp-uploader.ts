// The SFTP clients of the transport bench, in a process of their own so that their encryption does
// not share the engine's event loop. Connects, prints "ready", uploads on "go" from stdin (each put
// resolves once the server has journaled the file), prints its CPU time in ms ("cpu N") and "done".
//   node --import tsx test/bench/sftp-uploader.ts PORT LOGIN FILES CONNECTIONS UPLOADS_PER_CONNECTION
// The password comes in ONCO_BENCH_SFTP_PASSWORD, never on the command line.
import net from 'node:net';
import SftpClient from 'ssh2-sftp-client';
import { smallFile } from './transport-ingest.ts';

const [port, login, files, connections, parallel] = process.argv.slice(2);
const total = Number(files);

const clients = await Promise.all(
  Array.from({ length: Number(connections) }, async () => {
    const sftp = new SftpClient();
    await sftp.connect({
      // With Nagle on, a small request waits for the ACK of the previous one: the bench would measure that.
      sock: net.connect({ host: '127.0.0.1', port: Number(port), noDelay: true }),
      username: login!,
      password: process.env.ONCO_BENCH_SFTP_PASSWORD!,
    });
    return sftp;
  }),
);
process.stdout.write('ready\n');
await new Promise((resolve) => process.stdin.once('data', resolve));
process.stdin.destroy(); // or its open handle keeps this process alive
const cpu0 = process.cpuUsage();
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
const cpu = process.cpuUsage(cpu0);
process.stdout.write(`cpu ${(cpu.user + cpu.system) / 1000}\ndone\n`);
await Promise.all(clients.map((sftp) => sftp.end()));
