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
  {
    version: 201,
    name: 'authentication: forced password change, failures per remote address',
    up: `
      ALTER TABLE accounts ADD COLUMN must_change_password INTEGER NOT NULL DEFAULT 0;
      -- login '' is the address's own row (every login tried from it); the others count per account.
      CREATE TABLE auth_throttle (
        address TEXT NOT NULL,
        login TEXT NOT NULL,
        failures INTEGER NOT NULL,
        last_at INTEGER NOT NULL,
        blocked_until INTEGER NOT NULL,
        PRIMARY KEY (address, login)
      ) WITHOUT ROWID;
      CREATE INDEX auth_throttle_by_login ON auth_throttle (login);
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
  /** The one-time password of the first start: every page leads to the change form until changed. */
  mustChangePassword: boolean;
}

export interface AccountRow {
  login: string;
  role: Role;
  finess: string | null;
  password_hash: string | null;
  created_at: number;
  failed_logins: number;
  locked_until: number;
  last_login_at: number | null;
  disabled: number;
  must_change_password: number;
}

export const toRecord = (r: AccountRow): AccountRecord => ({
  login: r.login,
  role: r.role,
  finess: r.finess,
  createdAt: r.created_at,
  failedLogins: r.failed_logins,
  lockedUntil: r.locked_until,
  lastLoginAt: r.last_login_at,
  disabled: r.disabled === 1,
  mustChangePassword: r.must_change_password === 1,
});

/**
 * OWASP's recommendation (2025): N=2^17, r=8, p=1. That needs 128 × N × r = 128 MiB, above Node's
 * default `maxmem` (32 MiB); hashes with a lower N are upgraded at the next successful login.
 */
export const SCRYPT = { N: 2 ** 17, r: 8, p: 1, keylen: 32, maxmem: 256 * 1024 * 1024 } as const;

let costN: number = SCRYPT.N;

/**
 * Tests only (never called by the appliance): at full cost one hash takes seconds on a loaded
 * two-core CI machine, and test suites create accounts by the dozen. Returns the undo.
 */
export function lowerScryptCostForTests(n: number): () => void {
  const before = costN;
  costN = n;
  return () => {
    costN = before;
  };
}

const scryptOptions = (n: number, r: number, p: number): crypto.ScryptOptions => ({
  N: n,
  r,
  p,
  maxmem: Math.max(SCRYPT.maxmem, 256 * n * r),
});

const encode = (salt: Buffer, hash: Buffer): string =>
  `scrypt$${costN}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString('base64')}$${hash.toString('base64')}`;

/** Synchronous, for the command line; a server uses hashPasswordAsync. */
export function hashPassword(password: string): string {
  const salt = crypto.randomBytes(16);
  return encode(
    salt,
    crypto.scryptSync(password, salt, SCRYPT.keylen, scryptOptions(costN, SCRYPT.r, SCRYPT.p)),
  );
}

/** Asynchronous: scrypt takes a large part of a second and must not stall the event loop (and every transfer). */
export async function hashPasswordAsync(password: string): Promise<string> {
  const salt = crypto.randomBytes(16);
  return encode(salt, await scrypt(password, salt, SCRYPT.keylen, scryptOptions(costN, SCRYPT.r, SCRYPT.p)));
}

const scrypt = (
  password: string,
  salt: Buffer,
  length: number,
  options: crypto.ScryptOptions,
): Promise<Buffer> =>
  new Promise((resolve, reject) =>
    crypto.scrypt(password, salt, length, options, (error, key) => (error ? reject(error) : resolve(key))),
  );

export async function verifyPasswordHash(password: string, stored: string): Promise<boolean> {
  const [scheme, n, r, p, salt, hash] = stored.split('$');
  if (scheme !== 'scrypt' || !salt || !hash) return false;
  const expected = Buffer.from(hash, 'base64');
  const actual = await scrypt(
    password,
    Buffer.from(salt, 'base64'),
    expected.length,
    scryptOptions(Number(n), Number(r), Number(p)),
  );
  return crypto.timingSafeEqual(actual, expected);
}

/** True when a stored hash was made with a lower cost than today's. */
export const hashIsWeak = (stored: string): boolean => {
  const [, n, r, p] = stored.split('$');
  return Number(n) < costN || Number(r) < SCRYPT.r || Number(p) < SCRYPT.p;
};

let decoy: Promise<string> | undefined;
/** A hash of a random password: verifying against it costs the same as a real account, so timing does not reveal which logins exist. */
export const decoyHash = (): Promise<string> =>
  (decoy ??= hashPasswordAsync(crypto.randomBytes(16).toString('hex')));

export type AccountErrorCode = 'ACCOUNT_EXISTS' | 'ACCOUNT_INVALID' | 'ACCOUNT_UNKNOWN' | 'PASSWORD_REFUSED';

export class AccountError extends OncoError {
  declare readonly code: AccountErrorCode;
  constructor(code: AccountErrorCode, message: string, hint?: string) {
    super(code, { message, ...(hint ? { hint } : {}) });
  }
}

export interface NewAccount {
  login: string;
  role: Role;
  finess?: string | null;
  password?: string | null;
  /** The password already hashed (hashPassword) by the caller: the writer thread does not hash. */
  passwordHash?: string | null;
  /** The first-start admin: its password was shown once on a terminal and must be changed. */
  mustChangePassword?: boolean;
  publicKeys?: Array<{ algorithm: string; key: Buffer; comment?: string }>;
  /** Signs in only by a contextual call its establishment signs (ACTX): no password, no key. */
  contextualOnly?: boolean;
}

export class Accounts {
  private readonly s;

  constructor(private readonly db: Db) {
    this.s = {
      get: db.prepare<[string], AccountRow>('SELECT * FROM accounts WHERE login = ?'),
      insert:
        db.prepare(`INSERT INTO accounts (login, role, finess, password_hash, created_at, must_change_password)
        VALUES (@login, @role, @finess, @hash, @now, @mustChange)`),
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
      setPassword: db.prepare(
        'UPDATE accounts SET password_hash = ?, must_change_password = ? WHERE login = ?',
      ),
      rehash: db.prepare('UPDATE accounts SET password_hash = ? WHERE login = ? AND password_hash = ?'),
      failed: db.prepare('UPDATE accounts SET failed_logins = failed_logins + 1 WHERE login = ?'),
      unlock: db.prepare('UPDATE accounts SET failed_logins = 0, locked_until = 0 WHERE login = ?'),
      disable: db.prepare('UPDATE accounts SET disabled = ? WHERE login = ?'),
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
    if (!a.password && !a.passwordHash && !a.publicKeys?.length && !a.contextualOnly) {
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
        hash: a.passwordHash ?? (a.password ? hashPassword(a.password) : null),
        now,
        mustChange: a.mustChangePassword ? 1 : 0,
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

  /** The stored row, hash included: for the authentication service only. */
  row(login: string): AccountRow | undefined {
    return this.s.get.get(login);
  }

  /** Sets a new password hash (see hashPasswordAsync); `mustChange` forces another change at next login. */
  setPasswordHash(login: string, hash: string, mustChange = false): void {
    const info = this.s.setPassword.run(hash, mustChange ? 1 : 0, login);
    if (info.changes === 0) throw new AccountError('ACCOUNT_UNKNOWN', `account "${login}" does not exist`);
  }

  /** Replaces a weak hash by a stronger one of the same password, unless the password changed meanwhile. */
  upgradeHash(login: string, old: string, hash: string): void {
    this.s.rehash.run(hash, login, old);
  }

  setDisabled(login: string, disabled: boolean): void {
    const info = this.s.disable.run(disabled ? 1 : 0, login);
    if (info.changes === 0) throw new AccountError('ACCOUNT_UNKNOWN', `account "${login}" does not exist`);
  }

  hasPublicKey(login: string, algorithm: string, key: Buffer): boolean {
    return this.s.keys
      .all(login)
      .some(
        (k) => k.algorithm === algorithm && k.key.length === key.length && crypto.timingSafeEqual(k.key, key),
      );
  }

  recordFailure(login: string): void {
    this.s.failed.run(login);
  }

  resetFailures(login: string): void {
    this.s.unlock.run(login);
  }

  recordSuccess(login: string, now = Date.now()): void {
    this.s.succeeded.run(now, login);
  }
}
