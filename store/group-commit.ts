// Group commit: every write of the engine goes through here, so that many messages share one
// fsync under load (synchronous=FULL costs ~0.3 ms a commit on this class of machine) while each
// caller still learns about its own write only after the commit that made it durable.
import type { Db } from './db.ts';

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
  private closed = false;
  private readonly maxBatch: number;
  /** Number of transactions committed and writes they carried: the batching shows in the benchmark. */
  readonly stats = { commits: 0, writes: 0 };

  constructor(
    private readonly db: Db,
    options: GroupCommitOptions = {},
  ) {
    this.maxBatch = options.maxBatch ?? 1000;
  }

  /**
   * Runs `op` inside the next group transaction, as a savepoint of its own: if it throws, only its
   * own changes roll back and only its promise rejects.
   */
  write<T>(op: (db: Db) => T): Promise<T> {
    if (this.closed)
      return Promise.reject(new Error('the store is closed: no write accepted after shutdown'));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ op, resolve: resolve as (v: unknown) => void, reject });
      if (this.queue.length >= this.maxBatch) this.flush();
      else if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Commits whatever waits now. Synchronous: better-sqlite3 blocks for the fsync. */
  flush(): void {
    this.scheduled = false;
    if (this.queue.length === 0) return;
    const batch = this.queue;
    this.queue = [];
    const outcomes: Array<{ ok: boolean; value: unknown }> = [];
    try {
      this.db.transaction(() => {
        for (const p of batch) {
          try {
            outcomes.push({ ok: true, value: this.db.transaction(p.op)(this.db) });
          } catch (error) {
            outcomes.push({ ok: false, value: error });
          }
        }
      })();
    } catch (error) {
      // The commit itself failed (disk full, I/O error): nothing in the batch is durable.
      for (const p of batch) p.reject(error);
      return;
    }
    this.stats.commits++;
    this.stats.writes += batch.length;
    batch.forEach((p, i) => {
      const o = outcomes[i]!;
      if (o.ok) p.resolve(o.value);
      else p.reject(o.value);
    });
  }

  /** Flushes and refuses later writes: the last step of an orderly shutdown. */
  close(): void {
    this.flush();
    this.closed = true;
  }
}
