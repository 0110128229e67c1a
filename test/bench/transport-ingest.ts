// Durable ingest through the transports, each beside a baseline measured in the same run: MLLP
// messages per second into a real engine (FULL sync, group commit), each connection awaiting every
// ACK as DPIs do, against raw better-sqlite3 inserts of the same message; and small files uploaded
// over SFTP to the built-in server until each is journaled, against the same files written with fs.
//   ONCO_BENCH_SFTP_FILES (default 10000) sets the number of files.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { builtinRegistry } from '../../channels/builtins.ts';
import { frame, MllpFramer } from '../../connectors/mllp-framer.ts';
import { addAccount, startEngine, tempDir, type Harness } from '../support/engine-harness.ts';
import { freePort } from '../support/ports.ts';
import { discard, rawInserts } from './journal-ingest.ts';
import { cpuByGroup, readThreadCpu } from './thread-cpu.ts';

const SFTP_FILES = Number(process.env.ONCO_BENCH_SFTP_FILES ?? 10_000);
const SFTP_CONNECTIONS = 4;
const UPLOADS_PER_CONNECTION = 8;

/** About 1 KB, the size of a PAM FR ADT; `i` makes each control id, hence each message, distinct. */
function adt(i: number): Buffer {
  return Buffer.from(
    `MSH|^~\\&|GAM|CHU-X|DCC|ONCO|20240306111154||ADT^A01^ADT_A01|B${i}|P|2.5^FRA^2.11|||||FRA|UNICODE UTF-8\r` +
      `PID|||${i}^^^CHU-X^PI||TESTPATIENT^CAMILLE^^^^^L||19700101|F\rZBE|${'X'.repeat(800)}\r`,
  );
}

const seconds = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;

interface Ingest {
  rate: number;
  /** How well group commit shares fsyncs between the messages in flight. */
  writesPerCommit: number;
  /** CPU time of this process over wall time (100 = one core busy; the SFTP clients run in a child). */
  cpuPercent: number;
}

/** Times `work`: `count` items per second and the CPU it took. */
async function timed(
  count: number,
  work: () => Promise<unknown>,
): Promise<{ rate: number; cpuPercent: number }> {
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await work();
  const wall = seconds(t0);
  const { user, system } = process.cpuUsage(cpu0);
  return { rate: count / wall, cpuPercent: Math.round((user + system) / 1e4 / wall) };
}

function writesPerCommit(h: Harness): number {
  const { writes, commits } = h.engine.store.writer.stats;
  return Number((writes / commits).toFixed(1));
}

/** `writer`: the store's writer thread (default), or in the engine's thread (the baseline before issue 14). */
function benchEngine(source: object, writer: 'thread' | 'inline' = 'thread'): Promise<Harness> {
  return startEngine({
    engine: { store: { writer } },
    channels: [
      {
        id: 'bench',
        queueLimit: 1_000_000,
        source,
        destinations: [{ name: 'out', type: 'discard', queue: 'parallel', concurrency: 16 }],
      },
    ],
    registry: builtinRegistry().register(discard),
    start: false,
  });
}

/** One MLLP connection sending the messages `next()` hands out, one at a time, each after the last ACK. */
export function mllpConnection(port: number, next: () => number | null): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.setNoDelay(true);
    const framer = new MllpFramer();
    const sendNext = (): void => {
      const i = next();
      if (i === null) socket.end(resolve);
      else socket.write(frame(adt(i)));
    };
    socket.on('connect', sendNext);
    socket.on('data', (chunk: Buffer) => {
      for (const e of framer.push(chunk)) {
        if (e.type !== 'frame') continue;
        if (!/\rMSA\|AA\|/.test(e.payload.toString('latin1'))) {
          reject(new Error(`unexpected ACK: ${e.payload.toString('latin1')}`));
          return;
        }
        sendNext();
      }
    });
    socket.on('error', reject);
  });
}

