// Large content and delivery throughput (issue 14 items 5 and 6), each figure beside its baseline:
//  - RSS growth of the engine while a 200 MB file arrives by SFTP (OpenSSH `sftp`, a child process)
//    and through a watched folder, is kept as a blob and written out by a file writer;
//  - RSS growth while 16 SFTP uploads of 45 MiB run at once, and the disk the identical copies take;
//  - MLLP → file writer: the rate of ACKs and the rate of files written and fsynced (end to end),
//    with 1 and 8 connections.
//   ONCO_BENCH_LARGE_MB (200), ONCO_BENCH_CONCURRENT_MB (45), ONCO_BENCH_MLLP_MESSAGES (10000 per connection count).
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { startEngine, tempDir, until, type Harness } from '../support/engine-harness.ts';
import { freePort } from '../support/ports.ts';
import { openssh } from '../support/openssh-sftp.ts';
import { keyAccount } from '../support/ssh-account.ts';
import { mllpConnection } from './transport-ingest.ts';

const MiB = 1024 * 1024;
const LARGE = Number(process.env.ONCO_BENCH_LARGE_MB ?? 200) * MiB;
const CONCURRENT = Number(process.env.ONCO_BENCH_CONCURRENT_MB ?? 45) * MiB;
const UPLOADS = 16;
const MLLP_MESSAGES = Number(process.env.ONCO_BENCH_MLLP_MESSAGES ?? 10_000);

const mb = (bytes: number) => Math.round(bytes / MiB);
const seconds = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;

/** Runs `work` while sampling this process's RSS every 10 ms: the peak above the RSS at the start. */
async function rssGrowth<T>(
  work: () => Promise<T>,
): Promise<{ value: T; baselineMB: number; growthMB: number }> {
  (globalThis as { gc?: () => void }).gc?.();
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10);
  try {
    const value = await work();
    return { value, baselineMB: mb(baseline), growthMB: mb(peak - baseline) };
  } finally {
    clearInterval(sampler);
  }
}

async function randomFile(file: string, size: number): Promise<void> {
  async function* chunks(): AsyncGenerator<Buffer> {
    for (let left = size; left > 0; left -= MiB) yield randomBytes(Math.min(MiB, left));
  }
  await pipeline(chunks(), fs.createWriteStream(file));
}

/** OpenSSH `sftp` putting `local` as `remote`; resolves with its exit code. */
async function sftpPut(port: number, key: string, local: string, remote: string): Promise<number | null> {
  return (await openssh(port, 'lab', key, [`put ${local} ${remote}`])).code;
}

/** An engine taking SFTP uploads of /in/molecular and files of `inbox/`, writing both out unchanged. */
async function largeContentEngine(dir: string): Promise<{ h: Harness; port: number; key: string }> {
  const port = await freePort();
  const maxFileBytes = 2 * LARGE;
  const h = await startEngine({
    directory: { establishments: [{ finess: '750000001', name: 'Lab', kind: 'molecular-lab' }] },
    start: false,
    channels: [
      {
        id: 'sftp',
        queueLimit: 1_000_000,
        source: { type: 'sftp-drop', folder: 'molecular', port, maxFileBytes },
        destinations: [{ name: 'out', type: 'file-writer', path: 'out-sftp', fileName: '{meta.fileName}' }],
      },
      {
        id: 'folder',
        source: { type: 'folder', path: 'inbox', maxFileBytes, stableMs: 200, pollMs: 200 },
        destinations: [{ name: 'out', type: 'file-writer', path: 'out-folder', fileName: '{meta.fileName}' }],
      },
    ],
  });
  const key = await keyAccount(h.engine.store, dir, 'lab', 'lab', '750000001');
  await h.engine.start();
  return { h, port, key };
}

