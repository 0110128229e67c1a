// One figure of the core bench, in a process of its own so that its memory is its own: prints one
// JSON line. Each figure runs a real engine (FULL sync) in this process; MLLP senders and SFTP
// clients run in child processes of their own.
//   node --import tsx test/bench/core-figure.ts FIGURE 'JSON options'
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { builtinRegistry } from '../../channels/builtins.ts';
import { migrate, openDatabase } from '../../store/db.ts';
import { allMigrations } from '../../store/store.ts';
import { PatientStore, parseIdentity, type IdentityInput } from '../../store/patients.ts';
import { startEngine, tempDir, type Harness } from '../support/engine-harness.ts';
import { freePort } from '../support/ports.ts';
import { rawInserts } from './journal-ingest.ts';
import { cpuByGroup, readThreadCpu, type ThreadCpu } from './thread-cpu.ts';
import { sftpIngest } from './transport-ingest.ts';
import { bareSftpIngest } from './sftp-bare.ts';
import { BENCH_FINESSES, benchDirectory, benchPerson, newPatientA28 } from './people.ts';

const mb = (bytes: number): number => Math.round(bytes / 2 ** 20);
const rssMB = (): number => mb(process.memoryUsage().rss);
/** The most this process has held at once (maxRSS is in KiB). */
const peakMB = (): number => Math.round(process.resourceUsage().maxRSS / 1024);
const seconds = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e9;

/**
 * Each thread's CPU milliseconds per message since `before`: the main thread's, and the store
 * writer's (the wall), found by the name it gives itself. A loaded machine changes these much less
 * than the rates.
 */
function cpuPerMessage(before: ThreadCpu, messages: number): { main: number; writer: number } {
  const ms = (s = 0): number => Number(((s * 1000) / messages).toFixed(3));
  const spent = cpuByGroup(process.pid, readThreadCpu(), before, (name, main) => (main ? 'main' : name));
  return { main: ms(spent.main), writer: ms(spent['onco-writer']) };
}

async function until(done: () => boolean): Promise<void> {
  while (!done()) await new Promise((resolve) => setTimeout(resolve, 5));
}

/** Runs the MLLP senders (mllp-driver.ts) against `port`; resolves with what they measured. */
function drive(port: number, connections: number, messages: number, first: number): Promise<DriverResult> {
  const driver = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      path.join(import.meta.dirname, 'mllp-driver.ts'),
      ...[port, connections, messages, first].map(String),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  driver.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  return new Promise((resolve, reject) =>
    driver.once('exit', (code) =>
      code === 0 ? resolve(JSON.parse(out) as DriverResult) : reject(new Error(`mllp-driver exited ${code}`)),
    ),
  );
}

interface DriverResult {
  messages: number;
  seconds: number;
  msgsPerSec: number;
  p50Ms: number;
  p99Ms: number;
}

/** An engine whose one channel takes MLLP and hands each message to `destination`. */
async function mllpEngine(
  port: number,
  respond: string,
  destination: object,
  steps: object[],
  dataDir?: string,
): Promise<Harness> {
  return startEngine({
    directory: benchDirectory,
    registry: builtinRegistry(),
    ...(dataDir === undefined ? {} : { dataDir }),
    channels: [
      {
        id: 'core',
        queueLimit: 1_000_000,
        source: { type: 'mllp-listener', port, respond },
        steps,
        destinations: [{ name: 'out', ...destination }],
      },
    ],
  });
}

/**
 * A28s of new patients over MLLP into the identity store: acknowledged per second, latency, and
 * filed per second (the last identity filed, from the first one sent). `base` is a data directory
 * to start from (a copy is used).
 */
async function mllpIdentities(o: {
  connections: number;
  respond: 'on-commit' | 'on-outcome';
  messages: number;
  first: number;
  base?: string;
}): Promise<object> {
  let dataDir: string | undefined;
  if (o.base !== undefined) {
    dataDir = tempDir('onco-bench-core-based-');
    fs.copyFileSync(path.join(o.base, 'onco-relay.db'), path.join(dataDir, 'onco-relay.db'));
  }
  const port = await freePort();
  const h = await mllpEngine(port, o.respond, { type: 'identity-store' }, [{ type: 'pam-fr' }], dataDir);
  const atRest = rssMB();
  const channel = h.engine.channel('core');
  const { stats } = h.engine.store.writer;
  const commits0 = stats.commits;
  const writes0 = stats.writes;
  const busy0 = stats.busyMs;
  const cpu0 = process.cpuUsage();
  const threads0 = readThreadCpu();
  const t0 = process.hrtime.bigint();
  const acked = await drive(port, o.connections, o.messages, o.first);
  await until(() => channel.metrics.sent + channel.metrics.errored >= o.messages);
  const filedSeconds = seconds(t0);
  const cpu = process.cpuUsage(cpu0);
  const threads = cpuPerMessage(threads0, o.messages);
  const commits = stats.commits - commits0;
  if (channel.metrics.errored > 0) throw new Error(`${channel.metrics.errored} identities were not filed`);
  const after = rssMB();
  await h.stop();
  return {
    ...acked,
    identitiesFiledPerSec: Math.round(o.messages / filedSeconds),
    // The engine's CPU per message (the senders run in another process): the figure a loaded machine does not change much.
    engineCpuMsPerMessage: Number(((cpu.user + cpu.system) / 1000 / o.messages).toFixed(3)),
    mainThreadCpuMsPerMessage: threads.main,
    writerThreadCpuMsPerMessage: threads.writer,
    // Durable group commits (the poison guard's no-fsync marks aside) and the writes each carried.
    commitsPerMessage: Number((commits / o.messages).toFixed(3)),
    writesPerCommit: Number(((stats.writes - writes0) / Math.max(1, commits)).toFixed(1)),
    // The writer's wall time in transactions (fsyncs and checkpoints included): what it is busy with.
    writerBusyMsPerMessage: Number(((stats.busyMs - busy0) / o.messages).toFixed(3)),
    rssAtRestMB: atRest,
    rssAfterMB: after,
    rssPeakMB: peakMB(),
  };
}

