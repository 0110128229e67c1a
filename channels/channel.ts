// One channel: source → processing steps → destination queues, on the journal's delivery rules.
import crypto from 'node:crypto';
import path from 'node:path';
import type {
  Destination,
  DestinationContext,
  DueAnswer,
  Inbound,
  Logger,
  Outcome,
  Receipt,
  Source,
  SourceContext,
  StagedContent,
  ConnectorContext,
  ConnectorState,
} from '../connectors/contract.ts';
import { partsOf, stagedOf, type Step, type StepInput } from '../transformers/contract.ts';
import type { ChannelConfig, RetryPolicy } from '../config/config.ts';
import type { Store } from '../store/store.ts';
import type {
  DeliveryStatus,
  NewMessage,
  ProcessingResult,
  StoragePolicy,
  StoredContent,
  StoredMessage,
} from '../store/journal.ts';
import type { FusedFiling } from '../store/filing.ts';
import { destinationFrameKeys } from '../config/schema.ts';
import { OncoError, renderError } from '../config/errors.ts';
import type { Registry } from './registry.ts';
import { JournalBackoff } from './backoff.ts';
import { DestinationWorker } from './destination-worker.ts';
import { ChannelMetrics } from './metrics.ts';
import { describeError, runSteps } from './steps.ts';
import type { StepPool } from './step-pool.ts';
import { Wake } from './wake.ts';
import { withContent } from './content.ts';
import { InFlight, type InFlightEntry } from './in-flight.ts';

export type ChannelState = 'UNDEPLOYED' | 'STARTING' | 'STARTED' | 'PAUSED' | 'STOPPING' | 'FAILED';

export interface ChannelDeps {
  store: Store;
  registry: Registry;
  log: Logger;
  defaults: { retry: RetryPolicy; queueLimit: number; poisonLimit: number };
  /** The engine-wide part of every connector context (accounts, shared services, data dir). */
  connectorContext: (channelId: string, report: (s: ConnectorState) => void) => ConnectorContext;
  dispatch: DestinationContext['dispatch'];
  /** Where the steps that may leave the main thread run (channels/step-pool.ts). */
  stepPool: StepPool;
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
/**
 * The processing loop gives the event loop a turn once a slice lasted this long, so that ACKs,
 * health checks and SIGTERM are served while a backlog drains; per slice, not per message, so that
 * the results of a slice still share one group commit.
 */
const SLICE_MS = 50;
/**
 * How long an answer on outcome waits for the store writers' first attempt. Past it the message is
 * journaled and queued (behind an ordered queue's retrying head, say): "on its way", answered AA,
 * and a later failure reaches the sender as a late negative answer.
 */
const FILING_WAIT_MS = 10_000;
const ANSWERS_PAGE = 100;
const ANSWER_HEAD_BYTES = 64 * 1024;

const EMPTY = Buffer.alloc(0);

/** A store-writer delivery of a message in the run, and the worker of its queue. */
interface InlineFiler {
  worker: DestinationWorker;
  deliveryId: number;
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

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
  /** Messages whose outcome a peer waits for on an open connection (an MLLP ACK on outcome). */
  private readonly peersWaiting = new Set<number>();
  /** Woken after every attempt of a store writer: answers on outcome wait for those. */
  private readonly filingWake = new Wake();
  /** Destinations that file into the core store (`apply`): a sender's answer waits for them. */
  private storeWriters = new Set<string>();
  private readonly capacity = new Wake();
  private backlog = 0;
  private readonly queued = new Map<string, number>();
  /**
   * Steps all in process and every destination a store writer the processing stage files for: a
   * message whose source takes its outcome may be received, processed and filed in one write.
   */
  private fusable = false;
  /** The fused receipt's poison guard: null while the channel does not fuse. */
  private inFlight: InFlight | null = null;
  /** Fused messages between their steps and their commit. */
  private fusedRunning = 0;
  private readonly fusedSettled = new Wake();
  /** Set while a suspect (an earlier attempt of it died) runs alone: other fused messages wait. */
  private suspect: Promise<void> | undefined;
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
      const { registry, store, stepPool } = this.deps;
      this.steps = this.config.steps.map((s) => stepPool.createStep(registry, s));
      this.backlog = store.journal.backlogCount(this.id);
      const destCtx: DestinationContext = {
        ...this.deps.connectorContext(this.id, () => undefined),
        dispatch: this.deps.dispatch,
        stage: (from) => store.blobs.stage(from),
      };
      this.storeWriters = new Set();
      this.workers = this.config.destinations.map((d) => {
        const destination = registry.createDestination(d, destCtx, destinationFrameKeys);
        this.destinations.push(destination);
        if (destination.filing) this.storeWriters.add(d.name);
        this.queued.set(d.name, store.journal.queueCount(this.id, d.name));
        return new DestinationWorker({
          channelId: this.id,
          name: d.name,
          ordered: d.queue !== 'parallel',
          concurrency: d.concurrency,
          retry: { ...this.deps.defaults.retry, ...d.retry },
          poisonLimit: this.deps.defaults.poisonLimit,
          storage: () => this.storage,
          steps: d.steps.map((s) => stepPool.createStep(registry, s)),
          destination,
          store,
          metrics: this.metrics,
          log: this.log,
          onAttempt: (delivery, status, error) => this.deliveryAttempted(delivery, status, error),
        });
      });
      this.fusable =
        this.config.dedup &&
        this.workers.length > 0 &&
        this.workers.every((w) => w.filesInProcess) &&
        this.config.steps.every((s) => registry.step(s.type).offThread === undefined);
      if (this.fusable) this.inFlight = this.openInFlight();
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
      stage: (from) => this.deps.store.blobs.stage(from),
      outcome: (id, options) => this.outcome(id, options),
      answersDue: (afterId) => this.answersDue(afterId),
      answered: (id, code) => this.answered(id, code),
      outbox: {
        waiting: (channel, afterId, limit) => this.deps.store.outbox.waiting(channel, afterId, limit),
        onCommit: (listener) => this.deps.store.onCommit(listener),
      },
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
    this.inFlight?.close();
    this.inFlight = null;
    this.fusable = false;
    this.capacity.notify();
  }

