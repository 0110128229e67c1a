// MLLP throughput on loopback, with a journal that answers at once so that the connector's own cost shows:
// the framer alone, the listener answered one message at a time (what most DPIs do), the listener
// fed a pipelined window, and our sender to our listener.
//   node --import tsx test/bench/mllp-throughput.ts [messages]
import net from 'node:net';
import os from 'node:os';
import { createMllpListener, createMllpSender } from '../../connectors/mllp.ts';
import { MllpFramer, frame } from '../../connectors/mllp-framer.ts';
import type { Receipt, SourceContext } from '../../connectors/contract.ts';

const count = Number(process.argv[2] ?? 20_000);

/**
 * A journal that answers at once, so that only the connector's cost shows (the engine's, journal
 * included, is `npm run bench -- transports`). Benchmarks only: tests use the real engine.
 */
function instantJournal(beforeReceive?: () => Promise<void>): SourceContext {
  let last = 0;
  const quiet = { debug() {}, info() {}, warn() {}, error() {} };
  return {
    channelId: 'bench',
    dataDir: os.tmpdir(),
    log: quiet,
    accounts: { verifyPassword: async () => null, verifyPublicKey: async () => null, find: async () => null },
    report: () => undefined,
    shared: () => Promise.reject(new Error('no shared services in this benchmark')),
    stage: () => Promise.reject(new Error('no staging in this benchmark')),
    receive: async (): Promise<Receipt> => {
      await beforeReceive?.();
      return { messageId: ++last };
    },
    outcome: async (messageId) => ({ messageId, status: 'TRANSFORMED' }),
    answersDue: async () => [],
    answered: async () => undefined,
  };
}

function adt(i: number): Buffer {
  const pad = 'X'.repeat(800);
  return Buffer.from(
    `MSH|^~\\&|GAM|CHU-X|DCC|ONCO|20240306111154||ADT^A01^ADT_A01|M${i}|P|2.5^FRA^2.11|||||FRA|UNICODE UTF-8\r` +
      `PID|||${i}^^^CHU-X^PI||DUPONT^Zoé^^^^^L||19700101|F\rZBE|${pad}\r`,
  );
}

function rate(label: string, n: number, started: bigint, bytes?: number): void {
  const s = Number(process.hrtime.bigint() - started) / 1e9;
  const mb = bytes === undefined ? '' : `, ${(bytes / 1e6 / s).toFixed(0)} MB/s`;
  console.log(`${label}: ${n} in ${s.toFixed(2)} s = ${Math.round(n / s)} msg/s${mb}`);
}

function benchFramer(): void {
  const wire = Buffer.concat(Array.from({ length: count }, (_, i) => frame(adt(i))));
  // The last of three rounds: the first ones measure the JIT warming up.
  for (let round = 1; round <= 3; round++) {
    const framer = new MllpFramer();
    const started = process.hrtime.bigint();
    let frames = 0;
    for (let at = 0; at < wire.length; at += 65536) {
      for (const e of framer.push(wire.subarray(at, at + 65536))) if (e.type === 'frame') frames++;
    }
    if (round === 3) rate('framer, 64 KB chunks', frames, started, wire.length);
  }
}

/** Sends `count` messages keeping at most `window` unanswered; resolves when all are answered. */
function client(port: number, window: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.setNoDelay(true);
    const framer = new MllpFramer();
    let sent = 0;
    let acked = 0;
    const fill = (): void => {
      while (sent < count && sent - acked < window) socket.write(frame(adt(sent++)));
    };
    socket.on('connect', fill);
    socket.on('data', (chunk: Buffer) => {
      for (const e of framer.push(chunk)) if (e.type === 'frame') acked++;
      if (acked === count) socket.end(resolve);
      else fill();
    });
    socket.on('error', reject);
  });
}

async function benchListener(window: number): Promise<void> {
  const listener = createMllpListener({ port: 0, bind: '127.0.0.1' }, instantJournal());
  await listener.start();
  const started = process.hrtime.bigint();
  await client(listener.port, window);
  rate(`listener, window ${window}`, count, started);
  await listener.stop();
}

async function benchSender(): Promise<void> {
  const ctx = instantJournal();
  const listener = createMllpListener({ port: 0, bind: '127.0.0.1' }, ctx);
  await listener.start();
  const sender = createMllpSender({ host: '127.0.0.1', port: listener.port }, ctx);
  const n = Math.min(count, 5000);
  const started = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    await sender.send({
      messageId: i,
      deliveryId: i,
      idempotencyKey: `k${i}`,
      content: adt(i),
      contentType: 'application/hl7-v2',
      meta: {},
      attempt: 1,
    });
  }
  rate('our sender to our listener', n, started);
  await sender.stop();
  await listener.stop();
}

/** With the journal stalled, how much does the listener take in? Paused sockets should cap it near the kernel buffers. */
async function benchStall(): Promise<void> {
  let release: () => void = () => {};
  const stalled = new Promise<void>((resolve) => (release = resolve));
  const listener = createMllpListener(
    { port: 0, bind: '127.0.0.1' },
    instantJournal(() => stalled),
  );
  await listener.start();
  const socket = net.connect(listener.port, '127.0.0.1');
  await new Promise((resolve) => socket.on('connect', resolve));
  const wire = Buffer.concat(Array.from({ length: 50_000 }, (_, i) => frame(adt(i))));
  let flushed = 0;
  for (let at = 0; at < wire.length; at += 65536) {
    const chunk = wire.subarray(at, at + 65536);
    socket.write(chunk, () => (flushed += chunk.length));
  }
  await new Promise((resolve) => setTimeout(resolve, 1000));
  console.log(
    `stalled journal: ${(wire.length / 1e6).toFixed(0)} MB offered, ${(flushed / 1e6).toFixed(1)} MB accepted by the connection (kernel buffers included) after 1 s`,
  );
  release();
  socket.destroy();
  await listener.stop();
}

benchFramer();
await benchStall();
await benchListener(1);
await benchListener(100);
await benchSender();
