// Group commit: every write of the engine goes through here, so that many messages share one
// fsync under load (synchronous=FULL costs ~0.3 ms a commit on this class of machine) while each
// caller still learns about its own write only after the commit that made it durable.
import type { Db } from './db.ts';
import { OncoError } from '../config/errors.ts';

/**
 * How a write is committed: in the next group transaction; alone, in a transaction of its own
 * committed at once (work under suspicion); as a mark, alone and without waiting for the disk
 * (the poison guard's "attempt begins"); or trailing: in the next group transaction that another
 * write opens, else after TRAILING_MS (a result nobody waits for shares the next receipt's fsync
 * instead of paying one of its own).
 */
export type WriteMode = 'group' | 'alone' | 'mark' | 'trailing';

/**
 * How long a trailing write waits for company: about one MLLP round trip (ACK, next message,
 * its commit), so that with one connection a result joins the next message's receipt.
 */
export const TRAILING_MS = 5;

/**
 * The store's writer, wherever it runs: a worker thread owning the write connection
 * (`store/writer-thread.ts`), or the caller's own thread (`InlineWriter`, for `:memory:` stores and
 * as the benchmark's baseline). Calls name a module method and carry plain data only.
 */
export interface Writer {
  run(module: string, method: string, args: unknown[], mode: WriteMode): Promise<unknown>;
  /** Gives the pages freed by deletions back to the file system (auto_vacuum = INCREMENTAL). */
  reclaimSpace(): Promise<void>;
  /** Transactions committed, writes they carried, time spent in them: the batching shows in the benchmark. */
  readonly stats: WriterStats;
  /** Commits what waits, then refuses later writes. */
  close(): Promise<void>;
}

/** Calls `modules[module][method](...args)`: what every writer runs for one request. */
export function callModule(modules: object, module: string, method: string, args: unknown[]): unknown {
  const target = (modules as Record<string, Record<string, unknown> | undefined>)[module];
  const fn = target?.[method];
  if (typeof fn !== 'function') throw new Error(`the store has no write ${module}.${method}`);
  return (fn as (...a: unknown[]) => unknown).apply(target, args);
}

/** Runs one request on a group-commit writer, in the way its mode says. */
export function runOn(gc: GroupCommit, mode: WriteMode, op: () => unknown): Promise<unknown> {
  if (mode === 'mark') {
    try {
      return Promise.resolve(gc.mark(op));
    } catch (error) {
      return Promise.reject(error);
    }
  }
  return mode === 'alone' ? gc.writeAlone(op) : gc.write(op, mode === 'trailing');
}

/** The writer in the caller's thread: commits block its event loop while they run. */
export class InlineWriter implements Writer {
  private readonly gc: GroupCommit;

  constructor(
    private readonly db: Db,
    private readonly modules: object,
  ) {
    this.gc = new GroupCommit(db);
  }

  get stats(): WriterStats {
    return this.gc.stats;
  }

  run(module: string, method: string, args: unknown[], mode: WriteMode): Promise<unknown> {
    return runOn(this.gc, mode, () => callModule(this.modules, module, method, args));
  }

  reclaimSpace(): Promise<void> {
    reclaim(this.db);
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.gc.close();
    return Promise.resolve();
  }
}

/** Returns freed pages to the disk and empties the WAL: outside any transaction, on the write connection. */
export function reclaim(db: Db): void {
  db.pragma('incremental_vacuum');
  db.pragma('wal_checkpoint(TRUNCATE)');
}

/** The journal could not commit (disk full, I/O error): nothing of the batch is durable; try again later. */
export class JournalUnavailable extends OncoError {
  constructor(cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super('JOURNAL_UNAVAILABLE', { params: { reason }, cause });
  }
}

/**
 * What the writer did: durable commits, the writes they carried, and the wall time it spent running
 * transactions (marks included), fsyncs and checkpoints included: how busy the one writer was.
 */
export interface WriterStats {
  commits: number;
  writes: number;
  busyMs: number;
}

/** What one operation of a transaction gave: its value, or what it threw. */
interface Outcome {
  ok: boolean;
  value: unknown;
}

interface Pending {
  op: (db: Db) => unknown;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

export interface GroupCommitOptions {
  /** Flush as soon as this many writes wait, without waiting for the next turn of the event loop. */
  maxBatch?: number;
}

export class GroupCommit {
  private queue: Pending[] = [];
  private scheduled = false;
  /** The deadline of trailing writes waiting for company. */
  private trailing: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly maxBatch: number;
  /** The connection's configured synchronous level (2 = FULL), restored after each mark. */
  private readonly syncLevel: number;
  /**
   * Runs operations in one transaction, each in a savepoint of its own: one that throws rolls back
   * alone. Built once: a wrapper built per write cost about 5 % of the writer thread's time.
   */
  private readonly each: (ops: ReadonlyArray<(db: Db) => unknown>) => Outcome[];
  readonly stats: WriterStats = { commits: 0, writes: 0, busyMs: 0 };

