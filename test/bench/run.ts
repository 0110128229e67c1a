// `npm run bench`: every benchmark of the project, each beside the baseline measured in the same run.
// Prints one JSON document. Timings live here, never in pass/fail tests.
//   npm run bench [-- section ...]   sections: journal, transports, search, identities, core, reports, documents, mail, streams, large-reports
import os from 'node:os';
import { benchJournalIngest } from './journal-ingest.ts';
import { benchTransportIngest } from './transport-ingest.ts';
import { benchMessageSearch } from './message-search.ts';
import { benchIdentityIngest } from './identity-ingest.ts';
import { benchCore } from './core.ts';
import { benchDocumentFiling } from './document-filing.ts';
import { benchDocumentsOut } from './documents-out.ts';
import { benchMailIngest } from './mail-ingest.ts';
import { benchStreams } from './streams.ts';
import { benchLargeReports } from './large-reports.ts';

const sections: Record<string, () => Promise<unknown>> = {
  journal: benchJournalIngest,
  transports: benchTransportIngest,
  search: benchMessageSearch,
  identities: benchIdentityIngest,
  core: benchCore,
  reports: benchDocumentFiling,
  documents: benchDocumentsOut,
  mail: benchMailIngest,
  streams: benchStreams,
  'large-reports': benchLargeReports,
};

const wanted = process.argv.slice(2).filter((a) => a in sections);
const out: Record<string, unknown> = {
  machine: {
    cpus: os.cpus().length,
    cpu: os.cpus()[0]?.model,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    loadAverage: os.loadavg().map((l) => Number(l.toFixed(2))),
  },
};
for (const [name, run] of Object.entries(sections)) {
  if (wanted.length && !wanted.includes(name)) continue;
  process.stderr.write(`bench: ${name}…\n`);
  out[name] = await run();
}
process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
