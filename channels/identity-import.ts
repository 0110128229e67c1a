// Bulk load of PAM FR identity files (the region's existing base at go-live) through the same
// mapping and vigilance rules as the identity feed, many messages per transaction. A refused message
// is counted and reported with its place; it never stops the load nor leaves a half-filed identity.
import fs from 'node:fs/promises';
import path from 'node:path';
import { splitBatch } from '../transformers/hl7v2.ts';
import { mapPamFr } from '../transformers/pam-fr.ts';
import { parse } from '../transformers/hl7v2.ts';
import { IdentityWriter, type IdentityRules } from '../connectors/identity-writer.ts';
import type { Directory } from '../connectors/contract.ts';
import type { Store } from '../store/store.ts';
import type { IdentityFilingInput } from '../store/identity-filing.ts';
import { describeError } from './steps.ts';

export interface ImportOptions {
  rules?: IdentityRules;
  /** The establishments whose IPPs may be filed (the import has no sender: any of them). */
  directory: Directory;
  /** Messages per transaction: one fsync each. */
  batch?: number;
  /** Recorded as the author of every decision, e.g. `import:alice`. */
  author: string;
  onProgress?: (p: ImportProgress) => void;
}

export interface ImportProgress {
  file: string;
  filesDone: number;
  files: number;
  messages: number;
  filed: number;
  refused: number;
}

export interface ImportReport extends ImportProgress {
  seconds: number;
  actions: Record<string, number>;
  /**
   * Every refusal, with its file and message number (null: the whole file, e.g. not HL7), for the
   * admin to fix at the source.
   */
  errors: Array<{ file: string; message: number | null; error: string }>;
}

/** Lists the files to load: each path given, and the files (sorted) of each folder given. */
export async function identityFiles(paths: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const p of paths) {
    const st = await fs.stat(p);
    if (st.isDirectory()) {
      for (const name of (await fs.readdir(p)).sort()) {
        if (!name.startsWith('.') && (await fs.stat(path.join(p, name))).isFile())
          out.push(path.join(p, name));
      }
    } else out.push(p);
  }
  return out;
}

export async function importIdentities(
  store: Store,
  files: readonly string[],
  o: ImportOptions,
): Promise<ImportReport> {
  const writer = new IdentityWriter({ rules: o.rules ?? {}, sourceReliability: null }, o.directory);
  const batch = o.batch ?? 1000;
  const started = process.hrtime.bigint();
  const report: ImportReport = {
    file: '',
    filesDone: 0,
    files: files.length,
    messages: 0,
    filed: 0,
    refused: 0,
    seconds: 0,
    actions: {},
    errors: [],
  };
  const refuse = (file: string, message: number | null, error: unknown): void => {
    report.refused++;
    report.errors.push({ file, message, error: describeError(error) });
  };
  // Filed in order by the store's writer while the next batches are read and mapped here: the
  // chain of each batch's accounting, file boundaries included, so that the writer never waits for
  // the next file to be read.
  let filing: Promise<void> = Promise.resolve();
  // A failed write surfaces at the next await of the chain; until then (while the next file is
  // read) a handler keeps Node from calling it unhandled.
  const chain = (next: Promise<void>): Promise<void> => {
    next.catch(() => undefined);
    return next;
  };
  const then = (step: () => void): void => {
    filing = chain(filing.then(step));
  };
  const fileDone = (): void => {
    report.filesDone++;
    o.onProgress?.(report);
  };
  for (const file of files) {
    report.file = file;
    let messages: Buffer[];
    try {
      messages = splitBatch(await fs.readFile(file)).messages;
    } catch (error) {
      // A file that cannot be read or is not HL7 is one refusal; the load goes on with the next file.
      then(() => {
        refuse(file, null, error);
        fileDone();
      });
      continue;
    }
    // One commit per batch, one savepoint a message (a refusal rolls back that message alone).
    for (let at = 0; at < messages.length; at += batch) {
      const inputs: IdentityFilingInput[] = [];
      const unmapped = new Map<number, unknown>();
      messages.slice(at, at + batch).forEach((bytes, k) => {
        const n = at + k + 1;
        try {
          const events = mapPamFr(parse(bytes), { acceptTestIns: o.rules?.acceptTestIns ?? false });
          inputs.push(writer.input(events, { author: o.author }, null));
        } catch (error) {
          unmapped.set(n, error);
        }
      });
      const count = Math.min(batch, messages.length - at);
      const previous = filing;
      const outcomes = store.write.identityFiling.fileEach(inputs);
      filing = chain(
        (async () => {
          await previous;
          const filed = await outcomes;
          // Refusals in message order, whichever side refused.
          for (let n = at + 1, i = 0; n <= at + count; n++) {
            if (unmapped.has(n)) {
              refuse(file, n, unmapped.get(n));
              continue;
            }
            const outcome = filed[i++]!;
            if (!outcome.ok) {
              refuse(file, n, outcome.error);
              continue;
            }
            for (const d of outcome.decisions) report.actions[d.action] = (report.actions[d.action] ?? 0) + 1;
            report.filed++;
          }
          report.messages += count;
          o.onProgress?.(report);
        })(),
      );
      // At most two batches in hand: memory stays bounded whatever the file's size.
      await previous;
    }
    then(fileDone);
  }
  await filing;
  report.seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return report;
}
