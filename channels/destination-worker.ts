// Drains one destination's queue: ordered (one at a time, head of line blocks, as identity feeds
// need) or parallel (up to `concurrency` at once). Retries with backoff, then ERROR; never drops.
import type { Destination, Filing, Outbound, SendResult } from '../connectors/contract.ts';
import type { OncoError } from '../config/errors.ts';
import type { ContentFile, Step, StepInput } from '../transformers/contract.ts';
import type { RetryPolicy } from '../config/config.ts';
import type { Store } from '../store/store.ts';
import type {
  DeliveryStatus,
  SentResult,
  StoragePolicy,
  StoredDelivery,
  StoredMessage,
} from '../store/journal.ts';
import { isTransientDbError } from '../store/db.ts';
import { JournalUnavailable } from '../store/group-commit.ts';
import { backoffDelay, JournalBackoff } from './backoff.ts';
import { runSteps, describeError } from './steps.ts';
import { Wake } from './wake.ts';
import { withContent, withContentOf } from './content.ts';
import type { ChannelMetrics } from './metrics.ts';
import type { Logger } from '../connectors/contract.ts';

export interface WorkerOptions {
  channelId: string;
  name: string;
  ordered: boolean;
  concurrency: number;
  retry: RetryPolicy;
  /**
   * Attempts of one delivery that may begin and never reach a journaled outcome before it is
   * quarantined: the engine died or was stopped hard during each of them.
   */
  poisonLimit: number;
  storage: () => StoragePolicy;
  steps: Step[];
  destination: Destination;
  store: Store;
  metrics: ChannelMetrics;
  log: Logger;
  /**
   * Called after each attempt with the delivery's new status (RETRY: failed, will be tried again):
   * back-pressure accounting, answers waiting for store writers, alerts.
   */
  onAttempt: (
    d: StoredDelivery,
    status: DeliveryStatus | 'RETRY',
    error?: { code: string; text: string },
  ) => void;
}

/** A delivery ready to send, and the `sent` stage to journal once it is (none: the content as journaled). */
interface Prepared {
  outbound: Outbound;
  message: StoredMessage;
  sent: SentResult['sent'];
  /** Unpins the blob of `sent`, once the write that references it has settled. */
  release: () => void;
}

/** Most deliveries one batch takes: bounds the memory of a batch and the work one failure can delay. */
const BATCH = 256;

export class DestinationWorker {
  private readonly wake = new Wake();
  private readonly inFlight = new Map<number, Promise<void>>();
  private running = false;
  private loop: Promise<void> | undefined;
  private readonly journalBackoff: JournalBackoff;
  /** While the journal cannot be written, no new attempt starts before this time. */
  private resumeAt = 0;
  /** Deliveries whose last attempt ended with a journal failure, not a crash: their start is marked. */
  private readonly unrecorded = new Set<number>();

  constructor(private readonly o: WorkerOptions) {
    this.journalBackoff = new JournalBackoff(o.log, `destination ${o.name}`);
  }

  get name(): string {
    return this.o.name;
  }

  get ordered(): boolean {
    return this.o.ordered;
  }

  /** A store writer without destination steps: the processing stage may file for it (Channel.processLoop). */
  get filesInProcess(): boolean {
    return this.o.destination.filing !== undefined && this.o.steps.length === 0;
  }

  /** Nothing of this queue in flight nor waiting: a new message would be its head. */
  get idle(): boolean {
    return this.inFlight.size === 0;
  }

  /**
   * The filing of a just-processed message, for the processing stage to run in its own result's
   * transaction; null when the destination refuses the content (its worker then journals that).
   */
  inlineFiling(
    messageId: number,
    deliveryId: number,
    content: StepInput,
    owner: string | null,
  ): Filing | null {
    try {
      return this.o.destination.filing!(this.outbound(messageId, deliveryId, content, owner, 1));
    } catch {
      return null;
    }
  }

  /** What the destination is handed for one attempt. */
  private outbound(
    messageId: number,
    deliveryId: number,
    input: StepInput,
    owner: string | null,
    attempt: number,
    file?: ContentFile,
  ): Outbound {
    // `content` passed on as it is: for a blob, the getter that reads the file only if touched.
    return withContentOf(input, {
      messageId,
      deliveryId,
      idempotencyKey: `${this.o.channelId}-${messageId}-${this.o.name}`,
      ...(file ? { file } : {}),
      contentType: input.contentType,
      meta: input.meta,
      owner,
      attempt,
    });
  }

