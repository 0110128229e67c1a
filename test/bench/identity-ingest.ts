// Identity filing: A28 messages through a real engine (pam-fr step, identity-store destination,
// FULL sync) and the bulk import of the region's whole base from PAM FR files (`onco-relay import
// identities` in a process of its own: its RSS and CPU are the import's). Synthetic, fictitious people; one in
// five also known to a second establishment.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { builtinRegistry } from '../../channels/builtins.ts';
import { idleSource } from '../support/sink.ts';
import { startEngine, tempDir } from '../support/engine-harness.ts';
import { benchDirectory as directory, feedMessage as message } from './people.ts';
import { Store } from '../../store/store.ts';
import { cpuByGroup, readThreadCpu, type ThreadCpu } from './thread-cpu.ts';

async function engineIngest(total: number, producers: number): Promise<number> {
  const { engine } = await startEngine({
    directory,
    registry: builtinRegistry().register(idleSource),
    channels: [
      {
        id: 'identity',
        queueLimit: 1_000_000,
        source: { type: 'test-idle' },
        steps: [{ type: 'pam-fr' }],
        destinations: [{ name: 'identities', type: 'identity-store' }],
      },
    ],
  });
  const channel = engine.channel('identity');
  let next = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: producers }, async () => {
      while (next < total) {
        const i = next++;
        await channel.receive({ content: Buffer.from(message(i)), contentType: 'application/hl7-v2' });
      }
    }),
  );
  while (channel.metrics.sent + channel.metrics.errored < total) await new Promise((r) => setTimeout(r, 20));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (channel.metrics.errored > 0) throw new Error(`${channel.metrics.errored} identities were refused`);
  await engine.stop();
  return total / seconds;
}

/** The process's memory and each thread's CPU (Linux /proc), read while it runs. */
interface ProcessSample {
  rssMB: number;
  peakMB: number;
  /** Resident memory that is the process's own, not pages of the node binary and libraries. */
  anonMB: number;
  /** By thread id; the process's own id is its main thread. */
  cpu: ThreadCpu;
}

function sampleProcess(pid: number): ProcessSample | null {
  let status: string;
  try {
    status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    // The process has ended.
    return null;
  }
  const mb = (field: string) =>
    Math.round(Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0) / 1024);
  return { rssMB: mb('VmRSS'), peakMB: mb('VmHWM'), anonMB: mb('RssAnon'), cpu: readThreadCpu(pid) };
}

/** The CPU seconds so far of the main thread, of the store's writer, and of the other threads together. */
function threadCpu(pid: number, s: ProcessSample): { main: number; writer: number; others: number } {
  const by = cpuByGroup(pid, s.cpu, new Map(), (name, main) =>
    main ? 'main' : name === 'onco-writer' ? 'writer' : 'others',
  );
  return { main: by.main ?? 0, writer: by.writer ?? 0, others: by.others ?? 0 };
}

const round1 = (x: number): number => Math.round(x * 10) / 10;

/**
 * `onco-relay import identities` itself, in a process of its own, on files of 10,000 messages: its
 * peak RSS and when it was reached, and the CPU of its main thread (reading, parsing, mapping) and
 * of the store's writer thread (whose CPU is the load's wall: decisions are sequential), at each
 * 50,000 identities (the per-identity cost grows with the base).
 */