  constructor(
    private readonly db: Db,
    options: GroupCommitOptions = {},
  ) {
    this.maxBatch = options.maxBatch ?? 1000;
    this.syncLevel = db.pragma('synchronous', { simple: true }) as number;
    const savepoint = db.transaction((op: (db: Db) => unknown) => op(db));
    this.each = db.transaction((ops: ReadonlyArray<(db: Db) => unknown>) =>
      ops.map((op): Outcome => {
        try {
          return { ok: true, value: savepoint(op) };
        } catch (error) {
          return { ok: false, value: error };
        }
      }),
    );
  }

  /**
   * Runs `op` inside the next group transaction, as a savepoint of its own: if it throws, only its
   * own changes roll back and only its promise rejects. A `trailing` write does not open that
   * transaction itself: it waits for another write to, or for TRAILING_MS.
   */
  write<T>(op: (db: Db) => T, trailing = false): Promise<T> {
    if (this.closed)
      return Promise.reject(new Error('the store is closed: no write accepted after shutdown'));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ op, resolve: resolve as (v: unknown) => void, reject });
      if (this.queue.length >= this.maxBatch) this.flush();
      else if (!trailing && !this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      } else if (trailing && !this.scheduled) {
        this.trailing ??= setTimeout(() => this.flush(), TRAILING_MS);
      }
    });
  }

  /**
   * Like write, but committed at once in a transaction of its own: what waits is committed first,
   * then `op` alone. For work under suspicion (the poison guard): if it takes the process down, no
   * other message's write shares its fate, and no other message is counted as its accomplice.
   */
  writeAlone<T>(op: (db: Db) => T): Promise<T> {
    this.flush();
    const written = this.write(op);
    this.flush();
    return written;
  }

  /** Commits whatever waits now. Synchronous: better-sqlite3 blocks for the fsync. */
  flush(): void {
    this.scheduled = false;
    clearTimeout(this.trailing);
    this.trailing = undefined;
    if (this.queue.length === 0) return;
    const batch = this.queue;
    this.queue = [];
    let outcomes: Outcome[];
    const started = performance.now();
    try {
      outcomes = this.each(batch.map((p) => p.op));
    } catch (error) {
      // The commit itself failed (disk full, I/O error): nothing in the batch is durable.
      const unavailable = new JournalUnavailable(error);
      for (const p of batch) p.reject(unavailable);
      return;
    } finally {
      this.stats.busyMs += performance.now() - started;
    }
    this.stats.commits++;
    this.stats.writes += batch.length;
    batch.forEach((p, i) => {
      const o = outcomes[i]!;
      if (o.ok) p.resolve(o.value);
      else p.reject(o.value);
    });
  }

  /**
   * Commits `op` at once, in a transaction of its own that does not wait for the disk
   * (synchronous=NORMAL for that one commit): it survives a crash of the process, which is what it
   * guards against, without the fsync a FULL commit costs. The poison-message guard marks each
   * attempt this way before the attempt starts. The next FULL commit syncs it along with its own
   * writes; a power cut before that may lose the mark, which costs one uncounted attempt, never data.
   * Writes waiting for the group commit are not part of it: they keep their FULL commit.
   */
  mark<T>(op: (db: Db) => T): T {
    const [outcome] = this.markEach([op]);
    if (!outcome!.ok) throw outcome!.value;
    return outcome!.value as T;
  }

  /**
   * Marks that arrived together (the writer thread gets them in one message), in one such commit,
   * each in a savepoint of its own: one failing rejects alone; a failed commit, all of them.
   */
  markEach(ops: ReadonlyArray<(db: Db) => unknown>): Outcome[] {
    if (this.closed) throw new Error('the store is closed: no write accepted after shutdown');
    const relaxed = this.syncLevel > 1;
    const started = performance.now();
    if (relaxed) this.db.pragma('synchronous = NORMAL');
    try {
      return this.each(ops);
    } catch (error) {
      const unavailable = new JournalUnavailable(error);
      return ops.map(() => ({ ok: false, value: unavailable }));
    } finally {
      if (relaxed) this.db.pragma(`synchronous = ${this.syncLevel}`);
      this.stats.busyMs += performance.now() - started;
    }
  }

  /** Flushes and refuses later writes: the last step of an orderly shutdown. */
  close(): void {
    this.flush();
    this.closed = true;
  }
}
