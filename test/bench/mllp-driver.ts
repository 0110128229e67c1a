// The MLLP senders of the core bench, in a process of their own so that they do not share the
// engine's event loop: CONNECTIONS connections, each sending an A28 of a new patient and awaiting its
// ACK before the next one, as a hospital's interface engine does. Prints one JSON line: the rate of
// acknowledged messages and the latency of each (send to ACK) at the 50th and 99th percentile.
//   node --import tsx test/bench/mllp-driver.ts PORT CONNECTIONS MESSAGES FIRST_PERSON
import net from 'node:net';
import { frame, MllpFramer } from '../../connectors/mllp-framer.ts';
import { newPatientA28 } from './people.ts';

const [port, connections, messages, first] = process.argv.slice(2).map(Number) as [
  number,
  number,
  number,
  number,
];
const latencies = new Float64Array(messages);
let handed = 0;

function connection(): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.setNoDelay(true);
    const framer = new MllpFramer();
    let current = -1;
    let sentAt = 0n;
    const sendNext = (): void => {
      if (handed >= messages) {
        socket.end(resolve);
        return;
      }
      current = handed++;
      const bytes = frame(Buffer.from(newPatientA28(first + current)));
      sentAt = process.hrtime.bigint();
      socket.write(bytes);
    };
    socket.on('connect', sendNext);
    socket.on('data', (chunk: Buffer) => {
      for (const e of framer.push(chunk)) {
        if (e.type !== 'frame') continue;
        latencies[current] = Number(process.hrtime.bigint() - sentAt) / 1e6;
        const ack = e.payload.toString('latin1');
        if (!/\rMSA\|AA\|/.test(ack)) {
          reject(new Error(`message ${first + current} not accepted: ${ack.replace(/\r/g, ' | ')}`));
          socket.destroy();
          return;
        }
        sendNext();
      }
    });
    socket.on('error', reject);
  });
}

const t0 = process.hrtime.bigint();
await Promise.all(Array.from({ length: connections }, connection));
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
const sorted = latencies.slice().sort();
const at = (q: number): number =>
  Number(sorted[Math.min(messages - 1, Math.floor(q * messages))]!.toFixed(2));
process.stdout.write(
  `${JSON.stringify({ messages, seconds, msgsPerSec: Math.round(messages / seconds), p50Ms: at(0.5), p99Ms: at(0.99) })}\n`,
);