  /** The in-flight file of this channel beside the database (none for a store in memory). */
  private openInFlight(): InFlight {
    const { dataDir } = this.deps.connectorContext(this.id, () => undefined);
    const file =
      dataDir === ':memory:' ? null : path.join(dataDir, 'in-flight', `${encodeURIComponent(this.id)}.keys`);
    const { journal } = this.deps.store;
    return new InFlight(file, (e) => journal.holdsCopy(this.id, e.key, e.digest));
  }

  /**
   * Journals a message; resolves after the commit that made it durable. While the channel holds more
   * than its queue limit, waits first: the source stops reading, which is the back-pressure.
   */
  async receive(m: Inbound, options: { replayOf?: number } = {}): Promise<Receipt> {
    while (this.pending() >= this.queueLimit && this.processingRunning) await this.capacity.wait(1000);
    if (options.replayOf === undefined && this.fusesNow(m)) return this.receiveFused(m);
    const { store } = this.deps;
    const dedup = this.config.dedup && options.replayOf === undefined;
    const staged = await this.staged(m);
    const digest = dedup
      ? (staged?.digest ?? crypto.createHash('sha256').update(m.content!).digest('hex'))
      : undefined;
    const receipt = await store.blobs.keep(staged, (blob) => {
      const message = this.newMessage(m, blob ? EMPTY : (staged?.content ?? m.content!), digest, {
        blob,
        replayOf: options.replayOf,
      });
      return m.outboxId === undefined
        ? store.write.journal.receive(message)
        : store.write.outbox.receive(m.outboxId, message);
    });
    // An outbox row taken already (offered again after a crash) journaled nothing new.
    if ('alreadyTaken' in receipt) return { messageId: receipt.messageId };
    if (this.received(receipt)) {
      if (m.rejected) this.metrics.rejected++;
      else {
        this.backlog++;
        this.processWake.notify();
      }
    }
    return receipt;
  }

