// Identity filing: A28 messages through a real engine (pam-fr step, identity-store destination,
// FULL sync) and the bulk import of the region's whole base from PAM FR files, with the progress the
// CLI shows. Synthetic, fictitious people; one in five also known to a second establishment.
import fs from 'node:fs';
import path from 'node:path';
import { builtinRegistry } from '../../channels/builtins.ts';
import { identityFiles, importIdentities } from '../../channels/identity-import.ts';
import { Store } from '../../store/store.ts';
import { idleSource } from '../support/sink.ts';
import { startEngine, tempDir } from '../support/engine-harness.ts';
import { benchDirectory as directory, feedMessage as message } from './people.ts';

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
  const store = new Store({ dataDir: tempDir('onco-bench-data-') });
  let lastShown = 0;
  const report = await importIdentities(store, await identityFiles([dir]), {
    author: 'bench',
    directory,
    onProgress: (p) => {
      if (Date.now() - lastShown < 10_000) return;
      lastShown = Date.now();
      process.stderr.write(
        `  identities: ${p.messages.toLocaleString('en')} of ${total.toLocaleString('en')}\n`,
      );
    },
  });
  const patients = store.db.prepare('SELECT count(*) FROM patients').pluck().get();
  store.close();
  return {
    identities: report.messages,
    patients,
    refused: report.refused,
    seconds: Number(report.seconds.toFixed(1)),
    perSecond: Math.round(report.messages / report.seconds),
    actions: report.actions,
  };
}

export async function benchIdentityIngest(): Promise<Record<string, unknown>> {
  const total = Number(process.env.ONCO_BENCH_IDENTITIES ?? 557_842);
  return {
    a28ThroughEngine_8producers_msgsPerSec: Math.round(await engineIngest(5000, 8)),
    bulkImport: await bulkLoad(total),
  };
}