/** MLLP into a file-writer destination: acknowledged per second, and written (fsynced, renamed) per second. */
async function fileDestination(o: { connections: number; messages: number; first: number }): Promise<object> {
  const port = await freePort();
  const out = tempDir('onco-bench-core-out-');
  const h = await mllpEngine(port, 'on-commit', { type: 'file-writer', path: out, queue: 'parallel' }, []);
  const atRest = rssMB();
  const channel = h.engine.channel('core');
  const t0 = process.hrtime.bigint();
  const acked = await drive(port, o.connections, o.messages, o.first);
  await until(() => channel.metrics.sent + channel.metrics.errored >= o.messages);
  const written = seconds(t0);
  const files = fs.readdirSync(out).length;
  if (files !== o.messages) throw new Error(`file destination: ${files} of ${o.messages} files written`);
  const after = rssMB();
  await h.stop();
  return {
    messages: o.messages,
    connections: o.connections,
    ackedMsgsPerSec: acked.msgsPerSec,
    writtenMsgsPerSec: Math.round(o.messages / written),
    ratioWrittenToAcked: Number((o.messages / written / acked.msgsPerSec).toFixed(3)),
    rssAtRestMB: atRest,
    rssAfterMB: after,
    rssPeakMB: peakMB(),
  };
}

/**
 * A base of `patients` distinct patients, each as the identity store files a new one (patient,
 * search keys, IPP, decision), written straight by the store's patient module in large
 * transactions: the vigilance rules' search is what is measured on it, not what builds it.
 */
function seed(o: { patients: number; dir: string }): object {
  const t0 = process.hrtime.bigint();
  const db = openDatabase(path.join(o.dir, 'onco-relay.db'));
  migrate(db, allMigrations);
  const patients = new PatientStore(db);
  const ctx = { author: 'bench-seed' };
  const chunk = db.transaction((from: number, to: number) => {
    for (let n = from; n < to; n++) {
      const p = benchPerson(n, `N${n}`, BENCH_FINESSES[n % BENCH_FINESSES.length]!);
      const input: IdentityInput = {
        birthName: p.birthName,
        givenNames: [p.given],
        firstGivenName: p.given,
        birthDate: p.birthDate,
        sex: p.sex,
        reliability: 'PROV',
        identifiers: [{ finess: p.finess, ipp: p.ipp, namespace: 'HOP' }],
      };
      const identity = parseIdentity(input);
      const patientId = patients.create(identity, ctx);
      for (const ref of input.identifiers) patients.attachIdentifier(patientId, ref, identity, ctx);
      patients.journal({ patientId, action: 'created', rule: 'no-match', ctx, input, detail: { notes: [] } });
    }
  });
  for (let n = 0; n < o.patients; n += 10_000) chunk(n, Math.min(o.patients, n + 10_000));
  db.close();
  return { patients: o.patients, seconds: Number(seconds(t0).toFixed(1)) };
}

async function sftp(o: { files: number }): Promise<object> {
  const atRest = rssMB();
  const r = await sftpIngest(o.files);
  return { ...r, rssAtRestMB: atRest, rssAfterMB: rssMB(), rssPeakMB: peakMB() };
}

/** The same payload as the MLLP figures send: one A28. */
function raw(): object {
  const payload = Buffer.from(newPatientA28(0));
  return {
    payloadBytes: payload.length,
    fullOnePerTxRowsPerSec: Math.round(rawInserts(payload, 1, 2000)),
    full100PerTxRowsPerSec: Math.round(rawInserts(payload, 100, 50_000)),
  };
}

const figures: Record<string, (o: never) => object | Promise<object>> = {
  raw,
  seed,
  sftp,
  'sftp-bare': (o: { files: number }) => bareSftpIngest(o.files),
  'mllp-identities': mllpIdentities,
  'file-destination': fileDestination,
};

const [figure, options] = process.argv.slice(2);
const run = figures[figure!];
if (run === undefined) throw new Error(`unknown figure ${figure}; one of ${Object.keys(figures).join(', ')}`);
const result = await run(JSON.parse(options ?? '{}') as never);
process.stdout.write(`${JSON.stringify(result)}\n`);