  /** The journal's row of a message received; `digest` is set when the channel de-duplicates. */
  private newMessage(
    m: Inbound,
    content: Buffer,
    digest: string | undefined,
    more: Pick<NewMessage, 'blob' | 'replayOf'> = {},
  ): NewMessage {
    return {
      channel: this.id,
      content,
      ...more,
      contentType: m.contentType ?? 'application/octet-stream',
      meta: m.meta ?? {},
      sender: m.sender ?? null,
      owner: m.owner ?? null,
      dedupKey: digest === undefined ? null : (m.dedupKey ?? `sha256:${digest}`),
      digest,
      rejected: m.rejected ?? null,
      owesAnswer: m.owesAnswer,
      ...(m.audit ? { audit: m.audit } : {}),
      destinations: this.config.destinations.map((d) => d.name),
      now: Date.now(),
    };
  }

  /** Counts a journaled receipt; true when it is a new message to process (not a copy). */
  private received(receipt: Receipt & { copyOfQuarantined?: number }): boolean {
    this.metrics.received++;
    if (receipt.keyReusedFrom !== undefined) {
      const said = new OncoError('DEDUP_KEY_REUSED', {
        params: { id: receipt.messageId, earlier: receipt.keyReusedFrom },
      });
      this.log.warn({ code: said.code, messageId: receipt.messageId }, renderError(said));
    }
    if (receipt.duplicateOf !== undefined) this.metrics.duplicates++;
    else if (receipt.copyOfQuarantined !== undefined) this.metrics.quarantined++;
    else return true;
    return false;
  }

  /**
   * Whether this message takes the fused receipt now: its source takes the outcome with the receipt,
   * its bytes are small and in memory, it is to be processed, and nothing of the channel is ahead
   * of it (no backlog, the store writers' queues empty and idle), so that journal order, processing
   * order and filing order stay one.
   */
  private fusesNow(m: Inbound): m is Inbound & { content: Buffer; dedupKey: string } {
    return (
      this.fusable &&
      m.takesOutcome === true &&
      m.content !== undefined &&
      m.staged === undefined &&
      m.content.length <= this.deps.store.blobs.threshold &&
      m.dedupKey !== undefined &&
      !m.rejected &&
      m.outboxId === undefined &&
      m.audit === undefined &&
      !m.owesAnswer &&
      this.processingRunning &&
      this.backlog === 0 &&
      this.workers.every((w) => w.idle && (this.queued.get(w.name) ?? 0) === 0)
    );
  }

  /**
   * The fused receipt (issue 14): the steps run on the message as received, then one write journals
   * the receipt (de-duplication included), the result and the store writers' filing, durable in one
   * group commit; the receipt carries the outcome. The poison guard is the in-flight file: an attempt
   * is recorded there before the steps run; a message whose earlier attempts died runs alone
   * (committed alone, no other fused message in flight), and past the poison limit is journaled
   * QUARANTINED without running.
   */
  private async receiveFused(m: Inbound & { content: Buffer; dedupKey: string }): Promise<Receipt> {
    const { store } = this.deps;
    const inFlight = this.inFlight!;
    const digest = crypto.createHash('sha256').update(m.content).digest('hex');
    const entry: InFlightEntry = { key: m.dedupKey, digest };
    while (this.suspect) await this.suspect;
    const unfinished = inFlight.unfinishedOf(entry);
    let alone: (() => void) | undefined;
    if (unfinished > 0) {
      this.suspect = new Promise((resolve) => (alone = resolve));
      while (this.fusedRunning > 0) await this.fusedSettled.wait();
    }
    this.fusedRunning++;
    inFlight.begin(entry);
    let journaled = false;
    try {
      const message = this.newMessage(m, m.content, digest);
      const raw: StoredContent = {
        stage: 'raw',
        destination: '',
        contentType: message.contentType,
        content: m.content,
      };
      const processed =
        unfinished >= this.deps.defaults.poisonLimit
          ? { result: this.quarantineResent(unfinished), output: null }
          : await this.runSteps(0, raw, message.contentType, message.meta);
      const placed = await this.placeOutput(processed);
      if ('error' in placed) throw placed.error;
      const { result, output, release } = placed;
      const filings = output ? this.fusedFilings(output, message.owner) : [];
      const write = unfinished > 0 ? store.writeAlone : store.write;
      const { messageId: _, ...fused } = result;
      const { receipt, filed } = await write.deliveries
        .receivedAndFiled(message, fused, this.storage, filings)
        .finally(release);
      journaled = true;
      if (!this.received(receipt)) return receipt;
      const r = { ...result, messageId: receipt.messageId };
      const workers = this.workers.filter((w) => filed.includes(w.name));
      this.processed(r, workers, message.now, false);
      const final = r.status !== 'TRANSFORMED' || workers.length === this.workers.length;
      return final ? { ...receipt, outcome: outcomeOf(r) } : receipt;
    } finally {
      this.fusedRunning--;
      this.fusedSettled.notify();
      inFlight.end(entry, journaled);
      if (alone) {
        this.suspect = undefined;
        alone();
      }
    }
  }