  /** A delivery filed in process: counted as this queue's. */
  filedInProcess(receivedAt: number): void {
    this.o.metrics.sent++;
    this.o.metrics.observeLatency((Date.now() - receivedAt) / 1000);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /** New work may be queued: look again now. */
  notify(): void {
    this.wake.notify();
  }

  /** Stops taking deliveries and waits for those in flight: they finish and are journaled. */
  async stop(): Promise<void> {
    this.running = false;
    this.wake.notify();
    await this.loop;
    await Promise.allSettled([...this.inFlight.values()]);
  }

  private async run(): Promise<void> {
    const { journal } = this.o.store;
    while (this.running) {
      try {
        const now = Date.now();
        if (now < this.resumeAt) {
          await this.wake.wait(this.resumeAt - now);
          continue;
        }
        const free = this.o.ordered ? (this.inFlight.size ? 0 : 1) : this.o.concurrency - this.inFlight.size;
        if (free <= 0) {
          await this.wake.wait();
          continue;
        }
        // A destination that sends batches takes up to BATCH deliveries as one attempt of each.
        const width = this.o.destination.sendBatch ? BATCH : free;
        // An ordered queue looks only at its head, due or not: a later message must not overtake it.
        const rows = this.o.ordered
          ? journal.queue(this.o.channelId, this.o.name, this.o.destination.sendBatch ? BATCH : 1, null)
          : journal
              .queue(this.o.channelId, this.o.name, Math.max(this.o.concurrency * 2, width), now)
              .filter((r) => !this.inFlight.has(r.id));
        const notDue = rows.findIndex((r) => r.nextAttemptAt > now);
        let due = (
          this.o.ordered
            ? rows.slice(0, notDue < 0 ? rows.length : notDue)
            : rows.filter((r) => r.nextAttemptAt <= now)
        ).slice(0, width);
        // A suspect (an attempt of it began and never ended) runs alone: if it takes the engine down
        // again, no other delivery is counted against it. In an ordered batch, what precedes it goes first.
        const suspect = due.findIndex((r) => r.starts > r.attempts);
        if (suspect > 0 && this.o.ordered) due = due.slice(0, suspect);
        else if (suspect >= 0) due = this.inFlight.size === 0 ? [due[suspect]!] : [];
        if (due.length === 0) {
          await this.wake.wait(this.sleepFor(rows, now));
          continue;
        }
        if (due.length > 1 && this.o.destination.sendBatch) {
          const batch = due;
          const p = this.attemptBatch(batch).finally(() => {
            for (const d of batch) this.inFlight.delete(d.id);
            this.wake.notify();
          });
          for (const d of batch) this.inFlight.set(d.id, p);
          continue;
        }
        for (const d of due) {
          const p = this.attempt(d, d.starts > d.attempts).finally(() => {
            this.inFlight.delete(d.id);
            this.wake.notify();
          });
          this.inFlight.set(d.id, p);
        }
      } catch (error) {
        // The store itself failed (disk full, I/O): keep the queue, say so, and look again later.
        this.journalFailed(error);
      }
    }
  }

  private sleepFor(rows: StoredDelivery[], now: number): number | undefined {
    const next = this.o.ordered
      ? rows[0]?.nextAttemptAt
      : this.o.store.journal.nextAttemptAt(this.o.channelId, this.o.name);
    return next === undefined || next === null ? undefined : Math.max(10, next - now);
  }

  /** The journal could not be read or written: no attempt starts until the backoff delay passed. */
  private journalFailed(error: unknown): void {
    this.resumeAt = Date.now() + this.journalBackoff.failed(error);
  }

  private async attempt(d: StoredDelivery, suspect: boolean): Promise<void> {
    try {
      await this.tryDelivery(d, suspect);
    } catch (error) {
      // Only journal writes throw out of tryDelivery: its outcome is not recorded, its start is.
      this.unrecorded.add(d.id);
      this.journalFailed(error);
    }
  }

  /**
   * One attempt of each delivery of a batch (none a suspect): their starts marked in one commit, the
   * destination sends them together, what was sent is journaled in one write and each failure on
   * its own, as a single attempt's would be.
   */
  private async attemptBatch(batch: StoredDelivery[]): Promise<void> {
    const { store } = this.o;
    try {
      const fresh = batch.filter((d) => !this.unrecorded.delete(d.id)).map((d) => d.id);
      await store.mark.journal.startDeliveries(fresh);
    } catch (error) {
      this.journalFailed(error);
      return;
    }
    const prepared: Array<Prepared & { d: StoredDelivery }> = [];
    try {
      for (const d of batch) {
        const p = await this.prepare(d, store.write);
        if (p) prepared.push({ d, ...p });
      }
      if (prepared.length === 0) return;
      const outcomes = await this.o.destination.sendBatch!(
        prepared.map((p) => p.outbound),
        { ordered: this.o.ordered },
      ).catch((error: unknown) => prepared.map(() => ({ error })));
      const sent: SentResult[] = [];
      const failed: Array<[StoredDelivery, unknown]> = [];
      const notAttempted: number[] = [];
      outcomes.forEach((o, i) => {
        const p = prepared[i]!;
        if ('result' in o) sent.push(this.sentResult(p.d, p.sent, o.result));
        else if ('error' in o) failed.push([p.d, o.error]);
        else notAttempted.push(p.d.id);
      });
      // Sent but not journaled (it throws): sent again once the journal is back, same idempotency keys.
      await store.write.journal.batchSent({ sent, notAttempted });
      this.journalBackoff.succeeded();
      for (const p of prepared.filter((_, i) => 'result' in outcomes[i]!)) {
        this.o.metrics.sent++;
        this.o.metrics.observeLatency((Date.now() - p.message.receivedAt) / 1000);
        this.o.onAttempt(p.d, 'SENT');
      }
      await Promise.all(failed.map(([d, error]) => this.fail(d, error)));
    } catch (error) {
      // Only journal writes throw here: the outcomes not recorded keep their marked start.
      for (const d of batch) this.unrecorded.add(d.id);
      this.journalFailed(error);
    } finally {
      for (const p of prepared) p.release();
    }
  }

  private async tryDelivery(d: StoredDelivery, suspect: boolean): Promise<void> {
    const { store } = this.o;
    const policy = this.o.storage();
    let unfinished = 0;
    try {
      // After a journal failure this process saw, the start already marked stands for this one:
      // that attempt did not crash anything, it must not count towards quarantine.
      if (!this.unrecorded.delete(d.id)) unfinished = await store.mark.journal.startDelivery(d.id);
    } catch (error) {
      this.journalFailed(error);
      return;
    }
    if (unfinished >= this.o.poisonLimit) {
      const text =
        `DELIVERY_QUARANTINED: ${unfinished} attempts of this delivery began and never finished (the engine ` +
        'crashed or stalled each time); it is quarantined so that the queue behind it flows ' +
        '(hint: find the cause in the log of those crashes, then replay the delivery from the dashboard)';
      await this.settleFailure(d, { code: 'DELIVERY_QUARANTINED', text }, null, true);
      return;
    }
    const write = suspect ? store.writeAlone : store.write;
    const prepared = await this.prepare(d, write);
    if (!prepared) return;
    const { outbound, message, sent, release } = prepared;
    let result: SendResult | undefined;
    try {
      try {
        const { destination } = this.o;
        if (destination.filing) {
          // Filing and the SENT mark share one transaction of the writer: exactly-once into the core store.
          const filing = destination.filing(outbound);
          await write.deliveries.fileAndMarkSent(filing, { deliveryId: d.id, sent, policy, now: Date.now() });
        } else {
          result = await destination.send!(outbound);
        }
      } catch (error) {
        if (error instanceof JournalUnavailable) throw error;
        await this.fail(d, error);
        return;
      }
      // Sent but not journaled (it throws): sent again once the journal is back, same idempotency key.
      if (result) await write.journal.sent(this.sentResult(d, sent, result));
    } finally {
      release();
    }
    this.journalBackoff.succeeded();
    this.o.metrics.sent++;
    this.o.metrics.observeLatency((Date.now() - message.receivedAt) / 1000);
    this.o.onAttempt(d, 'SENT');
  }

  /**
   * What one delivery sends: its message's content through the destination's steps, as an Outbound,
   * and the `sent` stage to journal with it. Null when the delivery is settled already: its content
   * is gone, a step refused it (ERROR) or filtered it.
   */
  private async prepare(d: StoredDelivery, write: Store['write']): Promise<Prepared | null> {
    const { journal } = this.o.store;
    const message = journal.message(d.messageId);
    const content = journal.content(d.messageId, 'transformed') ?? journal.content(d.messageId, 'raw');
    if (!message || !content) {
      await this.settleFailure(d, { code: 'CONTENT_GONE', text: 'message content is gone (pruned)' }, null);
      return null;
    }
    let input: StepInput | null;
    const stored = withContent(this.o.store.blobs, content, {
      contentType: content.contentType,
      meta: message.meta as StepInput['meta'],
    });
    try {
      input = await runSteps(this.o.steps, stored.value);
    } catch (error) {
      // A step refused this content: retrying cannot help. Journaled as the step said it, once.
      await this.fail(d, error, false);
      return null;
    }
    if (input === null) {
      await write.journal.filteredDelivery(d.id, this.o.storage(), Date.now());
      this.o.onAttempt(d, 'FILTERED');
      return null;
    }
    // A large file no step changed is streamed out from its blob; `content` reads it only if touched.
    const file = stored.unchanged(input) ? input.file : undefined;
    const outbound = this.outbound(d.messageId, d.id, input, message.owner, d.attempts + 1, file);
    // Without destination steps, what was sent is the message's content already journaled: no second copy.
    if (!this.o.steps.length || file) return { outbound, message, sent: undefined, release: () => undefined };
    return { outbound, message, ...(await this.sentStage(input)) };
  }

  /**
   * The `sent` stage of what the destination's steps made: above the blob threshold a file, placed
   * (and pinned until `release`) before the write that references it, as received content is.
   */
  private async sentStage(out: StepInput): Promise<Pick<Prepared, 'sent' | 'release'>> {
    const { blobs } = this.o.store;
    const { content, contentType } = out;
    if (content.length <= blobs.threshold)
      return { sent: { content, contentType }, release: () => undefined };
    const staged = await blobs.stage({ buffer: content });
    const { blob, release } = await blobs.place({ ...staged, file: staged.file! });
    return { sent: { content: Buffer.alloc(0), contentType, blob }, release };
  }

  /** The journal's record of a delivery the destination sent. */
  private sentResult(d: StoredDelivery, sent: Prepared['sent'], result: SendResult): SentResult {
    return {
      deliveryId: d.id,
      sent,
      response: result.response && {
        content: result.response,
        contentType: result.responseType ?? 'text/plain',
      },
      detail: result.detail,
      policy: this.o.storage(),
      now: Date.now(),
    };
  }

  private async fail(
    d: StoredDelivery,
    error: unknown,
    // A SendError says; so does a refusal of the store's filing (an OncoError refused for good).
    retryable = (error as Partial<OncoError> | null)?.protocol?.retryable !== false,
  ): Promise<void> {
    const attempts = d.attempts + 1;
    // A locked database (another process's transaction) only says "later": never ERROR for good.
    const locked = isTransientDbError(error);
    const retryAt =
      locked || (retryable && attempts < this.o.retry.maxAttempts)
        ? Date.now() + backoffDelay(this.o.retry, attempts)
        : null;
    const code = (error as { code?: unknown } | null)?.code;
    const failure = { code: typeof code === 'string' ? code : 'SEND_FAILED', text: describeError(error) };
    this.o.metrics.sendFailures++;
    if (retryAt !== null) {
      this.o.log.warn(
        { destination: this.o.name, messageId: d.messageId, attempt: attempts, retryAt, err: failure.text },
        'delivery failed, will retry',
      );
    }
    await this.settleFailure(d, failure, retryAt);
  }

  /** Journals a failed attempt: retried at `retryAt`, or (null) ended in ERROR, or QUARANTINED. */
  private async settleFailure(
    d: StoredDelivery,
    failure: { code: string; text: string },
    retryAt: number | null,
    quarantine = false,
  ): Promise<void> {
    await this.o.store.write.journal.failed(
      { deliveryId: d.id, error: failure.text, retryAt, now: Date.now(), quarantine },
      this.o.storage(),
    );
    if (retryAt === null) this.o.metrics.errored++;
    this.o.onAttempt(d, quarantine ? 'QUARANTINED' : retryAt === null ? 'ERROR' : 'RETRY', failure);
  }
}
