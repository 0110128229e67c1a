// Ingest through the journal (FULL sync, group commit) against raw better-sqlite3 inserts of the same
// payload on the same disk in the same run. Producers await each receipt, as an MLLP sender awaits
// its ACK: one producer is bound by fsync, several share commits.
import crypto from 'node:crypto';
import path from 'node:path';
import { openDatabase } from '../../store/db.ts';
import { builtinRegistry } from '../../channels/builtins.ts';
import { idleSource } from '../support/sink.ts';
import { startEngine, tempDir } from '../support/engine-harness.ts';
import type { DestinationSpec } from '../../connectors/contract.ts';

/** A destination that drops every message: benches measure ingest, not a peer. */
export const discard: DestinationSpec<Record<string, unknown>> = {
  kind: 'destination',
  type: 'discard',
  summary: 'bench: drops every message',
  schema: { properties: {} },
  create: () => ({ send: async () => ({}) }),
};

/** Rows per second of plain better-sqlite3 inserts (FULL sync) of `payload`, `perTransaction` rows a commit. */
export function rawInserts(payload: Buffer, perTransaction: number, total: number): number {
  const db = openDatabase(path.join(tempDir('onco-bench-raw-'), 'raw.db'));
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)');
  const insert = db.prepare('INSERT INTO t (payload) VALUES (?)');
  const batch = db.transaction((n: number) => {
    for (let i = 0; i < n; i++) insert.run(payload);
  });
  const t0 = process.hrtime.bigint();
  for (let done = 0; done < total; done += perTransaction) batch(Math.min(perTransaction, total - done));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  db.close();
  return total / seconds;
}

async function engineIngest(
  payloadBytes: number,
  producers: number,
  total: number,
  window = 1,
): Promise<{ ingest: number; delivered: number; rowsPerCommit: number }> {
  const { engine } = await startEngine({
    registry: builtinRegistry().register(discard, idleSource),
    channels: [
      {
        id: 'bench',
        queueLimit: 1_000_000,
        source: { type: 'test-idle' },
        destinations: [{ name: 'out', type: 'discard', queue: 'parallel', concurrency: 16 }],
      },
    ],
  });
  const channel = engine.channel('bench');
  const base = crypto.randomBytes(payloadBytes);
  let next = 0;
  const t0 = process.hrtime.bigint();
  // `window` receipts outstanding per producer: 1 is a sender awaiting each ACK, more is a folder or
  // SFTP drop handing over many files at once.
  await Promise.all(
    Array.from({ length: producers * window }, async () => {
      while (next < total) {
        const i = next++;
        const content = Buffer.from(base);
        content.writeUInt32BE(i, 0); // distinct content: no message is a duplicate
        await channel.receive({ content, contentType: 'application/octet-stream' });
      }
    }),
  );
  const ingestSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const { commits, writes } = engine.store.writer.stats;
  while (channel.metrics.sent < total) await new Promise((r) => setTimeout(r, 20));
  const deliveredSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  await engine.stop();
  return {
    ingest: total / ingestSeconds,
    delivered: total / deliveredSeconds,
    rowsPerCommit: writes / commits,
  };
}

export async function benchJournalIngest(): Promise<Record<string, unknown>> {
  const results: Record<string, unknown> = {};
  for (const size of [1024, 4096]) {
    const payload = crypto.randomBytes(size);
    const raw1 = rawInserts(payload, 1, 2000);
    const raw100 = rawInserts(payload, 100, 50_000);
    for (const [producers, window] of [
      [1, 1],
      [8, 1],
      [8, 32],
    ] as const) {
      const total = producers === 1 ? 3000 : 20_000;
      const r = await engineIngest(size, producers, total, window);
      const label = `${size / 1024}KB_${producers}producer${producers > 1 ? 's' : ''}${window > 1 ? `_window${window}` : ''}`;
      results[label] = {
        ingestMsgsPerSec: Math.round(r.ingest),
        endToEndMsgsPerSec: Math.round(r.delivered),
        writesPerCommit: Number(r.rowsPerCommit.toFixed(1)),
        rawFullOnePerTxRowsPerSec: Math.round(raw1),
        rawFull100PerTxRowsPerSec: Math.round(raw100),
        ratioToRaw100PerTx: Number((r.ingest / raw100).toFixed(3)),
        ratioToRawOnePerTx: Number((r.ingest / raw1).toFixed(2)),
      };
    }
  }
  return results;
}