  /** The filings a fused message's output names, one per store writer that names it with its id's place. */
  private fusedFilings(output: StepInput, owner: string | null): FusedFiling[] {
    return this.workers.flatMap((worker) => {
      const filing = worker.inlineFiling(0, 0, output, owner);
      return filing?.messageIdPath
        ? [
            {
              destination: worker.name,
              ordered: worker.ordered,
              filing: { ...filing, messageIdPath: filing.messageIdPath },
            },
          ]
        : [];
    });
  }

  /** Content above the store's threshold goes to a file first, whether it came as bytes or staged. */
  private async staged(m: Inbound): Promise<StagedContent | undefined> {
    if (m.staged) return m.staged;
    if (!m.content) throw new Error('a source handed over a message without content');
    return m.content.length > this.deps.store.blobs.threshold
      ? this.deps.store.blobs.stage({ buffer: m.content })
      : undefined;
  }

  /**
   * Resolves once the message has left the processing stage and, when the channel has store
   * writers, once they settled or made their first attempt: a refusal by the store is then part of
   * the answer (AE) instead of an ERROR after an AA.
   */
  async outcome(messageId: number, options: { peerWaits?: boolean } = {}): Promise<Outcome> {
    const processed = await this.processingOutcome(messageId, options.peerWaits ?? true);
    if (processed.status !== 'TRANSFORMED' || this.storeWriters.size === 0) return processed;
    const deadline = Date.now() + FILING_WAIT_MS;
    for (;;) {
      const filed = this.filingOutcome(messageId);
      if (filed) return filed;
      const left = deadline - Date.now();
      if (left <= 0 || !this.processingRunning) return processed;
      await this.filingWake.wait(left);
    }
  }

  private processingOutcome(messageId: number, peerWaits: boolean): Promise<Outcome> {
    const m = this.deps.store.journal.message(messageId);
    if (!m) return Promise.reject(new Error(`message ${messageId} does not exist`));
    if (m.status !== 'RECEIVED') return Promise.resolve(toOutcome(m));
    if (peerWaits) this.peersWaiting.add(messageId);
    return new Promise((resolve) => {
      const list = this.outcomeWaiters.get(messageId) ?? [];
      list.push(resolve);
      this.outcomeWaiters.set(messageId, list);
    });
  }

  /** The outcome once every store writer settled or tried once; null while one has not tried yet. */
  private filingOutcome(messageId: number): Outcome | null {
    const { journal } = this.deps.store;
    const m = journal.message(messageId);
    if (!m) return null;
    if (m.status !== 'TRANSFORMED') return toOutcome(m);
    const filing = journal.deliveries(messageId).filter((d) => this.storeWriters.has(d.destination));
    const failed = filing.find((d) => d.status === 'ERROR' || d.status === 'QUARANTINED');
    if (failed) return { messageId, status: 'ERROR', error: `${failed.destination}: ${failed.lastError}` };
    const tried = filing.every((d) => d.status === 'SENT' || d.status === 'FILTERED' || d.attempts > 0);
    return tried ? { messageId, status: 'TRANSFORMED' } : null;
  }

