// One channel: source → processing steps → destination queues, on the journal's delivery rules.
import crypto from 'node:crypto';
import type {
  Destination,
  DestinationContext,
  Inbound,
  Logger,
  Outcome,
  Receipt,
  Source,
  SourceContext,
  ConnectorContext,
  ConnectorState,
} from '../connectors/contract.ts';
import type { Step, StepInput } from '../transformers/contract.ts';
import type { ChannelConfig, RetryPolicy } from '../config/config.ts';
import type { Store } from '../store/store.ts';
import type { ProcessingResult, StoragePolicy } from '../store/journal.ts';
import { destinationFrameKeys } from '../config/schema.ts';
import type { Registry } from './registry.ts';
import { DestinationWorker } from './destination-worker.ts';
import { ChannelMetrics } from './metrics.ts';
import { describeError, runSteps } from './steps.ts';
import { Wake } from './wake.ts';

export type ChannelState = 'UNDEPLOYED' | 'STARTING' | 'STARTED' | 'PAUSED' | 'STOPPING' | 'FAILED';

export interface ChannelDeps {
  store: Store;
  registry: Registry;
  log: Logger;
  defaults: { retry: RetryPolicy; queueLimit: number };
  /** The engine-wide part of every connector context (accounts, shared services, data dir). */
  connectorContext: (channelId: string, report: (s: ConnectorState) => void) => ConnectorContext;
  dispatch: DestinationContext['dispatch'];
}

export interface ChannelStatus {
  id: string;
  name: string;
  state: ChannelState;
  source: ConnectorState & { type: string };
  backlog: number;
  queued: Record<string, number>;
  lastError: string | null;
  metrics: ChannelMetrics;
}

const PROCESS_BATCH = 200;

export class Channel {
  state: ChannelState = 'UNDEPLOYED';
  readonly metrics = new ChannelMetrics();
  private source: Source | undefined;
  private steps: Step[] = [];
  private workers: DestinationWorker[] = [];
  private destinations: Destination[] = [];
  private readonly processWake = new Wake();
  private processing: Promise<void> | undefined;
  private processingRunning = false;
  private readonly outcomeWaiters = new Map<number, Array<(o: Outcome) => void>>();
  private readonly capacity = new Wake();
  private backlog = 0;
  private readonly queued = new Map<string, number>();
  private sourceState: ConnectorState = {};
  private lastError: string | null = null;
  private readonly log: Logger;

  constructor(
    public config: ChannelConfig,
    private readonly deps: ChannelDeps,
  ) {
    this.log = deps.log;
  }

  get id(): string {
    return this.config.id;
  }

  private get storage(): StoragePolicy {
    return this.config.storage;
  }

  private get queueLimit(): number {
    return this.config.queueLimit ?? this.deps.defaults.queueLimit;
  }

  status(): ChannelStatus {
    return {
      id: this.id,
      name: this.config.name ?? this.id,
      state: this.state,
      source: { type: this.config.source.type, ...this.sourceState },
      backlog: this.backlog,
      queued: Object.fromEntries(this.queued),
      lastError: this.lastError,
      metrics: this.metrics,
    };
  }

  /**
   * Builds every component, resumes journaled work (recovery), then opens the source last. With
   * `paused`, the source stays closed: the engine opens every source only once every channel can
   * take messages, so a channel writer never meets a target that is still starting.
   */
  async deploy(options: { paused?: boolean } = {}): Promise<void> {
    if (this.state !== 'UNDEPLOYED' && this.state !== 'FAILED') return;
    this.state = 'STARTING';
    try {
      const { registry, store } = this.deps;
      this.steps = this.config.steps.map((s) => registry.createStep(s));
      this.backlog = store.journal.backlogCount(this.id);
      const destCtx: DestinationContext = {
        ...this.deps.connectorContext(this.id, () => undefined),
        dispatch: this.deps.dispatch,
        store,
      };
      this.workers = this.config.destinations.map((d) => {
        const destination = registry.createDestination(d, destCtx, destinationFrameKeys);
        this.destinations.push(destination);
        this.queued.set(d.name, store.journal.queueCount(this.id, d.name));
        return new DestinationWorker({
          channelId: this.id,
          name: d.name,
          ordered: d.queue !== 'parallel',
          concurrency: d.concurrency,
          retry: { ...this.deps.defaults.retry, ...d.retry },
          storage: () => this.storage,
          steps: d.steps.map((s) => registry.createStep(s)),
          destination,
          store,
          metrics: this.metrics,
          log: this.log,
          onSettled: (delivery) => this.deliverySettled(delivery.destination),
        });
      });
      for (const d of this.destinations) await d.start?.();
      for (const w of this.workers) w.start();
      this.startProcessing();
      if (options.paused) {
        this.state = 'PAUSED';
        return;
      }
      await this.openSource();
      this.state = 'STARTED';
    } catch (error) {
      this.lastError = describeError(error);
      this.log.error({ err: this.lastError }, 'channel failed to deploy');
      await this.teardown();
      this.state = 'FAILED';
      throw error;
    }
  }

