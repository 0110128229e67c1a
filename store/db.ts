// Opening the SQLite database: one connection per process, the single writer of the appliance.
import Database from 'better-sqlite3';
import fs from 'node:fs';
import path from 'node:path';

export type Db = Database.Database;

export interface Migration {
  /** Global order. Ranges per module keep them apart: journal 100-199, accounts 200-299, audit 300-399, patients 400-499, documents 500-599, RCP/PPS 600-699, mail tracking 700-709. */
  version: number;
  name: string;
  up: string;
}

export interface OpenOptions {
  /** `FULL` survives power loss; this better-sqlite3 build defaults WAL to NORMAL, so we set it explicitly. */
  synchronous?: 'FULL' | 'NORMAL' | 'OFF';
  /** Page cache of this connection (default 64 MiB; see WRITER_CACHE_MIB and READER_CACHE_MIB). */
  cacheMiB?: number;
}

/**
 * Page caches of the writer thread's connection and of the main thread's read connection, when both
 * exist: within the appliance's 300 MB with two V8 isolates beside them. The pages they miss come
 * from the OS cache (a few µs each): the region's load read 12 KB per identity with 64 MiB, ~0.01 ms.
 */
export const WRITER_CACHE_MIB = 32;
export const READER_CACHE_MIB = 16;

/**
 * The writer's own checkpoint threshold (its backstop, writer-thread-checkpoint.ts) in a bulk load
 * (the identities import, in a process of its own). A commit of 1,000 identities dirties 4,000-5,000
 * pages at random in the block, search and IPP indexes, so SQLite's 1,000 made each commit end with
 * a checkpoint in the writer; with 10,000 it comes every few commits, and pages dirtied again in
 * between are copied once (writer CPU -3.5 to -5 % at 400,000 patients, side by side). The checkpoint
 * thread (writer-thread-checkpoint.ts) runs beside a bulk load too. Durability is the same: every commit is
 * synced in the WAL (synchronous FULL), which a crash replays; the WAL file grows to ~60 MB.
 */
export const BULK_CHECKPOINT_PAGES = 10_000;

export function openDatabase(file: string, options: OpenOptions = {}): Db {
  if (file !== ':memory:') fs.mkdirSync(path.dirname(file), { recursive: true });
  const db = new Database(file);
  // auto_vacuum must be chosen before the first table exists; INCREMENTAL lets pruning give disk back.
  db.pragma('auto_vacuum = INCREMENTAL');
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${options.synchronous ?? 'FULL'}`);
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  // 64 MiB of page cache by default (SQLite's is 2 MiB): the identity base of a region (≈560k
  // patients, ≈700 MB) is searched on every identity; measured 65 s → 50 s CPU for 100k identities.
  db.pragma(`cache_size = -${(options.cacheMiB ?? 64) * 1024}`);
  return db;
}

/** Applies the migrations not yet applied, in version order, each in its own transaction. */
export function migrate(db: Db, migrations: readonly Migration[]): number[] {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`);
  const done = new Set(
    db
      .prepare('SELECT version FROM schema_migrations')
      .pluck()
      .all()
      .map((v) => Number(v)),
  );
  const seen = new Set<number>();
  for (const m of migrations) {
    if (seen.has(m.version)) throw new Error(`two migrations share version ${m.version} (${m.name})`);
    seen.add(m.version);
  }
  const applied: number[] = [];
  const record = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
  for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
    if (done.has(m.version)) continue;
    db.transaction(() => {
      db.exec(m.up);
      record.run(m.version, m.name, new Date().toISOString());
    })();
    applied.push(m.version);
  }
  return applied;
}

export interface DataDirLock {
  release(): void;
}

/** Who holds a data directory, as its engine wrote it down when it took the lock. */
export interface LockHolder {
  pid: number | null;
  since: string | null;
}

/**
 * Takes the data directory for this process, or says who holds it. The lock is SQLite's own
 * exclusive lock on a small file beside the database, held for the life of the engine: the
 * kernel drops it when the process dies (even by kill -9), so a stale lock never needs clearing,
 * and a reused pid can never be mistaken for a running engine. Other commands (`user add`,
 * `import`) open the database itself and are not stopped by it.
 */
export function lockDataDir(dataDir: string): DataDirLock | LockHolder {
  fs.mkdirSync(dataDir, { recursive: true });
  const holderFile = path.join(dataDir, 'onco-relay.pid');
  const db = new Database(path.join(dataDir, 'onco-relay.lock'), { timeout: 0 });
  try {
    // Nothing is ever written to it: no journal file beside it.
    db.pragma('journal_mode = MEMORY');
    db.pragma('locking_mode = EXCLUSIVE');
    db.exec('BEGIN EXCLUSIVE');
  } catch (error) {
    db.close();
    if ((error as { code?: string }).code !== 'SQLITE_BUSY') throw error;
    return readHolder(holderFile);
  }
  fs.writeFileSync(holderFile, `${JSON.stringify({ pid: process.pid, since: new Date().toISOString() })}\n`);
  return {
    release: () => {
      fs.rmSync(holderFile, { force: true });
      db.close();
    },
  };
}

function readHolder(file: string): LockHolder {
  try {
    const { pid, since } = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<LockHolder>;
    return { pid: typeof pid === 'number' ? pid : null, since: typeof since === 'string' ? since : null };
  } catch {
    // Taken a moment ago, holder not written yet: the lock is what counts.
    return { pid: null, since: null };
  }
}

/**
 * SQLite's "try again later" answers: another connection holds the lock (an import, a backup, a
 * checkpoint). Whatever surfaces one must retry, never record it as a permanent failure.
 */
export function isTransientDbError(error: unknown): boolean {
  for (let e = error; e instanceof Error; e = e.cause) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^SQLITE_(BUSY|LOCKED)/.test(code)) return true;
  }
  return false;
}
