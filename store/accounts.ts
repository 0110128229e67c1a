// Accounts: one login for the dashboard, the API and (roles establishment and lab) the SFTP server.
// Passwords are scrypt hashes with a per-account salt, compared in constant time.
import crypto from 'node:crypto';
import type { Db, Migration } from './db.ts';
import { OncoError } from '../config/errors.ts';

export const accountMigrations: Migration[] = [
  {
    version: 200,
    name: 'accounts',
    up: `
      CREATE TABLE accounts (
        login TEXT PRIMARY KEY,
        role TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer', 'establishment', 'lab')),
        finess TEXT,
        password_hash TEXT,
        created_at INTEGER NOT NULL,
        failed_logins INTEGER NOT NULL DEFAULT 0,
        locked_until INTEGER NOT NULL DEFAULT 0,
        last_login_at INTEGER,
        disabled INTEGER NOT NULL DEFAULT 0
      );
      CREATE TABLE account_keys (
        login TEXT NOT NULL REFERENCES accounts (login) ON DELETE CASCADE,
        algorithm TEXT NOT NULL,
        key BLOB NOT NULL,
        comment TEXT,
        PRIMARY KEY (login, algorithm, key)
      );
    `,
  },
];

export const roles = ['admin', 'operator', 'viewer', 'establishment', 'lab'] as const;
export type Role = (typeof roles)[number];

export interface AccountRecord {
  login: string;
  role: Role;
  finess: string | null;
  createdAt: number;
  failedLogins: number;
  lockedUntil: number;
  lastLoginAt: number | null;
  disabled: boolean;
}

interface AccountRow {
  login: string;
  role: Role;
  finess: string | null;
  password_hash: string | null;
  created_at: number;
  failed_logins: number;
  locked_until: number;
  last_login_at: number | null;
  disabled: number;
}

const toRecord = (r: AccountRow): AccountRecord => ({
  login: r.login,
  role: r.role,
  finess: r.finess,
  createdAt: r.created_at,
  failedLogins: r.failed_logins,
  lockedUntil: r.locked_until,
  lastLoginAt: r.last_login_at,
  disabled: r.disabled === 1,
});

const SCRYPT = { N: 16384, r: 8, p: 1, keylen: 32 } as const;

