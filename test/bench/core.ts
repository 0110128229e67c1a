// `npm run bench -- core`: the core's figures side by side in one run (issue 14, item 7), each in a
// process of its own (core-figure.ts) so that each RSS is its own, each rate beside the same run's
// raw better-sqlite3 rate of the same payload:
//   - raw FULL inserts of one A28, 1 and 100 per transaction;
//   - MLLP A28s of new patients into the identity store, 1, 8 and 32 connections each awaiting
//     every ACK, `respond: on-commit` and `on-outcome`: acknowledged per second, p50/p99 latency,
//     identities filed per second;
//   - SFTP small files journaled per second (4 connections × 8 uploads in flight), beside the same
//     uploader against a bare ssh2 server that keeps nothing (the SSH layer's and the client's ceiling),
//     with the CPU per file of the engine's main thread, its other threads and the uploader;
//   - MLLP into a file-writer destination: acknowledged, and written (fsynced, renamed) per second;
//   - flatness: the 8-connection rate on an empty base and on a base of 500,000 patients, built once
//     for the run in a temporary directory;
//   - RSS at rest (engine started) and after each run, and the peak.
// Counts (environment): ONCO_BENCH_CORE_MESSAGES (10,000 per run with 8 or 32 connections, a fifth
// of it with 1), ONCO_BENCH_BASE_PATIENTS (500,000), ONCO_BENCH_SFTP_FILES (10,000).
// ONCO_BENCH_ENGINE_FLAGS: node flags for each engine's process, e.g. `--cpu-prof --cpu-prof-dir=/tmp/p`
// (one profile per thread: the main thread's and the store writer's).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ssh2NativeCrypto } from '../../connectors/sftp-server.ts';
import { tempDir } from '../support/engine-harness.ts';

const MESSAGES = Number(process.env.ONCO_BENCH_CORE_MESSAGES ?? 10_000);
const BASE_PATIENTS = Number(process.env.ONCO_BENCH_BASE_PATIENTS ?? 500_000);
const SFTP_FILES = Number(process.env.ONCO_BENCH_SFTP_FILES ?? 10_000);
const ENGINE_FLAGS = (process.env.ONCO_BENCH_ENGINE_FLAGS ?? '').split(/\s+/).filter(Boolean);
/** The senders' people come after every base's: each A28 is a new patient. */
const FIRST_NEW_PERSON = 10_000_000;

type Figure = Record<string, number>;