  /** Answers a source owes its senders (after a crash, or a late failure), a page at a time. */
  async answersDue(afterId = 0): Promise<DueAnswer[]> {
    return this.deps.store.journal.answersDue(this.id, afterId, ANSWERS_PAGE).map((a) => this.withHead(a));
  }

  /** An answer is built from the head of its message (an HL7 file's MSH): a large one's file is not read whole. */
  private withHead(due: DueAnswer): DueAnswer {
    return due.blob ? { ...due, content: this.deps.store.blobs.head(due.blob, ANSWER_HEAD_BYTES) } : due;
  }

  /** Records an answer given: no longer due. */
  answered(messageId: number, code: string): Promise<void> {
    return this.deps.store.write.journal.answered(messageId, code);
  }

  private pending(): number {
    let deepest = 0;
    for (const n of this.queued.values()) deepest = Math.max(deepest, n);
    return this.backlog + deepest;
  }

  /**
   * After every delivery attempt. A final failure is an alert (a stable code in the log, a counter
   * in /metrics) and, when the source owes the sender an answer, a late negative answer.
   */
  private deliveryAttempted(
    d: { messageId: number; destination: string },
    status: DeliveryStatus | 'RETRY',
    error?: { code: string; text: string },
  ): void {
    if (this.storeWriters.has(d.destination)) this.filingWake.notify();
    if (status === 'RETRY') return;
    this.queued.set(d.destination, Math.max(0, (this.queued.get(d.destination) ?? 1) - 1));
    this.capacity.notify();
    if (status !== 'ERROR' && status !== 'QUARANTINED') return;
    this.metrics.deliveriesFailed++;
    this.lastError = error?.text ?? null;
    const said = new OncoError('DELIVERY_FAILED', {
      params: { id: d.messageId, destination: d.destination },
    });
    // The alert: one line at error level with a stable code, whatever the destination's own code.
    this.log.error(
      {
        code: said.code,
        cause: error?.code,
        messageId: d.messageId,
        destination: d.destination,
        err: error?.text,
      },
      renderError(said),
    );
    const due = this.dueAnswer(d.messageId);
    if (due) this.source?.answerDue?.(due);
  }

  private dueAnswer(messageId: number): DueAnswer | undefined {
    try {
      const due = this.deps.store.journal.dueAnswer(messageId);
      return due && this.withHead(due);
    } catch (error) {
      // The answer stays due in the journal: the source writes it when it next starts.
      this.log.error({ err: describeError(error), messageId }, 'reading a due answer failed');
      return undefined;
    }
  }

  private startProcessing(): void {
    this.processingRunning = true;
    this.processing = this.processLoop();
  }