export function hashPassword(password: string): string {
  const salt = crypto.randomBytes(16);
  const hash = crypto.scryptSync(password, salt, SCRYPT.keylen, { N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p });
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/** Asynchronous: scrypt takes tens of milliseconds and must not stall the event loop (and with it every transfer). */
export async function verifyPasswordHash(password: string, stored: string): Promise<boolean> {
  const [scheme, n, r, p, salt, hash] = stored.split('$');
  if (scheme !== 'scrypt' || !salt || !hash) return false;
  const expected = Buffer.from(hash, 'base64');
  const actual = await new Promise<Buffer>((resolve, reject) =>
    crypto.scrypt(
      password,
      Buffer.from(salt, 'base64'),
      expected.length,
      { N: Number(n), r: Number(r), p: Number(p) },
      (error, key) => (error ? reject(error) : resolve(key)),
    ),
  );
  return crypto.timingSafeEqual(actual, expected);
}

/** A hash of a random password: verifying against it costs the same as a real account, so timing does not reveal which logins exist. */
const decoyHash = hashPassword(crypto.randomBytes(16).toString('hex'));

export class AccountError extends OncoError {
  declare readonly code: 'ACCOUNT_EXISTS' | 'ACCOUNT_INVALID' | 'ACCOUNT_UNKNOWN';
  constructor(code: 'ACCOUNT_EXISTS' | 'ACCOUNT_INVALID' | 'ACCOUNT_UNKNOWN', message: string) {
    super(code, { message });
  }
}

export interface NewAccount {
  login: string;
  role: Role;
  finess?: string | null;
  password?: string | null;
  publicKeys?: Array<{ algorithm: string; key: Buffer; comment?: string }>;
}

export class Accounts {
  private readonly s;

  constructor(private readonly db: Db) {
    this.s = {
      get: db.prepare<[string], AccountRow>('SELECT * FROM accounts WHERE login = ?'),
      insert: db.prepare(`INSERT INTO accounts (login, role, finess, password_hash, created_at)
        VALUES (@login, @role, @finess, @hash, @now)`),
      insertKey: db.prepare(
        'INSERT OR IGNORE INTO account_keys (login, algorithm, key, comment) VALUES (?, ?, ?, ?)',
      ),
      keys: db.prepare<[string], { algorithm: string; key: Buffer }>(
        'SELECT algorithm, key FROM account_keys WHERE login = ?',
      ),
      countAdmins: db
        .prepare<[], number>(`SELECT count(*) FROM accounts WHERE role = 'admin' AND disabled = 0`)
        .pluck(),
      list: db.prepare<[], AccountRow>('SELECT * FROM accounts ORDER BY login'),
      setPassword: db.prepare('UPDATE accounts SET password_hash = ? WHERE login = ?'),
      failed: db.prepare(
        'UPDATE accounts SET failed_logins = failed_logins + 1, locked_until = ? WHERE login = ?',
      ),
      succeeded: db.prepare(
        'UPDATE accounts SET failed_logins = 0, locked_until = 0, last_login_at = ? WHERE login = ?',
      ),
    };
  }

  add(a: NewAccount, now = Date.now()): AccountRecord {
    if (!/^[a-z0-9][a-z0-9._-]{1,63}$/i.test(a.login)) {
      throw new AccountError(
        'ACCOUNT_INVALID',
        `login "${a.login}" is not valid: use 2 to 64 letters, digits, dots, dashes or underscores`,
      );
    }
    if ((a.role === 'establishment' || a.role === 'lab') && !a.finess) {
      throw new AccountError(
        'ACCOUNT_INVALID',
        `role ${a.role} needs --finess: the account sees only that FINESS's files`,
      );
    }
    if (a.finess && !/^\d{9}$/.test(a.finess)) {
      throw new AccountError('ACCOUNT_INVALID', `FINESS "${a.finess}" must be 9 digits`);
    }
    if (!a.password && !a.publicKeys?.length) {
      throw new AccountError(
        'ACCOUNT_INVALID',
        'an account needs a password (--password-stdin) or an SSH key (--ssh-key)',
      );
    }
    if (this.s.get.get(a.login))
      throw new AccountError('ACCOUNT_EXISTS', `account "${a.login}" already exists`);
    this.db.transaction(() => {
      this.s.insert.run({
        login: a.login,
        role: a.role,
        finess: a.finess ?? null,
        hash: a.password ? hashPassword(a.password) : null,
        now,
      });
      for (const k of a.publicKeys ?? [])
        this.s.insertKey.run(a.login, k.algorithm, k.key, k.comment ?? null);
    })();
    return this.get(a.login)!;
  }

  get(login: string): AccountRecord | undefined {
    const r = this.s.get.get(login);
    return r && toRecord(r);
  }

  list(): AccountRecord[] {
    return this.s.list.all().map(toRecord);
  }

  adminCount(): number {
    return this.s.countAdmins.get() ?? 0;
  }

  setPassword(login: string, password: string): void {
    const info = this.s.setPassword.run(hashPassword(password), login);
    if (info.changes === 0) throw new AccountError('ACCOUNT_UNKNOWN', `account "${login}" does not exist`);
  }

  /** Checks a password; unknown logins cost the same time as known ones. Disabled or locked accounts fail. */
  async checkPassword(login: string, password: string, now = Date.now()): Promise<AccountRecord | null> {
    const r = this.s.get.get(login);
    const ok = await verifyPasswordHash(password, r?.password_hash ?? decoyHash);
    if (!r || !ok || r.disabled === 1 || r.locked_until > now) return null;
    return toRecord(r);
  }

  hasPublicKey(login: string, algorithm: string, key: Buffer): boolean {
    return this.s.keys
      .all(login)
      .some(
        (k) => k.algorithm === algorithm && k.key.length === key.length && crypto.timingSafeEqual(k.key, key),
      );
  }

  recordFailure(login: string, lockUntil: number): void {
    this.s.failed.run(lockUntil, login);
  }

  recordSuccess(login: string, now = Date.now()): void {
    this.s.succeeded.run(now, login);
  }
}
