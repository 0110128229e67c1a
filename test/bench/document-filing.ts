// Document filing: HPRIM Santé reports filed through the store's write API (group commit, FULL
// sync), eight producers, half of them on a known patient (filed), half waiting for theirs; then the
// identities of the waiting ones arrive and file them. Baseline of the same run: keeping the same
// bytes as files alone (fsync of the file and of its folder), which every filing also pays.
import fs from 'node:fs';
import path from 'node:path';
import { Store } from '../../store/store.ts';
import { BlobFiles } from '../../store/blob-files.ts';
import { toDocumentInput } from '../../connectors/document-writer.ts';
import { acceptedInsOids } from '../../connectors/identity-writer.ts';
import { readReport, clinicalStepSchema } from '../../transformers/clinical-steps.ts';
import { readOptions } from '../../transformers/contract.ts';
import { tempDir } from '../support/engine-harness.ts';

const FINESS = '310000001';
const insOids = acceptedInsOids();
const template = fs.readFileSync(
  path.resolve(import.meta.dirname, '../fixtures/clinical/report.hpr'),
  'latin1',
);

/** Person i: a fictitious name and a birth date spread over 1925-2010, as a real base is. */
function person(i: number): { name: string; date: string } {
  const h = Math.imul(i + 1, 2654435761) >>> 0;
  const letters = 'BCDFGHJKLMNPRSTVZ';
  const name = [0, 1, 2, 3, 4].map((k) => letters[(h >>> (k * 5)) % letters.length]! + 'AEIOU'[k]).join('');
  const date = `${1925 + (h % 86)}${String(1 + ((h >>> 8) % 12)).padStart(2, '0')}${String(1 + ((h >>> 16) % 28)).padStart(2, '0')}`;
  return { name, date };
}

/** Report i: its own patient (IPP, name, birth date), so its own document and its own bytes. */
const reportBytes = (i: number): Buffer =>
  Buffer.from(
    template
      .replace('IPP-000123', `B-${i}`)
      .replace(/FICTIF/g, person(i).name)
      .replace('19790328', person(i).date),
    'latin1',
  );

const rate = (n: number, ms: number): number => Math.round((n / ms) * 1000);

async function inParallel(
  total: number,
  producers: number,
  work: (i: number) => Promise<unknown>,
): Promise<number> {
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: producers }, async () => {
      while (next < total) await work(next++);
    }),
  );
  return performance.now() - started;
}

export async function benchDocumentFiling(): Promise<unknown> {
  const total = Number(process.env.ONCO_BENCH_DOCUMENTS ?? 2000);
  const dir = tempDir('onco-bench-documents-');
  const store = new Store({ dataDir: dir });
  try {
    const identity = (i: number) => ({
      birthName: person(i).name,
      firstGivenName: 'CAMILLE',
      birthDate: person(i).date,
      sex: 'F',
      identifiers: [{ finess: FINESS, ipp: `B-${i}` }],
    });
    for (let i = 0; i < total; i += 2)
      await store.write.vigilance.applyIdentity(identity(i), { messageId: null, insOids });
    const options = readOptions(clinicalStepSchema, {});
    const inputs = Array.from({ length: total }, (_, i) =>
      toDocumentInput(
        readReport({ content: reportBytes(i), contentType: 'text/plain', meta: {} }, 'pathology', options),
        FINESS,
      ),
    );
    const filingMs = await inParallel(total, 8, (i) =>
      store.write.documents.file(inputs[i]!, {
        insOids,
        provenance: { messageId: null, channel: 'bench', owner: FINESS },
      }),
    );
    const waiting = store.documents.listWaiting({ limit: 500 }).items.length;
    const arrivalMs = await inParallel(total / 2, 8, (k) =>
      store.write.vigilance.applyIdentity(identity(2 * k + 1), { messageId: null, insOids }),
    );
    const files = new BlobFiles(path.join(dir, 'baseline'), 0);
    const baselineMs = await inParallel(total, 1, async (i) =>
      files.putNow(Buffer.concat([reportBytes(i), Buffer.from('baseline')])),
    );
    return {
      documents: total,
      filedPerSecond: rate(total, filingMs),
      waitingAfterFiling: waiting === 500 ? '≥500' : waiting,
      identitiesFilingTheirWaitingDocumentPerSecond: rate(total / 2, arrivalMs),
      stillWaiting: store.documents.listWaiting().items.length,
      baselineFilesKeptPerSecond: rate(total, baselineMs),
    };
  } finally {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
