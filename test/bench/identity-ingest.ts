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

/** The process's peak memory and each thread's CPU seconds (Linux /proc), read while it runs. */
interface ProcessSample {
  peakMB: number;
  /** By thread id; the process's own id is its main thread. */
  cpu: Map<number, { user: number; system: number }>;
}

function sampleProcess(pid: number, into: ProcessSample): void {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    into.peakMB = Math.round(Number(/^VmHWM:\s+(\d+)/m.exec(status)?.[1] ?? 0) / 1024);
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      const fields = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      into.cpu.set(Number(tid), { user: Number(fields[11]) / 100, system: Number(fields[12]) / 100 });
    }
  } catch {
    // The process ended between two reads: the last sample stands.
  }
}

/**
 * `onco-relay import identities` itself, in a process of its own, on files of 10,000 messages: its
 * peak RSS, and the CPU of its main thread (reading, parsing, mapping) and of its busiest other
 * thread (the store's writer, whose CPU is the load's wall: decisions are sequential).
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
    const cli = spawn(
      process.execPath,
      [path.resolve('bin/onco-relay.mjs'), 'import', 'identities', dir, '--data', data, '--config', config],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const sample: ProcessSample = { peakMB: 0, cpu: new Map() };
    const sampler = setInterval(() => sampleProcess(cli.pid!, sample), 1000);
    let out = '';
    cli.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => cli.once('exit', resolve));
    clearInterval(sampler);
    const summary = /^(\d+) identities filed, (\d+) refused, from \d+ file\(s\) in ([\d.]+) s/m.exec(out);
    if (code !== 0 || summary === null)
      throw new Error(`onco-relay import exited ${code}: ${out.slice(0, 500)}`);
    const seconds = Number(summary[3]);
    const cpu = (t: { user: number; system: number } | undefined) => (t ? t.user + t.system : 0);
    const main = cpu(sample.cpu.get(cli.pid!));
    const others = [...sample.cpu].filter(([tid]) => tid !== cli.pid).map(([, t]) => cpu(t));
    const writer = Math.max(0, ...others);
    const round = (x: number): number => Math.round(x * 10) / 10;
    const store = new Store({ dataDir: data, writer: 'inline' });
    const count = (table: string): unknown => store.db.prepare(`SELECT count(*) FROM ${table}`).pluck().get();
    const result = {
      identities: total,
      filed: Number(summary[1]),
      refused: Number(summary[2]),
      patients: count('patients'),
      reviewItems: count('identity_reviews'),
      seconds,
      perSecond: Math.round(total / seconds),
      // Sampled each second: the last second's CPU may be missing.
      threadCpuSeconds: {
        main: round(main),
        writer: round(writer),
        others: round(others.reduce((a, b) => a + b, 0) - writer),
      },
      writerCpuMsPerIdentity: Number(((writer * 1000) / total).toFixed(3)),
      rssPeakMB: sample.peakMB,
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