  /**
   * The processing stage: strictly in journal order, so an ordered feed stays ordered end to end.
   *
   * Poison guard: each message's attempt is marked in the journal before its steps run (a commit
   * without fsync: the writer's `mark`), and its result clears it. The messages of a run are marked
   * together, in one such commit. A message found with unfinished attempts was being processed
   * when the engine died or was stopped hard; it is a suspect and runs alone, marked alone, its
   * result committed at once, so that only the message that kills the engine keeps counting (the
   * others of its run count one unfinished attempt, then each runs alone and goes through). After
   * `defaults.poisonLimit` unfinished attempts it is quarantined, not run again.
   */
  private async processLoop(): Promise<void> {
    const { store } = this.deps;
    const backoff = new JournalBackoff(this.log, 'processing');
    /** Messages whose result this process failed to journal: their next try is not a new start. */
    const unrecorded = new Set<number>();
    while (this.processingRunning) {
      let run: StoredMessage[];
      let unfinished: number[];
      let inline: Map<number, InlineFiler[]>;
      try {
        const batch = store.journal.backlog(this.id, 0, PROCESS_BATCH);
        if (batch.length === 0) {
          await this.processWake.wait();
          continue;
        }
        const firstSuspect = batch.findIndex((m) => m.attempts > 0);
        run =
          firstSuspect === 0
            ? batch.slice(0, 1)
            : batch.slice(0, firstSuspect < 0 ? undefined : firstSuspect);
        // After a journal failure this process saw, the start already marked stands for this one.
        const fresh = run.filter((m) => !unrecorded.delete(m.id)).map((m) => m.id);
        inline = this.inlineFilers(run);
        const premarked = [...inline.values()].flatMap((list) => list.map((f) => f.deliveryId));
        const counts = fresh.length ? await store.mark.journal.startProcessingEach(fresh, premarked) : [];
        unfinished = run.map((m) => counts[fresh.indexOf(m.id)] ?? 0);
      } catch (error) {
        await this.pauseProcessing(backoff.failed(error));
        continue;
      }
      const writes: Array<
        Promise<{ result: ProcessingResult; filed: DestinationWorker[]; receivedAt: number }>
      > = [];
      let slice = Date.now();
      // A marked run is processed to its end, a stop included: its marks are not left unfinished.
      for (const [i, m] of run.entries()) {
        if (Date.now() - slice > SLICE_MS) {
          await nextTurn();
          slice = Date.now();
        }
        const processed =
          unfinished[i]! >= this.deps.defaults.poisonLimit
            ? { result: this.quarantine(m.id, unfinished[i]!), output: null }
            : await this.process(m.id, m.contentType, m.meta);
        // A step's output staged as a file is placed as its blob before the write that references it
        // is queued, so that the run's writes keep journal order.
        const placed = await this.placeOutput(processed);
        if ('error' in placed) {
          const failed = Promise.reject(placed.error);
          failed.catch(() => undefined);
          writes.push(failed);
          continue;
        }
        const { result, output, release } = placed;
        const filers = inline.get(m.id) ?? [];
        const filings = output
          ? filers.flatMap(({ worker, deliveryId }) => {
              const filing = worker.inlineFiling(m.id, deliveryId, output, m.owner);
              return filing ? [{ deliveryId, ordered: worker.ordered, filing }] : [];
            })
          : [];
        // A result a peer waits for (an answer on outcome) is committed at once; one nobody waits
        // for (or only an answer file) joins the next commit another write opens: one fsync for both.
        const write =
          m.attempts > 0 ? store.writeAlone : this.peersWaiting.has(m.id) ? store.write : store.writeTrailing;
        const premarked = filers.map((f) => f.deliveryId);
        writes.push(
          write.deliveries
            .processedAndFiled(result, this.storage, filings, premarked)
            .then((filed) => ({
              result,
              filed: filers.filter((f) => filed.includes(f.deliveryId)).map((f) => f.worker),
              receivedAt: m.receivedAt,
            }))
            .finally(release),
        );
      }
      let failure: unknown;
      (await Promise.allSettled(writes)).forEach((s, i) => {
        if (s.status === 'fulfilled')
          return this.processed(s.value.result, s.value.filed, s.value.receivedAt);
        unrecorded.add(run[i]!.id);
        failure ??= s.reason;
      });
      if (failure === undefined) backoff.succeeded();
      else await this.pauseProcessing(backoff.failed(failure));
    }
  }

  /** Sleeps `ms` after a journal failure; a new message does not cut it short, a stop does. */
  private async pauseProcessing(ms: number): Promise<void> {
    const until = Date.now() + ms;
    while (this.processingRunning && Date.now() < until) await this.processWake.wait(until - Date.now());
  }

  private quarantine(messageId: number, unfinished: number): ProcessingResult {
    const error = new OncoError('POISON_MESSAGE', { params: { id: messageId, times: unfinished } });
    return { messageId, status: 'QUARANTINED', error: renderError(error), now: Date.now() };
  }

