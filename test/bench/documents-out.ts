// Documents out (issue 11 proof): forms written as CDA (the FRCP writer), through the real engine —
// journaled on receipt, then packaged for a recipient as IHE_XDM.ZIP with the PDF inside (cda-xdm),
// every stage journaled — measured from the first CDA written to the last delivery. A region's
// year is 142,390 RCP forms; the target is that year in under 10 minutes. Beside it, each stage
// alone in this process, to show where the time goes.
//   npm run bench -- documents        (ONCO_BENCH_DOCUMENTS: how many forms, default 400)
import { builtinRegistry } from '../../channels/builtins.ts';
import { writeFrcp } from '../../transformers/cda-frcp.ts';
import { renderPdf } from '../../transformers/pdf-render.ts';
import { xdmPackage } from '../../transformers/xdm-package.ts';
import { parseXml } from '../../transformers/xml.ts';
import type { RcpForm } from '../../transformers/rcp-model.ts';
import { fullForm } from '../fixtures/documents/rcp-forms.ts';
import { idleSource } from '../support/sink.ts';
import { startEngine } from '../support/engine-harness.ts';
import { discard } from './journal-ingest.ts';

const YEAR_OF_FORMS = 142_390;
const TARGET_SECONDS = 600;

/** A distinct form for each i: its own ids and patient IPP. */
function form(i: number): RcpForm {
  return {
    ...fullForm,
    id: { root: '1.2.250.1.999.7.1', extension: `frcp-${i}` },
    setId: { root: '1.2.250.1.999.7.1', extension: `frcp-set-${i}` },
    patient: { ...fullForm.patient, ipp: { ...fullForm.patient.ipp, value: `IPP-${i}` } },
  };
}

function perSecond(count: number, since: bigint): number {
  return count / (Number(process.hrtime.bigint() - since) / 1e9);
}

/** Each stage alone, `n` times, in this process: documents per second. */
async function stages(n: number): Promise<Record<string, number>> {
  const one = form(0);
  const cda = writeFrcp(one);
  const pdf = renderPdf(cda);
  const submission = {
    uniqueId: '2.25.1',
    sourceId: '1.2.250.1.999.7',
    submissionTime: '20260112160000+0100',
  };
  const time = async (f: () => unknown): Promise<number> => {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) await f();
    return Math.round(perSecond(n, t0));
  };
  return {
    cda: await time(() => writeFrcp(one)),
    parseCda: await time(() => parseXml(cda)),
    pdf: await time(() => renderPdf(cda)),
    xdmZipWithGivenPdf: await time(() => xdmPackage([{ cda, pdf }], submission)),
  };
}

export async function benchDocumentsOut(): Promise<unknown> {
  const total = Number(process.env.ONCO_BENCH_DOCUMENTS ?? 400);
  const h = await startEngine({
    registry: builtinRegistry().register(discard, idleSource),
    channels: [
      {
        id: 'documents-out',
        queueLimit: 1_000_000,
        source: { type: 'test-idle' },
        destinations: [
          {
            name: 'mssante',
            type: 'discard',
            queue: 'parallel',
            concurrency: 4,
            steps: [{ type: 'cda-xdm', sourceId: '1.2.250.1.999.7' }],
          },
        ],
      },
    ],
  });
  const channel = h.engine.channel('documents-out');
  const t0 = process.hrtime.bigint();
  // CPU time beside wall time: on a shared machine the wall clock also counts other processes' turns.
  const cpu0 = process.cpuUsage();
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < total) {
        const i = next++;
        await channel.receive({
          content: Buffer.from(writeFrcp(form(i)), 'utf8'),
          contentType: 'application/hl7-cda+xml',
          meta: { to: `dr-${i}@chu-sud.mssante.fr` },
        });
      }
    }),
  );
  while (channel.metrics.sent + channel.metrics.errored < total) await new Promise((r) => setTimeout(r, 20));
  const rate = perSecond(total, t0);
  const cpu = process.cpuUsage(cpu0);
  const cpuMs = (cpu.user + cpu.system) / 1000 / total;
  const errored = channel.metrics.errored;
  await h.stop();
  const yearSeconds = YEAR_OF_FORMS / rate;
  return {
    documents: total,
    errored,
    chainDocumentsPerSecond: Number(rate.toFixed(1)),
    yearOfFormsMinutes: Number((yearSeconds / 60).toFixed(1)),
    targetMinutes: TARGET_SECONDS / 60,
    withinTarget: yearSeconds <= TARGET_SECONDS,
    cpuMsPerDocument: Number(cpuMs.toFixed(2)),
    yearOfFormsCpuMinutes: Number(((YEAR_OF_FORMS * cpuMs) / 60_000).toFixed(1)),
    stagesAlonePerSecond: await stages(Math.min(100, total)),
  };
}
