// The store's writer in a worker thread: it owns the only write connection, so that an fsync never
// stalls the event loop that accepts and frames messages. Requests cross as plain data: every call
// made while a commit runs is posted at once and joins the next group transaction in the thread.
import fs from 'node:fs';
import { Worker } from 'node:worker_threads';
import { OncoError, type ProtocolStatus } from '../config/errors.ts';
import { JournalUnavailable, type WriteMode, type Writer, type WriterStats } from './group-commit.ts';

/** What the thread needs to open the database and build every writer module. */
export interface WriterInit {
  file: string;
  synchronous: 'FULL' | 'NORMAL' | 'OFF';
  /** The audit chain's key: the thread appends audit rows. */
  auditKey: Uint8Array;
  /** Where the documents' files are kept (null: none, a store in memory). */
  documentsDir: string | null;
  /** A bulk load: WAL checkpoints every BULK_CHECKPOINT_PAGES pages (db.ts). */
  bulkLoad?: boolean;
}

export interface WriteRequest {
  id: number;
  module: string;
  method: string;
  args: unknown[];
  mode: WriteMode;
}

/** Main thread → writer thread. */
export type ToWriter =
  { type: 'run'; requests: WriteRequest[] } | { type: 'reclaim'; id: number } | { type: 'close' };

export type WriteReply =
  { id: number; ok: true; value: unknown } | { id: number; ok: false; error: ErrorValue };

/** Writer thread → main thread. */
export type FromWriter = { type: 'replies'; replies: WriteReply[]; stats: WriterStats } | { type: 'closed' };

/** An error as data: what the caller needs to act on it (code, sentence, hint, whether to retry). */
export interface ErrorValue {
  name: string;
  message: string;
  /** The stable code of an OncoError, or a SQLite code (SQLITE_BUSY: try again later). */
  code?: string;
  hint?: string;
  location?: string;
  protocol?: ProtocolStatus;
  onco: boolean;
  cause?: ErrorValue;
}

export function errorToValue(error: unknown, depth = 0): ErrorValue {
  if (!(error instanceof Error)) return { name: 'Error', message: String(error), onco: false };
  const e = error as Error & { code?: unknown };
  const value: ErrorValue = {
    name: e.name,
    message: e.message,
    onco: error instanceof OncoError,
    ...(typeof e.code === 'string' ? { code: e.code } : {}),
  };
  if (error instanceof OncoError) {
    if (error.hint !== undefined) value.hint = error.hint;
    if (error.location !== undefined) value.location = error.location;
    value.protocol = error.protocol;
  }
  if (e.cause !== undefined && depth < 4) value.cause = errorToValue(e.cause, depth + 1);
  return value;
}

/** Rebuilds an error on this side with its class (OncoError, JournalUnavailable), code and cause. */
export function errorFromValue(v: ErrorValue): Error {
  const cause = v.cause && errorFromValue(v.cause);
  if (v.name === 'JournalUnavailable') return new JournalUnavailable(cause ?? new Error(v.message));
  const error = v.onco
    ? new OncoError(v.code ?? 'INTERNAL', {
        message: v.message,
        hint: v.hint,
        location: v.location,
        protocol: v.protocol,
        cause,
      })
    : Object.assign(new Error(v.message, { cause }), v.code === undefined ? {} : { code: v.code });
  error.name = v.name;
  return error;
}

/**
 * Names the calling thread (at most 15 characters), so that `top -H` and the benchmarks tell the
 * engine's threads apart: on Linux, where a thread may rename itself; elsewhere nothing happens.
 */
export function nameThisThread(name: string): void {
  try {
    fs.writeFileSync('/proc/thread-self/comm', name.slice(0, 15));
  } catch {
    // Not Linux (or no /proc): the thread keeps the process's name.
  }
}

/**
 * A Buffer crosses a thread as a plain Uint8Array: wrapped again (no copy) wherever it sits in
 * plain objects and arrays, so that module code reads `content.toString()` as before.
 */
export function asBuffers<T>(value: T): T {
  if (value instanceof Uint8Array) {
    return (
      Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength)
    ) as T;
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = asBuffers(value[i]);
  } else if (
    value !== null &&
    typeof value === 'object' &&
    Object.getPrototypeOf(value) === Object.prototype
  ) {
    const o = value as Record<string, unknown>;
    for (const k of Object.keys(o)) o[k] = asBuffers(o[k]);
  }
  return value;
}