  /** A fused message whose attempts died before it was journaled: it has no id to name yet. */
  private quarantineResent(unfinished: number): ProcessingResult {
    const error = new OncoError('POISON_RESENT', { params: { times: unfinished } });
    return { messageId: 0, status: 'QUARANTINED', error: renderError(error), now: Date.now() };
  }

  /**
   * Places the file a step staged as its output (`stagedOutput`), and those the output names
   * (`withParts`), as blobs, pinned until `release`: the transformed content references them, and
   * the output is read from its new place.
   */
  private async placeOutput(processed: {
    result: ProcessingResult;
    output: StepInput | null;
  }): Promise<
    { result: ProcessingResult; output: StepInput | null; release: () => void } | { error: unknown }
  > {
    const { result, output } = processed;
    const staged = output && stagedOf(output);
    const parts = output ? partsOf(output) : [];
    if ((!staged?.file && parts.length === 0) || !result.transformed)
      return { ...processed, release: () => undefined };
    const { blobs } = this.deps.store;
    const releases: Array<() => void> = [];
    const release = (): void => releases.forEach((r) => r());
    try {
      let transformed = result.transformed;
      let placedOutput = output;
      if (staged?.file) {
        const placed = await blobs.place({ ...staged, file: staged.file });
        releases.push(placed.release);
        const { contentType, meta } = transformed;
        const stored = { stage: 'transformed' as const, destination: '', contentType, content: EMPTY };
        transformed = { content: EMPTY, blob: placed.blob, contentType, meta };
        placedOutput = withContent(
          blobs,
          { ...stored, blob: placed.blob },
          { contentType, meta: output!.meta },
        ).value;
      }
      const placedParts = [];
      for (const part of parts) {
        const placed = await blobs.place(part.staged);
        releases.push(placed.release);
        placedParts.push({ ...placed.blob, contentType: part.contentType });
      }
      if (placedParts.length) transformed = { ...transformed, parts: placedParts };
      return { result: { ...result, transformed }, output: placedOutput, release };
    } catch (error) {
      release();
      return { error };
    }
  }

  /** Runs the steps on a journaled message; `output` is what the destinations read (null unless TRANSFORMED). */
  private async process(
    messageId: number,
    contentType: string | null,
    meta: Record<string, unknown>,
  ): Promise<{ result: ProcessingResult; output: StepInput | null }> {
    const raw = this.deps.store.journal.content(messageId, 'raw');
    if (raw) return this.runSteps(messageId, raw, contentType, meta);
    return {
      result: { messageId, status: 'ERROR', error: 'raw content missing from the journal', now: Date.now() },
      output: null,
    };
  }

  /** Runs the steps on a message's raw content, journaled or (fused) just received. */
  private async runSteps(
    messageId: number,
    raw: StoredContent,
    contentType: string | null,
    meta: Record<string, unknown>,
  ): Promise<{ result: ProcessingResult; output: StepInput | null }> {
    const now = Date.now();
    const failed = (error: string) => ({
      result: { messageId, status: 'ERROR' as const, error, now: Date.now() },
      output: null,
    });
    try {
      const input = withContent(this.deps.store.blobs, raw, {
        contentType: raw.contentType ?? contentType ?? 'application/octet-stream',
        meta: meta as StepInput['meta'],
      });
      const out = await runSteps(this.steps, input.value, this.deps.store.blobs);
      if (out === null) return { result: { messageId, status: 'FILTERED', now }, output: null };
      // A large file a step passed on unchanged stays one blob: referenced again, not copied in.
      const same = input.unchanged(out) ? raw.blob : undefined;
      return {
        result: {
          messageId,
          status: 'TRANSFORMED',
          now: Date.now(),
          // Without steps the raw content is what destinations read: no second copy.
          transformed: this.steps.length
            ? same
              ? { content: EMPTY, blob: same, contentType: out.contentType, meta: out.meta }
              : // A file a step staged is not read here: placeOutput journals the file itself.
                {
                  content: stagedOf(out)?.file ? EMPTY : out.content,
                  contentType: out.contentType,
                  meta: out.meta,
                }
            : undefined,
        },
        output: out,
      };
    } catch (error) {
      return failed(describeError(error));
    }
  }