async function benchLargeContent(): Promise<Record<string, unknown>> {
  const dir = tempDir('onco-bench-large-');
  const { h, port, key } = await largeContentEngine(dir);
  const out = (sub: string, name: string) => path.join(h.dataDir, sub, name);
  try {
    const large = path.join(dir, 'large.bin');
    await randomFile(large, LARGE);
    const sftp = await rssGrowth(async () => {
      const t0 = process.hrtime.bigint();
      const code = await sftpPut(port, key, large, '/in/molecular/large.bin');
      if (code !== 0) throw new Error(`sftp exited with ${code}`);
      await until(() => fs.existsSync(out('out-sftp', 'large.bin')), 'the upload written out', 600_000);
      return seconds(t0);
    });
    fs.mkdirSync(path.join(h.dataDir, 'inbox'), { recursive: true });
    const folder = await rssGrowth(async () => {
      const t0 = process.hrtime.bigint();
      fs.copyFileSync(large, path.join(h.dataDir, 'inbox', 'large-folder.bin'));
      await until(
        () => fs.existsSync(out('out-folder', 'large-folder.bin')),
        'the file written out',
        600_000,
      );
      return seconds(t0);
    });

    // 16 uploads at once of 4 distinct files: 4 blobs on disk, 12 more references.
    const sources = await Promise.all(
      Array.from({ length: 4 }, async (_, i) => {
        const file = path.join(dir, `c${i}.bin`);
        await randomFile(file, CONCURRENT);
        return file;
      }),
    );
    const blobsBefore = blobBytes(h.dataDir);
    const concurrent = await rssGrowth(async () => {
      const t0 = process.hrtime.bigint();
      const codes = await Promise.all(
        Array.from({ length: UPLOADS }, (_, i) =>
          sftpPut(port, key, sources[i % sources.length]!, `/in/molecular/c${i}.bin`),
        ),
      );
      if (codes.some((c) => c !== 0)) throw new Error(`sftp exit codes ${codes.join(',')}`);
      return seconds(t0);
    });
    return {
      largeFileMB: mb(LARGE),
      sftpUpload: { rssBaselineMB: sftp.baselineMB, rssGrowthMB: sftp.growthMB, seconds: round(sftp.value) },
      folderFile: {
        rssBaselineMB: folder.baselineMB,
        rssGrowthMB: folder.growthMB,
        seconds: round(folder.value),
      },
      concurrentSftp: {
        uploads: UPLOADS,
        eachMB: mb(CONCURRENT),
        distinctFiles: sources.length,
        rssGrowthMB: concurrent.growthMB,
        seconds: round(concurrent.value),
        blobsAddedMB: mb(blobBytes(h.dataDir) - blobsBefore),
        uploadedMB: mb(UPLOADS * CONCURRENT),
      },
    };
  } finally {
    await h.stop();
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(h.dataDir, { recursive: true, force: true });
  }
}

function blobBytes(dataDir: string): number {
  const dir = path.join(dataDir, 'blobs');
  return fs
    .readdirSync(dir)
    .filter((n) => !n.startsWith('.'))
    .reduce((sum, n) => sum + fs.statSync(path.join(dir, n)).size, 0);
}

const round = (n: number) => Number(n.toFixed(2));

/**
 * MLLP → file writer (the default ordered queue, fsync on): ACKs per second, and files written
 * and fsynced per second from the first message to the last file marked SENT.
 */
async function mllpToFiles(connections: number, total: number): Promise<Record<string, number>> {
  const port = await freePort();
  const h = await startEngine({
    start: false,
    channels: [
      {
        id: 'files',
        queueLimit: 1_000_000,
        source: { type: 'mllp-listener', port, respond: 'on-commit' },
        destinations: [{ name: 'out', type: 'file-writer', path: 'out' }],
      },
    ],
  });
  await h.engine.start();
  try {
    const channel = h.engine.channel('files');
    let handed = 0;
    const next = () => (handed < total ? handed++ : null);
    const t0 = process.hrtime.bigint();
    await Promise.all(Array.from({ length: connections }, () => mllpConnection(port, next)));
    const acked = seconds(t0);
    await until(() => channel.metrics.sent >= total, 'every file written', 600_000);
    const written = seconds(t0);
    const ackRate = total / acked;
    const endToEnd = total / written;
    return {
      messages: total,
      ackMsgsPerSec: Math.round(ackRate),
      writtenFilesPerSec: Math.round(endToEnd),
      endToEndToAckRatio: Number((endToEnd / ackRate).toFixed(2)),
      lastFileAfterLastAckSec: round(written - acked),
    };
  } finally {
    await h.stop();
    fs.rmSync(h.dataDir, { recursive: true, force: true });
  }
}

async function benchDelivery(): Promise<Record<string, unknown>> {
  return {
    oneConnection: await mllpToFiles(1, Math.round(MLLP_MESSAGES / 4)),
    eightConnections: await mllpToFiles(8, MLLP_MESSAGES),
  };
}

/** `npm run bench -- streams`: large content's memory, and delivery keeping up with intake. */
export async function benchStreams(): Promise<Record<string, unknown>> {
  return { largeContent: await benchLargeContent(), mllpToFileWriter: await benchDelivery() };
}
