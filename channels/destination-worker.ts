// Drains one destination's queue: ordered (one at a time, head of line blocks, as identity feeds
// need) or parallel (up to `concurrency` at once). Retries with backoff, then ERROR; never drops.
import type { Destination, Outbound, SendResult } from '../connectors/contract.ts';
import { SendError } from '../connectors/contract.ts';
import type { Step, StepInput } from '../transformers/contract.ts';
import type { RetryPolicy } from '../config/config.ts';
import type { Store } from '../store/store.ts';
import type { StoragePolicy, StoredDelivery } from '../store/journal.ts';
import { isTransientDbError } from '../store/db.ts';
import { backoffDelay } from './backoff.ts';
import { runSteps, describeError } from './steps.ts';
import { Wake } from './wake.ts';
import type { ChannelMetrics } from './metrics.ts';
import type { Logger } from '../connectors/contract.ts';

export interface WorkerOptions {
  channelId: string;
  name: string;
  ordered: boolean;
  concurrency: number;
  retry: RetryPolicy;
  storage: () => StoragePolicy;
  steps: Step[];
  destination: Destination;
  store: Store;
  metrics: ChannelMetrics;
  log: Logger;
  /** Called after each delivery settles (SENT, ERROR or FILTERED), for back-pressure accounting. */
  onSettled: (d: StoredDelivery, final: boolean) => void;
}

export class DestinationWorker {
  private readonly wake = new Wake();
  private readonly inFlight = new Map<number, Promise<void>>();
  private running = false;
  private loop: Promise<void> | undefined;

  constructor(private readonly o: WorkerOptions) {}

  get name(): string {
    return this.o.name;
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
        const free = this.o.ordered ? (this.inFlight.size ? 0 : 1) : this.o.concurrency - this.inFlight.size;
        if (free <= 0) {
          await this.wake.wait();
          continue;
        }
        const now = Date.now();
        // An ordered queue looks only at its head, due or not: a later message must not overtake it.
        const rows = this.o.ordered
          ? journal.queue(this.o.channelId, this.o.name, 1, null)
          : journal
              .queue(this.o.channelId, this.o.name, this.o.concurrency * 2, now)
              .filter((r) => !this.inFlight.has(r.id));
        const due = rows.filter((r) => r.nextAttemptAt <= now && !this.inFlight.has(r.id)).slice(0, free);
        if (due.length === 0) {
          await this.wake.wait(this.sleepFor(rows, now));
          continue;
        }
        for (const d of due) {
          const p = this.attempt(d).finally(() => {
            this.inFlight.delete(d.id);
            this.wake.notify();
          });
          this.inFlight.set(d.id, p);
        }
      } catch (error) {
        // The store itself failed (disk full, I/O): keep the queue, say so, and look again later.
        this.o.log.error(
          { err: describeError(error), destination: this.o.name },
          'destination queue read failed',
        );
        await this.wake.wait(1000);
      }
    }
  }

  private sleepFor(rows: StoredDelivery[], now: number): number | undefined {
    const next = this.o.ordered
      ? rows[0]?.nextAttemptAt
      : this.o.store.journal.nextAttemptAt(this.o.channelId, this.o.name);
    return next === undefined || next === null ? undefined : Math.max(10, next - now);
  }

  private async attempt(d: StoredDelivery): Promise<void> {
    const { journal, writer } = this.o.store;
    const policy = this.o.storage();
    const message = journal.message(d.messageId);
    const content = journal.content(d.messageId, 'transformed') ?? journal.content(d.messageId, 'raw');
    if (!message || !content) {
      await writer.write(() =>
        journal.failed(
          { deliveryId: d.id, error: 'message content is gone (pruned)', retryAt: null, now: Date.now() },
          policy,
        ),
      );
      return;
    }
    let input: StepInput | null;
    try {
      input = await runSteps(this.o.steps, {
        content: content.content,
        contentType: content.contentType,
        meta: message.meta as StepInput['meta'],
      });
    } catch (error) {
      // A step refused this content: retrying cannot help. Journaled as the step said it, once.
      await this.fail(d, error, false);
      return;
    }
    if (input === null) {
      await writer.write(() => journal.filteredDelivery(d.id, policy, Date.now()));
      this.o.onSettled(d, true);
      return;
    }
    const outbound: Outbound = {
      messageId: d.messageId,
      deliveryId: d.id,
      idempotencyKey: `${this.o.channelId}-${d.messageId}-${this.o.name}`,
      content: input.content,
      contentType: input.contentType,
      meta: input.meta,
      owner: message.owner,
      attempt: d.attempts + 1,
    };
    const record = (r: SendResult): void =>
      journal.sent({
        deliveryId: d.id,
        // Without destination steps, what was sent is the message's content already journaled: no second copy.
        sent: this.o.steps.length ? { content: input.content, contentType: input.contentType } : undefined,
        response: r.response && { content: r.response, contentType: r.responseType ?? 'text/plain' },
        detail: r.detail,
        policy,
        now: Date.now(),
      });
    try {
      const apply = this.o.destination.apply?.bind(this.o.destination);
      if (apply) {
        // Filing and the SENT mark share one transaction: exactly-once into the core store.
        await writer.write(() => record(apply(outbound)));
      } else {
        const result = await this.o.destination.send!(outbound);
        await writer.write(() => record(result));
      }
    } catch (error) {
      await this.fail(d, error);
      return;
    }
    this.o.metrics.sent++;
    this.o.metrics.observeLatency((Date.now() - message.receivedAt) / 1000);
    this.o.onSettled(d, true);
  }

  private async fail(
    d: StoredDelivery,
    error: unknown,
    retryable = !(error instanceof SendError) || error.retryable,
  ): Promise<void> {
    const attempts = d.attempts + 1;
    // A locked database (another process's transaction) only says "later": never ERROR for good.
    const locked = isTransientDbError(error);
    const retryAt =
      locked || (retryable && attempts < this.o.retry.maxAttempts)
        ? Date.now() + backoffDelay(this.o.retry, attempts)
        : null;
    const text = describeError(error);
    this.o.metrics.sendFailures++;
    this.o.log.warn(
      { destination: this.o.name, messageId: d.messageId, attempt: attempts, retryAt, err: text },
      retryAt ? 'delivery failed, will retry' : 'delivery failed for good',
    );
    try {
      await this.o.store.writer.write(() =>
        this.o.store.journal.failed(
          { deliveryId: d.id, error: text, retryAt, now: Date.now() },
          this.o.storage(),
        ),
      );
    } catch (e) {
      this.o.log.error({ err: describeError(e) }, 'could not journal a delivery failure; it will be retried');
      return;
    }
    if (retryAt === null) {
      this.o.metrics.errored++;
      this.o.onSettled(d, true);
    }
  }
}