  /** Closes the source, lets processing and in-flight deliveries finish, then closes destinations. */
  async undeploy(): Promise<void> {
    if (this.state === 'UNDEPLOYED') return;
    this.state = 'STOPPING';
    await this.teardown();
    this.state = 'UNDEPLOYED';
  }

  /** Stops taking input; journaled work keeps flowing out. */
  async pause(): Promise<void> {
    if (this.state !== 'STARTED') return;
    await this.closeSource();
    this.state = 'PAUSED';
  }

  async resume(): Promise<void> {
    if (this.state !== 'PAUSED') return;
    try {
      await this.openSource();
    } catch (error) {
      this.lastError = describeError(error);
      this.source = undefined;
      throw error;
    }
    this.state = 'STARTED';
  }

  private async openSource(): Promise<void> {
    const base = this.deps.connectorContext(this.id, (s) => {
      this.sourceState = { ...this.sourceState, ...s };
      if (s.lastError) this.lastError = s.lastError;
    });
    const ctx: SourceContext = {
      ...base,
      receive: (m) => this.receive(m),
      outcome: (id) => this.outcome(id),
    };
    this.source = this.deps.registry.createSource(this.config.source, ctx);
    await this.source.start();
    this.sourceState = { ...this.sourceState, connected: true };
  }

  private async closeSource(): Promise<void> {
    const s = this.source;
    this.source = undefined;
    this.sourceState = { ...this.sourceState, connected: false };
    await s?.stop();
  }

  private async teardown(): Promise<void> {
    await this.closeSource().catch((e) => this.log.error({ err: describeError(e) }, 'source stop failed'));
    this.processingRunning = false;
    this.processWake.notify();
    await this.processing;
    await Promise.all(this.workers.map((w) => w.stop()));
    for (const d of this.destinations) {
      await d.stop?.().catch((e) => this.log.error({ err: describeError(e) }, 'destination stop failed'));
    }
    this.workers = [];
    this.destinations = [];
    this.capacity.notify();
  }

  /**
   * Journals a message; resolves after the commit that made it durable. While the channel holds more
   * than its queue limit, waits first: the source stops reading, which is the back-pressure.
   */
  async receive(m: Inbound, options: { replayOf?: number } = {}): Promise<Receipt> {
    while (this.pending() >= this.queueLimit && this.processingRunning) await this.capacity.wait(1000);
    const { store } = this.deps;
    const dedupKey =
      this.config.dedup && options.replayOf === undefined
        ? (m.dedupKey ?? `sha256:${crypto.createHash('sha256').update(m.content).digest('hex')}`)
        : null;
    const receipt = await store.writer.write(() =>
      store.journal.receive({
        channel: this.id,
        content: m.content,
        contentType: m.contentType ?? 'application/octet-stream',
        meta: m.meta ?? {},
        sender: m.sender ?? null,
        owner: m.owner ?? null,
        dedupKey,
        rejected: m.rejected ?? null,
        replayOf: options.replayOf,
        destinations: this.config.destinations.map((d) => d.name),
        now: Date.now(),
      }),
    );
    this.metrics.received++;
    if (receipt.duplicateOf !== undefined) this.metrics.duplicates++;
    else if (m.rejected) this.metrics.rejected++;
    else {
      this.backlog++;
      this.processWake.notify();
    }
    return receipt;
  }

  /** Resolves once the message has left the processing stage. */
  outcome(messageId: number): Promise<Outcome> {
    const m = this.deps.store.journal.message(messageId);
    if (!m) return Promise.reject(new Error(`message ${messageId} does not exist`));
    if (m.status !== 'RECEIVED') {
      const status = m.status === 'SENT' ? 'TRANSFORMED' : m.status;
      return Promise.resolve({ messageId, status: status as Outcome['status'], error: m.error ?? undefined });
    }
    return new Promise((resolve) => {
      const list = this.outcomeWaiters.get(messageId) ?? [];
      list.push(resolve);
      this.outcomeWaiters.set(messageId, list);
    });
  }

  private pending(): number {
    let deepest = 0;
    for (const n of this.queued.values()) deepest = Math.max(deepest, n);
    return this.backlog + deepest;
  }