// The thread runs TypeScript like the rest of the appliance: it registers tsx itself, whatever
// loader the main thread was started with (loader hooks are not inherited by workers on Node 20).
const bootstrap = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))})
  .then(({ register }) => { register(); return import(${JSON.stringify(new URL('./writer-thread-worker.ts', import.meta.url).href)}); })`;

interface Waiting {
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/** Where the writer says that its thread died and came back (a pino logger fits). */
export interface WriterLog {
  error(detail: object, message: string): void;
  info(detail: object, message: string): void;
}

/** When a dead writer thread is started again, and when the writer gives up. */
export interface RestartPolicy {
  /** Deaths in a row that are restarted; the next one leaves the writer down until the process restarts. */
  maxRestarts: number;
  /** Wait before the first restart; doubles with each death in a row. */
  firstDelayMs: number;
  maxDelayMs: number;
  /** A thread that lived this long was healthy: its death starts a new count. */
  stableMs: number;
}

export const defaultRestartPolicy: RestartPolicy = {
  maxRestarts: 5,
  firstDelayMs: 100,
  maxDelayMs: 5000,
  stableMs: 60_000,
};

/** What the health endpoint says of the writer: `up`, `restarting` (writes refused meanwhile), `failed` (for good). */
export interface WriterHealth {
  state: 'up' | 'restarting' | 'failed';
  /** Threads started again since the store opened. */
  restarts: number;
  /** Why the last thread died (no patient data: a thread's exit, an uncaught error's message). */
  lastError: string | null;
}

/**
 * The writer's client side. If its thread dies (an uncaught error, a resource limit), the writes it
 * had not answered are failed with JOURNAL_UNAVAILABLE: not answered means not acknowledged, so the
 * callers retry them as after any failed commit. Writes are refused while the thread is down, then a
 * new thread opens the database again (SQLite rolled back whatever the dead one had not committed)
 * after a delay that grows with each death in a row; after `maxRestarts` in a row it stays down.
 */
export class ThreadWriter implements Writer {
  readonly stats: WriterStats = { commits: 0, writes: 0, busyMs: 0 };
  private worker: Worker;
  /** The counters of the threads that died: a new thread counts from zero. */
  private statsBefore: WriterStats = { commits: 0, writes: 0, busyMs: 0 };
  private readonly waiting = new Map<number, Waiting>();
  private outbox: WriteRequest[] = [];
  private nextId = 1;
  /** Set while no thread runs: what a write is refused with. */
  private failure: Error | null = null;
  private closing: Promise<void> | null = null;
  private readonly policy: RestartPolicy;
  private readonly log: WriterLog;
  private startedAt = 0;
  private deathsInRow = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  private readonly status: WriterHealth = { state: 'up', restarts: 0, lastError: null };

  constructor(
    private readonly init: WriterInit,
    options: { log?: WriterLog; restart?: Partial<RestartPolicy> } = {},
  ) {
    this.policy = { ...defaultRestartPolicy, ...options.restart };
    this.log = options.log ?? {
      error: (detail, message) => console.error(message, detail),
      info: () => undefined,
    };
    this.worker = this.spawn();
  }

  health(): WriterHealth {
    return { ...this.status };
  }

  private spawn(): Worker {
    // A young generation of 12 MB (V8 grows it to 48 MB): the filing's garbage is short-lived, and
    // the region's bulk load kept the process under 300 MB only with this bound.
    const worker = new Worker(bootstrap, {
      eval: true,
      workerData: this.init,
      resourceLimits: { maxYoungGenerationSizeMb: 12 },
    });
    if (this.waiting.size === 0) worker.unref();
    worker.on('message', (m: FromWriter) => {
      if (m.type === 'replies' && worker === this.worker) this.replied(m);
    });
    // An uncaught error is followed by the exit: the first says why, the second changes nothing.
    worker.on('error', (error) => this.stopped(worker, error));
    worker.on('exit', (code) =>
      this.stopped(worker, new Error(`the store writer thread ended (exit code ${code})`)),
    );
    this.startedAt = Date.now();
    return worker;
  }

  run(module: string, method: string, args: unknown[], mode: WriteMode): Promise<unknown> {
    if (this.closing || this.failure) return Promise.reject(this.refusal());
    const id = this.nextId++;
    // Posted once per turn of the event loop (after its I/O callbacks): the calls of every socket
    // read and every processed message of that turn cross in one message, one clone and one wake-up
    // of the thread rather than one each.
    if (this.outbox.length === 0) setImmediate(() => this.post());
    this.outbox.push({ id, module, method, args, mode });
    return this.wait(id);
  }

  reclaimSpace(): Promise<void> {
    if (this.closing || this.failure) return Promise.reject(this.refusal());
    const id = this.nextId++;
    this.post();
    this.worker.postMessage({ type: 'reclaim', id } satisfies ToWriter);
    return this.wait(id).then(() => undefined);
  }

  close(): Promise<void> {
    clearTimeout(this.restartTimer);
    // No thread runs (it died, the restart is cancelled): nothing waits to be committed.
    if (this.failure) this.closing ??= Promise.resolve();
    this.closing ??= new Promise<void>((resolve) => {
      this.post();
      this.worker.ref();
      this.worker.once('exit', () => resolve());
      this.worker.postMessage({ type: 'close' } satisfies ToWriter);
    });
    return this.closing;
  }

  private refusal(): Error {
    return this.failure ?? new Error('the store is closed: no write accepted after shutdown');
  }

  private wait(id: number): Promise<unknown> {
    // Referenced while something waits: a command that awaits a write must not exit before it.
    if (this.waiting.size === 0) this.worker.ref();
    return new Promise((resolve, reject) => this.waiting.set(id, { resolve, reject }));
  }

  private post(): void {
    if (this.outbox.length === 0) return;
    const requests = this.outbox;
    this.outbox = [];
    try {
      this.worker.postMessage({ type: 'run', requests } satisfies ToWriter);
    } catch (error) {
      // An argument that cannot cross (a function, a class with private state): that caller's bug.
      for (const r of requests) this.settle({ id: r.id, ok: false, error: errorToValue(error) });
    }
  }

  private replied(m: Extract<FromWriter, { type: 'replies' }>): void {
    this.stats.commits = this.statsBefore.commits + m.stats.commits;
    this.stats.writes = this.statsBefore.writes + m.stats.writes;
    this.stats.busyMs = this.statsBefore.busyMs + m.stats.busyMs;
    for (const r of m.replies) this.settle(r);
  }

  private settle(r: WriteReply): void {
    const w = this.waiting.get(r.id);
    if (!w) return;
    this.waiting.delete(r.id);
    if (this.waiting.size === 0) this.worker.unref();
    if (r.ok) w.resolve(asBuffers(r.value));
    else w.reject(errorFromValue(r.error));
  }

  /** The thread is gone: what waited is not durable (its callers retry); a new thread follows, or none. */
  private stopped(worker: Worker, cause: Error): void {
    if (worker !== this.worker || (this.failure && !this.closing)) return;
    const failure = new JournalUnavailable(cause);
    for (const [, w] of this.waiting) w.reject(failure);
    this.waiting.clear();
    this.outbox = [];
    if (this.closing) return;
    this.failure = failure;
    this.status.lastError = cause.message;
    if (Date.now() - this.startedAt >= this.policy.stableMs) this.deathsInRow = 0;
    if (this.deathsInRow >= this.policy.maxRestarts) {
      this.status.state = 'failed';
      this.log.error(
        { err: cause.message, deathsInRow: this.deathsInRow + 1 },
        'the store writer thread died again: no more restarts, every write fails until the engine is restarted',
      );
      return;
    }
    const delayMs = Math.min(this.policy.maxDelayMs, this.policy.firstDelayMs * 2 ** this.deathsInRow);
    this.deathsInRow++;
    this.status.state = 'restarting';
    this.log.error(
      { err: cause.message, restartInMs: delayMs, restart: this.deathsInRow, of: this.policy.maxRestarts },
      'the store writer thread died: its unanswered writes failed (their callers retry); restarting it',
    );
    this.restartTimer = setTimeout(() => this.restart(), delayMs);
    this.restartTimer.unref();
  }

  private restart(): void {
    this.statsBefore = { ...this.stats };
    this.worker = this.spawn();
    this.failure = null;
    this.status.state = 'up';
    this.status.restarts++;
    this.log.info({ restarts: this.status.restarts }, 'the store writer thread restarted');
  }
}