/** Runs one figure of core-figure.ts in a process of its own; resolves with its JSON. */
export function figure(name: string, options: object = {}): Promise<Figure> {
  process.stderr.write(`  core: ${name} ${JSON.stringify(options)}\n`);
  const child = spawn(
    process.execPath,
    [
      ...ENGINE_FLAGS,
      '--import',
      'tsx',
      path.join(import.meta.dirname, 'core-figure.ts'),
      name,
      JSON.stringify(options),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  return new Promise((resolve, reject) =>
    child.once('exit', (code) => {
      const last = out.trim().split('\n').at(-1);
      if (code === 0 && last) resolve(JSON.parse(last) as Figure);
      else reject(new Error(`bench figure ${name} exited ${code}`));
    }),
  );
}

const ratio = (rate: number, raw: number): number => Number((rate / raw).toFixed(3));

export async function benchCore(): Promise<Record<string, unknown>> {
  const raw = await figure('raw');
  const raw100 = raw.full100PerTxRowsPerSec!;
  const mllp: Record<string, Record<string, Figure>> = {};
  for (const respond of ['on-commit', 'on-outcome'] as const) {
    mllp[respond] = {};
    for (const connections of [1, 8, 32]) {
      const messages = connections === 1 ? Math.ceil(MESSAGES / 5) : MESSAGES;
      const r = await figure('mllp-identities', { connections, respond, messages, first: FIRST_NEW_PERSON });
      mllp[respond][`${connections}connection${connections > 1 ? 's' : ''}`] = {
        ...r,
        ratioToRaw100PerTx: ratio(r.msgsPerSec!, raw100),
        filedRatioToRaw100PerTx: ratio(r.identitiesFiledPerSec!, raw100),
      };
    }
  }
  const sftpBare = await figure('sftp-bare', { files: SFTP_FILES });
  const sftp = await figure('sftp', { files: SFTP_FILES });
  const fileDestination = await figure('file-destination', {
    connections: 8,
    messages: MESSAGES,
    first: FIRST_NEW_PERSON,
  });

  const base = tempDir('onco-bench-core-base-');
  try {
    const seeded = await figure('seed', { patients: BASE_PATIENTS, dir: base });
    const onBase = await figure('mllp-identities', {
      connections: 8,
      respond: 'on-commit',
      messages: MESSAGES,
      first: FIRST_NEW_PERSON,
      base,
    });
    const empty = mllp['on-commit']!['8connections']!;
    return {
      rawFull: raw,
      mllpA28: mllp,
      sftp: {
        files: SFTP_FILES,
        // Server and uploader alike: ssh2's ciphers in its native binding, or one Node cipher per packet.
        ssh2NativeCrypto: ssh2NativeCrypto(),
        journaledFilesPerSec: Math.round(sftp.rate!),
        ratioToRaw100PerTx: ratio(sftp.rate!, raw100),
        commitsPerFile: sftp.commitsPerFile,
        writesPerCommit: sftp.writesPerCommit,
        cpuPercent: sftp.cpuPercent,
        engineCpuMsPerFile: sftp.serverCpuMsPerFile,
        mainThreadCpuMsPerFile: sftp.mainThreadCpuMsPerFile,
        writerThreadCpuMsPerFile: sftp.writerThreadCpuMsPerFile,
        otherThreadsCpuMsPerFile: sftp.otherThreadsCpuMsPerFile,
        uploaderCpuMsPerFile: sftp.uploaderCpuMsPerFile,
        bareSsh2FilesPerSec: Math.round(sftpBare.rate!),
        bareSsh2ServerCpuMsPerFile: sftpBare.serverCpuMsPerFile,
        bareSsh2UploaderCpuMsPerFile: sftpBare.uploaderCpuMsPerFile,
        ratioToBareSsh2: ratio(sftp.rate!, sftpBare.rate!),
        rssAtRestMB: sftp.rssAtRestMB,
        rssAfterMB: sftp.rssAfterMB,
        rssPeakMB: sftp.rssPeakMB,
      },
      fileDestination: {
        ...fileDestination,
        ratioToRaw100PerTx: ratio(fileDestination.writtenMsgsPerSec!, raw100),
      },
      flatness: {
        basePatients: BASE_PATIENTS,
        baseBuiltSeconds: seeded.seconds,
        emptyBase8ConnectionsMsgsPerSec: empty.msgsPerSec,
        onBase8ConnectionsMsgsPerSec: onBase.msgsPerSec,
        onBaseP50Ms: onBase.p50Ms,
        onBaseP99Ms: onBase.p99Ms,
        onBaseIdentitiesFiledPerSec: onBase.identitiesFiledPerSec,
        onBaseRssPeakMB: onBase.rssPeakMB,
        ratioOnBaseToEmpty: ratio(onBase.msgsPerSec!, empty.msgsPerSec!),
        // The same comparison in the writer thread's CPU, which a loaded machine distorts least.
        emptyBaseWriterCpuMsPerMessage: empty.writerThreadCpuMsPerMessage,
        onBaseWriterCpuMsPerMessage: onBase.writerThreadCpuMsPerMessage,
        writerCpuRatioEmptyToOnBase: ratio(
          empty.writerThreadCpuMsPerMessage!,
          onBase.writerThreadCpuMsPerMessage!,
        ),
      },
    };
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
}