  /**
   * The store-writer deliveries of a run that the processing stage files itself (item 1 of issue
   * 14: received, processed and filed in two group commits): those of a store writer without
   * destination steps whose queue is empty, for messages that are not suspects (a suspect goes the
   * long way, its delivery marked on its own). Their start is marked with the run's.
   */
  private inlineFilers(run: readonly StoredMessage[]): Map<number, InlineFiler[]> {
    const filers = new Map<number, InlineFiler[]>();
    const workers = this.workers.filter(
      (w) => w.filesInProcess && w.idle && (this.queued.get(w.name) ?? 0) === 0,
    );
    if (workers.length === 0) return filers;
    for (const m of run) {
      if (m.attempts > 0) continue;
      const deliveries = this.deps.store.journal.deliveries(m.id);
      const list = workers.flatMap((worker) => {
        const d = deliveries.find((x) => x.destination === worker.name && x.status === 'WAITING');
        return d ? [{ worker, deliveryId: d.id }] : [];
      });
      if (list.length) filers.set(m.id, list);
    }
    return filers;
  }

  /** After a result's commit; `fromBacklog`: the message was journaled before (not a fused one). */
  private processed(
    r: ProcessingResult,
    filed: readonly DestinationWorker[],
    receivedAt: number,
    fromBacklog = true,
  ): void {
    if (fromBacklog) this.backlog = Math.max(0, this.backlog - 1);
    if (r.status === 'TRANSFORMED') {
      this.metrics.transformed++;
      for (const w of this.workers) {
        if (filed.includes(w)) {
          w.filedInProcess(receivedAt);
          continue;
        }
        this.queued.set(w.name, (this.queued.get(w.name) ?? 0) + 1);
        w.notify();
      }
      if (filed.length) this.filingWake.notify();
    } else if (r.status === 'FILTERED') this.metrics.filtered++;
    else {
      if (r.status === 'QUARANTINED') {
        this.metrics.quarantined++;
        this.log.error(
          { code: 'POISON_MESSAGE', messageId: r.messageId },
          'a message kept crashing or stalling processing: quarantined',
        );
      } else this.metrics.errored++;
      this.lastError = r.error ?? null;
    }
    this.capacity.notify();
    const waiters = this.outcomeWaiters.get(r.messageId);
    this.peersWaiting.delete(r.messageId);
    if (waiters) {
      this.outcomeWaiters.delete(r.messageId);
      for (const w of waiters) w(outcomeOf(r));
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
        ...(raw.blob ? { staged: this.deps.store.blobs.existing(raw.blob) } : { content: raw.content }),
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
    const { journal, write } = this.deps.store;
    const d = journal.delivery(deliveryId);
    if (!d || d.channel !== this.id) throw new Error(`delivery ${deliveryId} is not in channel ${this.id}`);
    await write.journal.requeue(deliveryId, Date.now());
    this.queued.set(d.destination, (this.queued.get(d.destination) ?? 0) + 1);
    this.workers.find((w) => w.name === d.destination)?.notify();
  }
}

/** What a source is told of a processing result it waits for. */
function outcomeOf(r: ProcessingResult): Outcome {
  const status = r.status === 'QUARANTINED' ? 'ERROR' : r.status;
  return { messageId: r.messageId, status, ...(r.error === undefined ? {} : { error: r.error }) };
}

/** What a source is told of a message already past processing (SENT is TRANSFORMED and delivered). */
function toOutcome(m: StoredMessage): Outcome {
  const status = m.status === 'SENT' ? 'TRANSFORMED' : m.status === 'QUARANTINED' ? 'ERROR' : m.status;
  return { messageId: m.id, status: status as Outcome['status'], error: m.error ?? undefined };
}