async function bulkLoad(total: number): Promise<Record<string, unknown>> {
  const dir = tempDir('onco-bench-identities-');
  const config = tempDir('onco-bench-config-');
  const data = tempDir('onco-bench-data-');
  const perFile = 10_000;
  for (let f = 0; f * perFile < total; f++) {
    const parts: string[] = [];
    for (let i = f * perFile; i < Math.min(total, (f + 1) * perFile); i++) parts.push(message(i));
    fs.writeFileSync(path.join(dir, `identities-${String(f).padStart(3, '0')}.hl7`), parts.join(''));
  }
  // JSON is YAML: the bench's establishments are the directory.
  fs.writeFileSync(path.join(config, 'directory.yaml'), JSON.stringify(directory));
  try {
    const started = process.hrtime.bigint();
    const elapsed = () => round1(Number(process.hrtime.bigint() - started) / 1e9);
    const cli = spawn(
      process.execPath,
      [path.resolve('bin/onco-relay.mjs'), 'import', 'identities', dir, '--data', data, '--config', config],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    // The command starts the import again in a child process (bin/onco-relay.mjs): that child is
    // the import, sampled as such; the launcher that waits for it is reported beside it.
    const launcher = cli.pid!;
    let pid = 0;
    let launcherPeak = { rssMB: 0, anonMB: 0 };
    const findImport = (): void => {
      try {
        const children = fs.readFileSync(`/proc/${launcher}/task/${launcher}/children`, 'utf8');
        for (const child of children.trim().split(' ').filter(Boolean)) {
          const args = fs.readFileSync(`/proc/${child}/cmdline`, 'utf8');
          if (args.includes('onco-relay.mjs') && args.includes('--max-semi-space-size')) pid = Number(child);
        }
      } catch {
        // The launcher ended: the import is over.
      }
    };
    let last: ProcessSample = { rssMB: 0, peakMB: 0, anonMB: 0, cpu: new Map() };
    // Identities filed as the progress line last said: what a sample's CPU and memory are set against.
    let filed = 0;
    const peak = { mb: 0, atIdentities: 0, atSeconds: 0 };
    const take = (): void => {
      const l = sampleProcess(launcher);
      if (l !== null)
        launcherPeak = {
          rssMB: Math.max(launcherPeak.rssMB, l.peakMB),
          anonMB: Math.max(launcherPeak.anonMB, l.anonMB),
        };
      if (pid === 0) findImport();
      if (pid === 0) return;
      const s = sampleProcess(pid);
      if (s === null) return;
      // A thread that ended (the writer, at close) keeps its last reading.
      for (const [tid, t] of last.cpu) if (!s.cpu.has(tid)) s.cpu.set(tid, t);
      last = s;
      if (s.peakMB > peak.mb)
        Object.assign(peak, { mb: s.peakMB, atIdentities: filed, atSeconds: elapsed() });
    };
    const sampler = setInterval(take, 250);
    const checkpoints: Array<Record<string, number>> = [];
    let previous = { identities: 0, writer: 0 };
    let pending = '';
    cli.stderr.on('data', (chunk: Buffer) => {
      pending += chunk.toString();
      for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        const progress = /files\s+([\d,]+) messages/.exec(line);
        if (progress === null) {
          process.stderr.write(`${line}\n`);
          continue;
        }
        filed = Number(progress[1]!.replace(/,/g, ''));
        take();
        if (filed < (checkpoints.length + 1) * 50_000 && filed < total) continue;
        const cpu = threadCpu(pid, last);
        checkpoints.push({
          identities: filed,
          seconds: elapsed(),
          writerCpuSeconds: round1(cpu.writer),
          mainCpuSeconds: round1(cpu.main),
          // The writer's CPU per identity since the previous checkpoint: the marginal cost at this base.
          writerCpuMsPerIdentity: Number(
            (((cpu.writer - previous.writer) * 1000) / Math.max(1, filed - previous.identities)).toFixed(3),
          ),
          rssMB: last.rssMB,
        });
        previous = { identities: filed, writer: cpu.writer };
      }
    });
    let out = '';
    cli.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => cli.once('exit', resolve));
    clearInterval(sampler);
    const summary = /^(\d+) identities filed, (\d+) refused, from \d+ file\(s\) in ([\d.]+) s/m.exec(out);
    if (code !== 0 || summary === null)
      throw new Error(`onco-relay import exited ${code}: ${out.slice(0, 500)}`);
    const seconds = Number(summary[3]);
    // Sampled every 250 ms: the last moments' CPU may be missing.
    const cpu = threadCpu(pid, last);
    const store = new Store({ dataDir: data, writer: 'inline' });
    const count = (table: string): unknown => store.db.prepare(`SELECT count(*) FROM ${table}`).pluck().get();
    const result = {
      identities: total,
      filed: Number(summary[1]),
      refused: Number(summary[2]),
      patients: count('patients'),
      reviewItems: count('identity_reviews'),
      seconds,
      processSeconds: elapsed(),
      perSecond: Math.round(total / seconds),
      threadCpuSeconds: { main: round1(cpu.main), writer: round1(cpu.writer), others: round1(cpu.others) },
      writerCpuMsPerIdentity: Number(((cpu.writer * 1000) / total).toFixed(3)),
      rssPeakMB: peak.mb,
      rssPeakAt: { identities: peak.atIdentities, seconds: peak.atSeconds },
      // Most of the launcher's RSS is the node binary's pages, shared with the import process.
      launcherRssPeakMB: launcherPeak.rssMB,
      launcherAnonPeakMB: launcherPeak.anonMB,
      checkpoints,
      databaseMB: Math.round(
        fs
          .readdirSync(data)
          .filter((f) => f.startsWith('onco-relay.db'))
          .reduce((sum, f) => sum + fs.statSync(path.join(data, f)).size, 0) / 1e6,
      ),
      actions: JSON.parse(out.split('\n')[1] ?? '{}') as unknown,
    };
    await store.close();
    return result;
  } finally {
    for (const d of [dir, config, data]) fs.rmSync(d, { recursive: true, force: true });
  }
}

export async function benchIdentityIngest(): Promise<Record<string, unknown>> {
  const total = Number(process.env.ONCO_BENCH_IDENTITIES ?? 557_842);
  return {
    a28ThroughEngine_8producers_msgsPerSec: Math.round(await engineIngest(5000, 8)),
    bulkImport: await bulkLoad(total),
  };
}
