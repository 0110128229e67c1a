// The message browser's text index, filled in the background from the journal: the receive path
// writes nothing for search (issue 14). The indexer reads the messages past the store's durable
// high-water mark, finds their terms and writes index rows and the new mark in one transaction of
// the store's writer, so that after a crash it resumes where the last commit left it.
import type { Logger } from '../connectors/contract.ts';
import {
  component,
  parse,
  repetitions,
  segmentsNamed,
  splitBatch,
  summarize,
  type Hl7Message,
} from '../transformers/hl7v2.ts';
import type { IndexSource, MessageFilter, MessageSummary } from '../store/message-search.ts';
import type { Store } from '../store/store.ts';
import { describeError } from './steps.ts';
import { Wake } from './wake.ts';

/**
 * Metadata worth finding a message by. An allow-list, not every value: metadata may grow fields
 * that carry patient names, and names are never indexed.
 */
const indexedMeta = [
  'fileName',
  'remotePath',
  'path',
  'folder',
  'account',
  'controlId',
  'messageType',
  'sendingApp',
  'sendingFacility',
  'ipp',
  'ins',
  'pamEvent',
  'fromChannel',
];

/** Stable error codes (IDENTITY_NO_BIRTH_DATE), not the error's prose, which may quote a value. */
const ERROR_CODE = /\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b/g;

/**
 * The words a message is found by: sender, owner, file name and other metadata, error codes, and
 * from HL7 v2 content each message's MSH-9, MSH-10, MSH-3, MSH-4 and every identifier of PID-3
 * (IPP and INS) and MRG-1 (the IPP a merge retires). Never a name, a birth date or an address.
 */
export function messageTerms(m: IndexSource): string {
  const terms: string[] = [];
  const add = (v: unknown): void => {
    if ((typeof v === 'string' && v !== '') || typeof v === 'number') terms.push(String(v));
  };
  add(m.sender);
  add(m.owner);
  for (const key of indexedMeta) add(m.meta[key]);
  for (const code of m.error?.match(ERROR_CODE) ?? []) add(code);
  if (m.content) for (const message of hl7Messages(m.content)) terms.push(...hl7Terms(message));
  return terms.join(' ');
}

function hl7Terms(message: Hl7Message): string[] {
  const h = summarize(message);
  const ids = [...segmentsNamed(message, 'PID'), ...segmentsNamed(message, 'MRG')].flatMap((segment) =>
    repetitions(message, segment, segment.name === 'PID' ? 3 : 1).map((rep) => component(rep, 1)),
  );
  return [h.messageType, h.controlId, h.sendingApp, h.sendingFacility, ...ids].filter(Boolean);
}

/** Every message of the content, or none when it is not HL7 v2 (a PDF, XML): then metadata alone. */
function hl7Messages(content: Buffer): Hl7Message[] {
  const head = content.subarray(0, 16).toString('latin1');
  if (!/^(\ufeff|\xef\xbb\xbf)?[\s\v]*(MSH|FHS|BHS)\|/.test(head)) return [];
  let parts: Buffer[];
  try {
    parts = splitBatch(content).messages;
  } catch {
    // A file cut by the index's read limit (or a broken batch trailer): take each MSH on its own.
    const text = content.toString('latin1');
    parts = [...text.matchAll(/(?:^|[\r\n])MSH\|/g)].map((hit, i, all) =>
      content.subarray(hit.index + (hit[0].length - 4), all[i + 1]?.index ?? content.length),
    );
  }
  const messages: Hl7Message[] = [];
  for (const part of parts) {
    try {
      messages.push(parse(part));
    } catch {
      // An unreadable message (the refused ones often are) keeps its metadata terms.
    }
  }
  return messages;
}

/** The browser's search: indexed messages through the index, the few past the mark read directly. */
export function searchMessages(
  store: Store,
  filter: MessageFilter,
  page: { limit?: number; after?: number | null } = {},
): { items: MessageSummary[]; next: number | null } {
  return store.messageSearch.search(filter, page, messageTerms);
}

export interface MessageIndexerOptions {
  log: Logger;
  /** Messages per transaction. */
  batch?: number;
  /** Pause when nothing is left to index. */
  idleMs?: number;
}

export class MessageIndexer {
  private readonly wake = new Wake();
  private running: Promise<void> | null = null;
  private stopping = false;

  constructor(
    private readonly store: Store,
    private readonly o: MessageIndexerOptions,
  ) {}

  start(): void {
    this.stopping = false;
    this.running ??= this.loop();
  }

  /** Finishes the batch in hand (its commit included), then returns. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake.notify();
    await this.running;
    this.running = null;
  }

  /** Indexes one batch; returns how many messages it took. */
  async indexBatch(): Promise<number> {
    const search = this.store.messageSearch;
    const sources = search.unindexed(this.o.batch ?? 200);
    if (sources.length === 0) return 0;
    const rows = sources.map((m) => ({ id: m.id, text: messageTerms(m) }));
    await this.store.write.messageSearch.record(rows, sources.at(-1)!.id);
    return sources.length;
  }

  private async loop(): Promise<void> {
    const batch = this.o.batch ?? 200;
    let failures = 0;
    while (!this.stopping) {
      let taken = 0;
      try {
        taken = await this.indexBatch();
        failures = 0;
      } catch (error) {
        // The store is busy or closing: the mark did not move, the same batch is tried again later.
        failures++;
        this.o.log.warn({ err: describeError(error), failures }, 'message index: batch failed, will retry');
      }
      // A full batch means more is waiting: go on at once (after letting the event loop breathe).
      const pause = taken === batch ? 0 : Math.min(60_000, (this.o.idleMs ?? 500) * 2 ** failures);
      await this.wake.wait(pause);
    }
  }
}
