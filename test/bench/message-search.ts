// Message-browser search over a 1 M-row journal: p95 per query shape (goal < 100 ms). Rows are
// written straight into the journal tables, then the background indexer indexes them as in
// production (its rate is a figure too); the last rows are left past the mark, as the indexer's lag.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Store } from '../../store/store.ts';
import type { MessageFilter } from '../../store/message-search.ts';
import { MessageIndexer, searchMessages } from '../../channels/message-index.ts';

const ROWS = Number(process.env.BENCH_SEARCH_ROWS ?? 1_000_000);
const RUNS = 40;
/** Rows left unindexed: the most a busy indexer lags in practice (one or two batches) and more. */
const LAG = Number(process.env.BENCH_SEARCH_LAG ?? 1000);
const channels = ['identity-feed', 'pathology', 'molecular', 'mss-inbox', 'documents-out'];
const statuses = ['SENT', 'SENT', 'SENT', 'SENT', 'FILTERED', 'SENT', 'SENT', 'SENT', 'DUPLICATE', 'SENT'];
const owners = Array.from({ length: 20 }, (_, i) => String(330000001 + i));

function fill(store: Store, start: number): void {
  const insert = store.db
    .prepare(`INSERT INTO messages (channel, received_at, updated_at, status, sender, owner, content_type, meta, error)
    VALUES (?, ?, ?, ?, ?, ?, 'text/plain', ?, ?)`);
  const batch = store.db.transaction((from: number, to: number) => {
    for (let i = from; i < to; i++) {
      const error = i % 100 === 7 ? 'DESTINATION_REFUSED: MSH-9 missing' : null;
      const at = start + i * 250;
      insert.run(
        channels[i % channels.length],
        at,
        at,
        error ? 'ERROR' : statuses[i % statuses.length],
        `sftp:${owners[i % owners.length]}`,
        owners[i % owners.length],
        JSON.stringify({ fileName: `ADT_A28_${i}.hl7`, controlId: `MSG${i}`, ipp: `IPP${i % 50_000}` }),
        error,
      );
    }
  });
  for (let i = 0; i < ROWS; i += 20_000) batch(i, Math.min(ROWS, i + 20_000));
}

function p95(run: () => unknown): number {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t = process.hrtime.bigint();
    run();
    times.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  times.sort((a, b) => a - b);
  return Math.round(times[Math.floor(times.length * 0.95)]! * 100) / 100;
}

export async function benchMessageSearch(): Promise<Record<string, number>> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onco-bench-search-'));
  // Rows are written straight into the tables, on this thread's connection: the inline writer.
  const store = new Store({ dataDir: dir, synchronous: 'OFF', writer: 'inline' });
  try {
    const start = Date.UTC(2025, 0, 1);
    const t0 = Date.now();
    fill(store, start);
    const fillSeconds = (Date.now() - t0) / 1000;
    const quiet = { debug() {}, info() {}, warn() {}, error() {} };
    const indexer = new MessageIndexer(store, { log: quiet, batch: 1000 });
    const t1 = Date.now();
    while (store.messageSearch.highWater() < ROWS - LAG) await indexer.indexBatch();
    const indexedPerSecond = Math.round(store.messageSearch.highWater() / ((Date.now() - t1) / 1000));
    const mid = start + (ROWS / 2) * 250;
    const middleId = Math.floor(ROWS / 2);
    const search =
      (f: MessageFilter, after: number | null = null) =>
      () =>
        searchMessages(store, f, { limit: 50, after });
    let n = 0;
    const result: Record<string, number> = {
      rows: ROWS,
      fillSeconds,
      indexedPerSecond,
      unindexedLag: ROWS - store.messageSearch.highWater(),
      newestPageP95Ms: p95(search({})),
      channelP95Ms: p95(search({ channel: 'pathology' })),
      errorStatusP95Ms: p95(search({ status: 'ERROR' })),
      ownerScopedP95Ms: p95(search({ owner: owners[3] })),
      fileNameTextP95Ms: p95(() => searchMessages(store, { text: `ADT_A28_${(n += 7919) % ROWS}` })),
      commonWordTextP95Ms: p95(search({ text: 'adt' })),
      ippTextP95Ms: p95(() => searchMessages(store, { text: `IPP${(n += 13) % 50_000}` })),
      timeRangeP95Ms: p95(search({ from: mid, to: mid + 3600_000 })),
      deepPageP95Ms: p95(search({ channel: 'molecular' }, middleId)),
      channelStatusTextOwnerP95Ms: p95(
        search({ channel: 'pathology', status: 'ERROR', text: 'destination_refused', owner: owners[6] }),
      ),
    };
    return result;
  } finally {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  benchMessageSearch().then((r) => process.stdout.write(`${JSON.stringify(r, null, 2)}\n`));
}
