// Documents out (issue 11 proof): the real chain, as the appliance runs it. Forms are validated in
// the core store (each writes its outbox row in the transaction that validates it), then the engine
// starts: the `store-outbox` source journals each row, `rcp-cda` writes its CDA (journaled), and a
// recipient's destination packages it as IHE_XDM.ZIP with the PDF inside (`cda-xdm`, journaled) and
// delivers it — measured after a warm-up, to the last delivery. A region's year is 142,390
// RCP forms; the target is that year in under 10 minutes.
//
// The machine is shared: wall time counts other processes' turns, so CPU time per document (every
// thread of this process: main, store writer, step pool) is printed beside it, and each stage's CPU
// alone (CDA, PDF, XDM), measured in this process; the journal and the engine are what is left.
//   npm run bench -- documents        (ONCO_BENCH_DOCUMENTS: how many forms, default 400;
//                                      ONCO_BENCH_POOL: step pool threads, default the engine's;
//                                      ONCO_BENCH_CONCURRENCY: deliveries in flight, default 8;
//                                      ONCO_BENCH_WARMUP: forms before the measure, default 1,000
//                                      or ONCO_BENCH_DOCUMENTS if fewer; 100 until round 5)
import { builtinRegistry } from '../../channels/builtins.ts';
import type { DirectoryConfig } from '../../config/config.ts';
import { formInput, meetingInput } from '../../channels/rcp-input.ts';
import { readOptions } from '../../transformers/contract.ts';
import { rcpCdaSchema, rcpCdaStep } from '../../transformers/rcp-document.ts';
import { renderPdf } from '../../transformers/pdf-render.ts';
import { xdmPackage } from '../../transformers/xdm-package.ts';
import { parseXml } from '../../transformers/xml.ts';
import { startEngine } from '../support/engine-harness.ts';
import { documentDirectory, knownPatient, SUD } from '../support/documents-out.ts';
import { discard } from './journal-ingest.ts';
import { cpuByGroup, readThreadCpu } from './thread-cpu.ts';

const YEAR_OF_FORMS = 142_390;
const TARGET_SECONDS = 600;
const SOURCE_ID = '1.2.250.1.999.7';

const cpuMs = (since: NodeJS.CpuUsage): number => {
  const c = process.cpuUsage(since);
  return (c.user + c.system) / 1000;
};

/** CPU milliseconds per call of `f`, after a warm-up (JIT, pdfkit's font tables). */
async function cpuPer(n: number, f: () => unknown): Promise<number> {
  for (let i = 0; i < 10; i++) await f();
  const c0 = process.cpuUsage();
  for (let i = 0; i < n; i++) await f();
  return cpuMs(c0) / n;
}

const round = (x: number, digits = 2): number => Number(x.toFixed(digits));

/**
 * The kind of each thread of this process: the main thread, the store's writer and the step pool
 * name themselves (nameThisThread); the rest are V8's helpers (garbage collection, compilation),
 * libuv's pool (file I/O) and tsx's loader.
 */
const threadKind = (name: string, main: boolean): string =>
  main ? 'main' : name === 'onco-writer' ? 'storeWriter' : name === 'onco-steps' ? 'stepPool' : 'v8AndOthers';

