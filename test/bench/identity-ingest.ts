// Identity filing: A28 messages through a real engine (pam-fr step, identity-store destination,
// FULL sync) and the bulk import of the region's whole base from PAM FR files (in a process of its
// own: its RSS is the import's), with the progress the CLI shows. Synthetic, fictitious people; one in
// five also known to a second establishment.
import fs from 'node:fs';
import path from 'node:path';
import { builtinRegistry } from '../../channels/builtins.ts';
import { idleSource } from '../support/sink.ts';
import { startEngine, tempDir } from '../support/engine-harness.ts';
import { benchDirectory as directory, feedMessage as message } from './people.ts';
import { figure } from './core.ts';

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

async function bulkLoad(total: number): Promise<Record<string, unknown>> {
  const dir = tempDir('onco-bench-identities-');
  const perFile = 10_000;
  for (let f = 0; f * perFile < total; f++) {
    const parts: string[] = [];
    for (let i = f * perFile; i < Math.min(total, (f + 1) * perFile); i++) parts.push(message(i));
    fs.writeFileSync(path.join(dir, `identities-${String(f).padStart(3, '0')}.hl7`), parts.join(''));
  }
  try {
    return await figure('identity-import', { dir, total });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchIdentityIngest(): Promise<Record<string, unknown>> {
  const total = Number(process.env.ONCO_BENCH_IDENTITIES ?? 557_842);
  return {
    a28ThroughEngine_8producers_msgsPerSec: Math.round(await engineIngest(5000, 8)),
    bulkImport: await bulkLoad(total),
  };
}