async function mllpIngest(connections: number, total: number, writer: 'thread' | 'inline'): Promise<Ingest> {
  const port = await freePort();
  const h = await benchEngine({ type: 'mllp-listener', port, respond: 'on-commit' }, writer);
  await h.engine.start();
  let handed = 0;
  const next = () => (handed < total ? handed++ : null);
  const { rate, cpuPercent } = await timed(total, () =>
    Promise.all(Array.from({ length: connections }, () => mllpConnection(port, next))),
  );
  const result = { rate, cpuPercent, writesPerCommit: writesPerCommit(h) };
  await h.stop();
  return result;
}

async function benchMllp(): Promise<Record<string, unknown>> {
  const payload = adt(0);
  const rawOnePerTx = rawInserts(payload, 1, 2000);
  const raw100PerTx = rawInserts(payload, 100, 50_000);
  const results: Record<string, unknown> = { messageBytes: payload.length };
  for (const [connections, total] of [
    [1, 3000],
    [8, 20_000],
  ] as const) {
    const { rate, cpuPercent, writesPerCommit } = await mllpIngest(connections, total, 'thread');
    const inline = await mllpIngest(connections, total, 'inline');
    results[`${connections}connection${connections > 1 ? 's' : ''}`] = {
      messages: total,
      ingestMsgsPerSec: Math.round(rate),
      writesPerCommit,
      cpuPercent,
      inlineWriterMsgsPerSec: Math.round(inline.rate),
      inlineWritesPerCommit: inline.writesPerCommit,
      rawFullOnePerTxRowsPerSec: Math.round(rawOnePerTx),
      rawFull100PerTxRowsPerSec: Math.round(raw100PerTx),
      ratioToRawOnePerTx: Number((rate / rawOnePerTx).toFixed(2)),
      ratioToRaw100PerTx: Number((rate / raw100PerTx).toFixed(3)),
    };
  }
  return results;
}

/** A small result file; `i` makes each one distinct (no duplicate). */
export const smallFile = (i: number) => Buffer.from(`result ${i} ${'x'.repeat(180)}\n`);

export interface UploaderRun {
  seconds: number;
  /** This process's CPU (every thread) over the wall time, in % of one core. */
  cpuPercent: number;
  /**
   * Milliseconds of CPU per file: this process (`server`), its main thread, the store's writer
   * thread, its other threads (checkpoints, libuv's pool, V8's collector), and the uploader's process.
   */
  serverCpuMsPerFile: number;
  mainThreadCpuMsPerFile: number;
  writerThreadCpuMsPerFile: number;
  otherThreadsCpuMsPerFile: number;
  uploaderCpuMsPerFile: number;
}

/**
 * Runs sftp-uploader.ts against `port` (`files` small files, SFTP_CONNECTIONS × UPLOADS_PER_CONNECTION
 * in flight) and times it from "go" to "done", the connections being made before.
 */
export async function driveUploader(
  port: number,
  login: string,
  password: string,
  files: number,
): Promise<UploaderRun> {
  const uploader = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      path.join(import.meta.dirname, 'sftp-uploader.ts'),
      String(port),
      login,
      String(files),
      String(SFTP_CONNECTIONS),
      String(UPLOADS_PER_CONNECTION),
    ],
    { env: { ...process.env, ONCO_BENCH_SFTP_PASSWORD: password }, stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const exited = new Promise<number | null>((resolve) => uploader.once('exit', resolve));
  const lines = readline.createInterface({ input: uploader.stdout });
  let uploaderCpuMs = 0;
  lines.on('line', (line) => {
    if (line.startsWith('cpu ')) uploaderCpuMs = Number(line.slice(4));
  });
  const said = (word: string) =>
    new Promise<void>((resolve, reject) => {
      lines.on('line', (line) => line === word && resolve());
      void exited.then((code) => reject(new Error(`sftp-uploader exited (${code}) before "${word}"`)));
    });
  await said('ready');
  const threads0 = readThreadCpu();
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  uploader.stdin.end('go\n');
  await said('done');
  const wall = seconds(t0);
  const cpu = process.cpuUsage(cpu0);
  const threads = readThreadCpu();
  await exited;
  const {
    main = 0,
    writer = 0,
    others = 0,
  } = cpuByGroup(process.pid, threads, threads0, (name, isMain) =>
    isMain ? 'main' : name === 'onco-writer' ? 'writer' : 'others',
  );
  const perFile = (ms: number) => Number((ms / files).toFixed(3));
  return {
    seconds: wall,
    cpuPercent: Math.round((cpu.user + cpu.system) / 1e4 / wall),
    serverCpuMsPerFile: perFile((cpu.user + cpu.system) / 1000),
    mainThreadCpuMsPerFile: perFile(main * 1000),
    writerThreadCpuMsPerFile: perFile(writer * 1000),
    otherThreadsCpuMsPerFile: perFile(others * 1000),
    uploaderCpuMsPerFile: perFile(uploaderCpuMs),
  };
}