export async function benchDocumentsOut(): Promise<unknown> {
  const total = Number(process.env.ONCO_BENCH_DOCUMENTS ?? 400);
  const pool = process.env.ONCO_BENCH_POOL;
  const concurrency = Number(process.env.ONCO_BENCH_CONCURRENCY ?? 8);
  const h = await startEngine({
    start: false,
    registry: builtinRegistry().register(discard),
    // The professionals by RPPS; the establishments without their ways (no routing here).
    directory: { ...documentDirectory, establishments: [{ finess: SUD, name: 'CHU Sud', kind: 'hospital' }] },
    ...(pool === undefined ? {} : { engine: { stepPool: { threads: Number(pool) } } }),
    channels: [
      {
        id: 'documents-out',
        queueLimit: 1_000_000,
        source: { type: 'store-outbox' },
        steps: [{ type: 'rcp-cda', documentRoot: '1.2.250.1.999.1' }],
        destinations: [
          {
            name: 'mssante',
            type: 'discard',
            queue: 'parallel',
            concurrency,
            steps: [{ type: 'cda-xdm', sourceId: SOURCE_ID, recipientMeta: 'mesMailbox' }],
          },
        ],
      },
    ],
  });
  // The year's forms waiting in the outbox, as validation leaves them (one patient, one meeting).
  const store = h.engine.store;
  const directory = documentDirectory as DirectoryConfig;
  const actor = { login: 'bench' };
  const now = Date.UTC(2026, 0, 12, 15);
  const patientId = await knownPatient(store, true);
  const meeting = await store.write.rcp.createMeeting(
    meetingInput(
      { date: '2026-01-12', committee: 'Sein', organ: 'sein', site: SUD, organiserRpps: '10000000004' },
      directory,
    ),
    actor,
    now,
  );
  const input = (i: number): ReturnType<typeof formInput> =>
    formInput(
      {
        patientId,
        meetingId: meeting.id,
        externalId: `bench-${i}`,
        question: 'Traitement adjuvant après tumorectomie ?',
        summary: `Patiente de 46 ans, nodule du sein droit découvert au dépistage (dossier ${i}).`,
        diagnosis: { icd10: 'C50.2', icdo3Morphology: '8500/3', tnm: 'T1cN0M0', date: '20251210' },
        proposal: 'Radiothérapie adjuvante, 50 Gy en 25 fractions, puis hormonothérapie 5 ans.',
        participants: [{ rpps: '10000000004' }, { rpps: '10000000005' }, { name: 'Dr Invitée' }],
        referringRpps: '10000000004',
        gpRpps: '10000000005',
      },
      directory,
    );
  // The first forms warm the engine up (module loading, the step pool's threads starting, and JIT:
  // each thread's heap compiles the hot code again, which goes on for 1,000-2,000 forms, a tenth of a
  // second's work for each of the year's): the figures are those of the forms after them, and the
  // year is projected as the warm-up's own time plus the rest at the measured rate.
  const warmUp = Number(process.env.ONCO_BENCH_WARMUP ?? Math.min(1000, total));
  for (let done = 0; done < warmUp + total; done += 200) {
    const items = Array.from({ length: Math.min(200, warmUp + total - done) }, (_, k) => input(done + k));
    await store.write.rcp.importForms(items, actor, now);
  }

  // Taken rows keep no content: the first one, read now, serves the stages alone below.
  const row = store.outbox.row(1);
  if (row === undefined) throw new Error('no outbox row: the forms were not validated');
  const channel = h.engine.channel('documents-out');
  const finished = (): number => channel.metrics.sent + channel.metrics.errored;
  const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 5));
  // Counted over the whole chain, warm-up included: processing runs ahead of the deliveries, so
  // the measured window holds mostly the deliveries' writes.
  const writes0 = { ...store.writer.stats };
  const started = process.hrtime.bigint();
  await h.engine.start();
  while (finished() < warmUp) await tick();
  const threads0 = readThreadCpu();
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const before = finished();
  while (finished() < warmUp + total) await tick();
  const t1 = process.hrtime.bigint();
  const seconds = Number(t1 - t0) / 1e9;
  const measured = finished() - before;
  const chainCpuMs = cpuMs(cpu0) / measured;
  const threads1 = readThreadCpu();
  const writes1 = { ...store.writer.stats };
  // The window on the clock of `node --cpu-prof` (µs), to read each thread's profile of it alone.
  process.stderr.write(`documents: measured from ${t0 / 1000n} to ${t1 / 1000n} µs\n`);
  const errored = channel.metrics.errored;

  // Each stage alone, on one of the documents the chain just sent.
  await h.stop();
  const cdaStep = rcpCdaStep.create(readOptions(rcpCdaSchema, { documentRoot: '1.2.250.1.999.1' }));
  const written = await cdaStep({ content: row.content, contentType: row.contentType, meta: row.meta });
  const cda = written!.content.toString('utf8');
  const parsed = parseXml(cda);
  const pdf = renderPdf(parsed);
  const n = Math.min(100, total);
  const submission = { uniqueId: '2.25.1', sourceId: SOURCE_ID, submissionTime: '20260112160000+0100' };
  const stages = {
    cda: await cpuPer(n, () =>
      cdaStep({ content: row.content, contentType: row.contentType, meta: row.meta }),
    ),
    parseCda: await cpuPer(n, () => parseXml(cda)),
    pdf: await cpuPer(n, () => renderPdf(parsed)),
    xdm: await cpuPer(n, () => xdmPackage([{ cda, parsed, pdf }], submission)),
  };
  const rate = measured / seconds;
  const warmUpSeconds = Number(t0 - started) / 1e9;
  const yearSeconds = warmUpSeconds + (YEAR_OF_FORMS - warmUp) / rate;
  const perSecondOnCores = (cores: number): number => round((1000 * cores) / chainCpuMs, 0);
  return {
    documents: measured,
    warmUp,
    concurrency,
    warmUpSeconds: round(warmUpSeconds, 1),
    errored,
    chainDocumentsPerSecond: round(rate, 1),
    yearOfFormsMinutes: round(yearSeconds / 60, 1),
    targetMinutes: TARGET_SECONDS / 60,
    targetDocumentsPerSecond: round(YEAR_OF_FORMS / TARGET_SECONDS, 0),
    withinTarget: yearSeconds <= TARGET_SECONDS,
    cpuMsPerDocument: round(chainCpuMs),
    // What the CPU cost allows when every core works for the chain and nothing else runs.
    documentsPerSecondIfCoresWereFree: {
      2: perSecondOnCores(2),
      4: perSecondOnCores(4),
      8: perSecondOnCores(8),
    },
    // Journal writes of the whole chain (receive, processed, sent: each one call of the writer) and
    // the group commits (one fsync each) that carried them; the poison guard's marks are not counted.
    storeWritesPerDocument: round((writes1.writes - writes0.writes) / finished()),
    storeCommitsPerDocument: round((writes1.commits - writes0.commits) / finished(), 3),
    // Where the chain's CPU went (/proc, 10 ms ticks): pool threads run the steps, the writer the journal.
    cpuMsPerDocumentByThread: Object.fromEntries(
      Object.entries(cpuByGroup(process.pid, threads1, threads0, threadKind)).map(([kind, seconds]) => [
        kind,
        round((seconds * 1000) / measured),
      ]),
    ),
    cpuMsPerDocumentByStage: {
      cda: round(stages.cda),
      parseCda: round(stages.parseCda),
      pdf: round(stages.pdf),
      xdmWithGivenPdf: round(stages.xdm),
      journalAndEngine: round(chainCpuMs - stages.cda - stages.parseCda - stages.pdf - stages.xdm),
    },
  };
}
