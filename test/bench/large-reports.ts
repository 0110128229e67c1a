// Large reports (issue 14's last items): pathology ORUs carrying a PDF in base64, sent over MLLP
// (one connection, one at a time) to a channel that files them as documents. Per report: the CPU
// of the whole process (every thread), the largest row the journal wrote, the bytes the database
// and the files beside it grew by (a file with two names counted once), and the RSS peak.
//   ONCO_BENCH_REPORTS (8), ONCO_BENCH_REPORT_PDF_MB (8).
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import Database from 'better-sqlite3';
import { frame, MllpFramer } from '../../connectors/mllp-framer.ts';
import { startEngine, until } from '../support/engine-harness.ts';
import { freePort } from '../support/ports.ts';
import { oruPatient, oruWithPdf, pdfOf } from '../support/report-oru.ts';

const MiB = 1024 * 1024;
const REPORTS = Number(process.env.ONCO_BENCH_REPORTS ?? 8);
const PDF_BYTES = Number(process.env.ONCO_BENCH_REPORT_PDF_MB ?? 8) * MiB;

/** Bytes of the files under `dirs`, each inode once. */
function diskBytes(dirs: string[]): number {
  const seen = new Map<number, number>();
  for (const dir of dirs) {
    if (!fs.existsSync(dir)) continue;
    for (const name of fs.readdirSync(dir)) {
      const s = fs.statSync(path.join(dir, name));
      if (s.isFile()) seen.set(s.ino, s.size);
    }
  }
  return [...seen.values()].reduce((a, b) => a + b, 0);
}

/** Sends each message on one connection, the next after the previous one's ACK. */
function sendAll(port: number, messages: Buffer[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const framer = new MllpFramer({ maxFrameBytes: 1024 * 1024 });
    let next = 0;
    const send = (): void => {
      if (next === messages.length) socket.end(resolve);
      else socket.write(frame(messages[next++]!));
    };
    socket.on('connect', send);
    socket.on('data', (chunk: Buffer) => {
      for (const e of framer.push(chunk)) {
        if (e.type !== 'frame') continue;
        if (!/\rMSA\|AA\|/.test(e.payload.toString('latin1')))
          return reject(new Error(`unexpected ACK: ${e.payload.toString('latin1')}`));
        send();
      }
    });
    socket.on('error', reject);
  });
}

/** `npm run bench -- large-reports`. */
export async function benchLargeReports(): Promise<Record<string, unknown>> {
  const port = await freePort();
  const h = await startEngine({
    channels: [
      {
        id: 'reports',
        storage: 'all',
        source: { type: 'mllp-listener', port, establishment: '310000001', maxFrameBytes: 1024 * MiB },
        steps: [{ type: 'pathology', acceptTestIns: true }],
        destinations: [{ name: 'documents', type: 'document-store', acceptTestIns: true }],
      },
    ],
    directory: { establishments: [{ finess: '310000001', name: 'CHU Demo' }] },
  });
  const { dataDir } = h;
  const files = [path.join(dataDir, 'blobs'), path.join(dataDir, 'documents')];
  const db = ['onco-relay.db', 'onco-relay.db-wal'].map((f) => path.join(dataDir, f));
  const dbBytes = () => db.reduce((sum, f) => sum + (fs.existsSync(f) ? fs.statSync(f).size : 0), 0);
  try {
    const patientId = await oruPatient(h.engine.store);
    const messages = Array.from({ length: REPORTS }, (_, i) => oruWithPdf(pdfOf(PDF_BYTES), `BIG-${i}`));
    const [disk0, db0] = [diskBytes(files), dbBytes()];
    const rss0 = process.memoryUsage().rss;
    let rssPeak = rss0;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 10);
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await sendAll(port, messages);
    await until(
      () => h.engine.store.documents.listOfPatient(patientId).length === REPORTS,
      'every report filed',
      600_000,
    );
    const ms = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    clearInterval(sampler);
    const raw = new Database(db[0]!, { readonly: true });
    const largestRow = raw.prepare('SELECT max(length(content)) FROM contents').pluck().get() as number;
    raw.close();
    const perReport = (bytes: number) => Number((bytes / REPORTS / MiB).toFixed(2));
    return {
      reports: REPORTS,
      pdfMiB: PDF_BYTES / MiB,
      messageMiB: Number((messages[0]!.length / MiB).toFixed(2)),
      cpuMsPerReport: Math.round((cpu.user + cpu.system) / 1000 / REPORTS),
      secondsPerReport: Number((ms / 1000 / REPORTS).toFixed(2)),
      largestJournalRowKiB: Math.round(largestRow / 1024),
      databaseMiBPerReport: perReport(dbBytes() - db0),
      filesMiBPerReport: perReport(diskBytes(files) - disk0),
      rssGrowthMB: Math.round((rssPeak - rss0) / MiB),
    };
  } finally {
    await h.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}