  private deliverySettled(destination: string): void {
    this.queued.set(destination, Math.max(0, (this.queued.get(destination) ?? 1) - 1));
    this.capacity.notify();
  }

  private startProcessing(): void {
    this.processingRunning = true;
    this.processing = this.processLoop();
  }

  /** The processing stage: strictly in journal order, so an ordered feed stays ordered end to end. */
  private async processLoop(): Promise<void> {
    const { journal, writer } = this.deps.store;
    while (this.processingRunning) {
      let batch;
      try {
        batch = journal.backlog(this.id, 0, PROCESS_BATCH);
      } catch (error) {
        this.log.error({ err: describeError(error) }, 'reading the backlog failed');
        await this.processWake.wait(1000);
        continue;
      }
      if (batch.length === 0) {
        await this.processWake.wait();
        continue;
      }
      const writes: Array<Promise<ProcessingResult>> = [];
      for (const m of batch) {
        if (!this.processingRunning) break;
        const raw = journal.content(m.id, 'raw');
        const result = await this.process(m.id, raw?.content, raw?.contentType ?? m.contentType, m.meta);
        writes.push(writer.write(() => (journal.processed(result, this.storage), result)));
      }
      const settled = await Promise.allSettled(writes);
      for (const s of settled) {
        if (s.status === 'fulfilled') this.processed(s.value);
        else {
          this.log.error(
            { err: describeError(s.reason) },
            'journaling a processing result failed; will retry',
          );
          await this.processWake.wait(1000);
        }
      }
    }
  }

  private async process(
    messageId: number,
    content: Buffer | undefined,
    contentType: string | null,
    meta: Record<string, unknown>,
  ): Promise<ProcessingResult> {
    const now = Date.now();
    if (!content) return { messageId, status: 'ERROR', error: 'raw content missing from the journal', now };
    try {
      const out = await runSteps(this.steps, {
        content,
        contentType: contentType ?? 'application/octet-stream',
        meta: meta as StepInput['meta'],
      });
      if (out === null) return { messageId, status: 'FILTERED', now: Date.now() };
      return {
        messageId,
        status: 'TRANSFORMED',
        now: Date.now(),
        // Without steps the raw content is what destinations read: no second copy.
        transformed: this.steps.length
          ? { content: out.content, contentType: out.contentType, meta: out.meta }
          : undefined,
      };
    } catch (error) {
      return { messageId, status: 'ERROR', error: describeError(error), now: Date.now() };
    }
  }

  private processed(r: ProcessingResult): void {
    this.backlog = Math.max(0, this.backlog - 1);
    if (r.status === 'TRANSFORMED') {
      this.metrics.transformed++;
      for (const w of this.workers) {
        this.queued.set(w.name, (this.queued.get(w.name) ?? 0) + 1);
        w.notify();
      }
    } else if (r.status === 'FILTERED') this.metrics.filtered++;
    else {
      this.metrics.errored++;
      this.lastError = r.error ?? null;
    }
    this.capacity.notify();
    const waiters = this.outcomeWaiters.get(r.messageId);
    if (waiters) {
      this.outcomeWaiters.delete(r.messageId);
      for (const w of waiters) w({ messageId: r.messageId, status: r.status, error: r.error });
    }
  }

  /** Replays a whole message as a new one (same raw content, linked to the original). */
  async replayMessage(messageId: number): Promise<Receipt> {
    const { journal } = this.deps.store;
    const m = journal.message(messageId);
    const raw = journal.content(messageId, 'raw');
    if (!m || m.channel !== this.id) throw new Error(`message ${messageId} is not in channel ${this.id}`);
    if (!raw)
      throw new Error(`message ${messageId} kept no raw content (storage policy): it cannot be replayed`);
    return this.receive(
      {
        content: raw.content,
        contentType: raw.contentType,
        meta: { ...(m.meta as Record<string, string>), replayOf: messageId },
        sender: m.sender ?? undefined,
        owner: m.owner ?? undefined,
      },
      { replayOf: messageId },
    );
  }

  /** Puts one delivery back in its queue with fresh attempts. */
  async replayDelivery(deliveryId: number): Promise<void> {
    const { journal, writer } = this.deps.store;
    const d = journal.delivery(deliveryId);
    if (!d || d.channel !== this.id) throw new Error(`delivery ${deliveryId} is not in channel ${this.id}`);
    await writer.write(() => journal.requeue(deliveryId, Date.now()));
    this.queued.set(d.destination, (this.queued.get(d.destination) ?? 0) + 1);
    this.workers.find((w) => w.name === d.destination)?.notify();
  }
}
