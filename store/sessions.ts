// Dashboard sessions. The table keeps only a digest of each token: a copy of the database does not
// hand out live sessions. Expiry is idle-based (last activity) with an absolute cap.
import crypto from 'node:crypto';
import type { Db, Migration } from './db.ts';

export const sessionMigrations: Migration[] = [
  {
    version: 250,
    name: 'dashboard sessions',
    up: `
      CREATE TABLE sessions (
        token_hash TEXT PRIMARY KEY,
        login TEXT NOT NULL REFERENCES accounts (login) ON DELETE CASCADE,
        csrf TEXT NOT NULL,
        source TEXT,
        created_at INTEGER NOT NULL,
        last_seen_at INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE INDEX sessions_by_last_seen ON sessions (last_seen_at);
    `,
  },
];

export interface SessionRecord {
  login: string;
  csrf: string;
  source: string | null;
  createdAt: number;
  lastSeenAt: number;
}

export interface SessionPolicy {
  idleMs: number;
  maxAgeMs: number;
}

interface SessionRow {
  login: string;
  csrf: string;
  source: string | null;
  created_at: number;
  last_seen_at: number;
}

const digest = (token: string): string => crypto.createHash('sha256').update(token).digest('hex');

/** Activity is written at most this often: a page view must not cost an fsync. */
const TOUCH_EVERY_MS = 60_000;

export class Sessions {
  private readonly s;

  constructor(db: Db) {
    this.s = {
      insert: db.prepare(`INSERT INTO sessions (token_hash, login, csrf, source, created_at, last_seen_at)
        VALUES (?, ?, ?, ?, ?, ?)`),
      get: db.prepare<[string], SessionRow>('SELECT * FROM sessions WHERE token_hash = ?'),
      touch: db.prepare('UPDATE sessions SET last_seen_at = ? WHERE token_hash = ?'),
      remove: db.prepare('DELETE FROM sessions WHERE token_hash = ?'),
      removeLogin: db.prepare('DELETE FROM sessions WHERE login = ?'),
      purge: db.prepare('DELETE FROM sessions WHERE last_seen_at < ? OR created_at < ?'),
    };
  }

  /** Opens a session; the token goes to the cookie and is never stored in clear. */
  create(login: string, source: string | null, now = Date.now()): { token: string; csrf: string } {
    const token = crypto.randomBytes(32).toString('base64url');
    const csrf = crypto.randomBytes(24).toString('base64url');
    this.s.insert.run(digest(token), login, csrf, source, now, now);
    return { token, csrf };
  }

  /**
   * The live session of a token, or null (unknown, idle too long or too old). A read: every request
   * makes one, and it must not wait for a commit; `seen` writes what it found out.
   */
  find(token: string, policy: SessionPolicy, now = Date.now()): SessionRecord | null {
    const r = this.s.get.get(digest(token));
    if (!r || now - r.last_seen_at > policy.idleMs || now - r.created_at > policy.maxAgeMs) return null;
    return {
      login: r.login,
      csrf: r.csrf,
      source: r.source,
      createdAt: r.created_at,
      lastSeenAt: r.last_seen_at,
    };
  }

  /**
   * After `find`: ends a session found expired, or records that a live one was used (at most every
   * TOUCH_EVERY_MS, so that most requests write nothing). Returns whether it wrote.
   */
  seen(token: string, policy: SessionPolicy, now = Date.now()): boolean {
    const key = digest(token);
    const r = this.s.get.get(key);
    if (!r) return false;
    if (now - r.last_seen_at > policy.idleMs || now - r.created_at > policy.maxAgeMs) {
      this.s.remove.run(key);
      return true;
    }
    if (now - r.last_seen_at <= TOUCH_EVERY_MS) return false;
    this.s.touch.run(now, key);
    return true;
  }

  /** Whether `seen` has something to write for this session, found by `find` (null: expired or unknown). */
  stale(token: string, found: SessionRecord | null, now = Date.now()): boolean {
    return found === null
      ? this.s.get.get(digest(token)) !== undefined
      : now - found.lastSeenAt > TOUCH_EVERY_MS;
  }

  end(token: string): void {
    this.s.remove.run(digest(token));
  }

  /** Ends every session of an account (password change, account disabled). */
  endAll(login: string): void {
    this.s.removeLogin.run(login);
  }

  purge(policy: SessionPolicy, now = Date.now()): number {
    return this.s.purge.run(now - policy.idleMs, now - policy.maxAgeMs).changes;
  }
}