/**
 * Uploads `files` over SFTP from a child process (sftp-uploader.ts), so that the clients' encryption
 * runs on the other core; each put resolves once the server has journaled the file (CLOSE answered).
 */
export async function sftpIngest(
  files: number,
): Promise<Ingest & UploaderRun & { journaled: number; commitsPerFile: number }> {
  const port = await freePort();
  const h = await benchEngine({ type: 'sftp-drop', folder: 'pathology', port });
  const password = crypto.randomBytes(12).toString('hex');
  await addAccount(h.engine.store, { login: 'lab', role: 'lab', finess: '310000001', password });
  await h.engine.start();
  const { stats } = h.engine.store.writer;
  const commits0 = stats.commits;
  const run = await driveUploader(port, 'lab', password, files);
  const journaled = h.engine.channel('bench').metrics.received;
  const result = {
    ...run,
    rate: files / run.seconds,
    journaled,
    // Durable group commits while the files came in (their processing's included) per file.
    commitsPerFile: Number(((stats.commits - commits0) / files).toFixed(3)),
    writesPerCommit: writesPerCommit(h),
  };
  await h.stop();
  return result;
}

/** The same files written to a local directory with fs, as many at once as the SFTP clients have. */
async function fsWrites(files: number): Promise<number> {
  const dir = tempDir('onco-bench-fs-');
  let handed = 0;
  const { rate } = await timed(files, () =>
    Promise.all(
      Array.from({ length: SFTP_CONNECTIONS * UPLOADS_PER_CONNECTION }, async () => {
        while (handed < files) {
          const i = handed++;
          await fs.writeFile(path.join(dir, `r${i}.txt`), smallFile(i));
        }
      }),
    ),
  );
  await fs.rm(dir, { recursive: true, force: true });
  return rate;
}

async function benchSftp(): Promise<Record<string, unknown>> {
  const { rate, cpuPercent, journaled, writesPerCommit } = await sftpIngest(SFTP_FILES);
  if (journaled !== SFTP_FILES) throw new Error(`SFTP bench: ${journaled} of ${SFTP_FILES} files journaled`);
  const fsRate = await fsWrites(SFTP_FILES);
  const payload = smallFile(0);
  const rawOnePerTx = rawInserts(payload, 1, 2000);
  const raw100PerTx = rawInserts(payload, 100, 50_000);
  return {
    files: SFTP_FILES,
    fileBytes: payload.length,
    connections: SFTP_CONNECTIONS,
    uploadsPerConnection: UPLOADS_PER_CONNECTION,
    journaledFilesPerSec: Math.round(rate),
    writesPerCommit,
    cpuPercent,
    fsWriteFilesPerSec: Math.round(fsRate),
    rawFullOnePerTxRowsPerSec: Math.round(rawOnePerTx),
    rawFull100PerTxRowsPerSec: Math.round(raw100PerTx),
    ratioToRawOnePerTx: Number((rate / rawOnePerTx).toFixed(2)),
    ratioToFsWrite: Number((rate / fsRate).toFixed(3)),
  };
}

export async function benchTransportIngest(): Promise<Record<string, unknown>> {
  return { mllp: await benchMllp(), sftp: await benchSftp() };
}
