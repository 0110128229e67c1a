// The one authentication service of every protocol (dashboard form, API Basic, SFTP password and
// key, HTTP listener; later SMTP AUTH and ACTX). Why it is shaped this way:
// - Throttling is by remote address first: after `freeFailures` failures from an address, every
//   attempt from it is refused unchecked for a delay that doubles with each further failure. An
//   attacker thus slows himself down without locking the account out for everyone else: the right
//   password from another address still works. The state is in the database, so that
//   `onco-relay user unlock` (another process) takes effect at once.
// - Attempts on one account are decided one after the other, the throttle read after the previous
//   attempt's failure is written: a burst of concurrent guesses cannot all pass a stale check.
// - At most `hashConcurrency` scrypt hashes run at once (128 MiB each): a distributed attack on one
//   account is bounded by that rate, and memory stays bounded.
// - Failures are audited, but aggregated: one row when an address starts failing on an account, then
//   one row per window with the count, so that an attacker cannot fill the audit trail.
import type { Db } from './db.ts';
import type { Audit, AuditEvent } from './audit.ts';
import type { Sessions } from './sessions.ts';
import type { Writes } from './writes.ts';
import type { WriterModules } from './store.ts';
import {
  AccountError,
  decoyHash,
  hashIsWeak,
  hashPasswordAsync,
  toRecord,
  verifyPasswordHash,
  type AccountRecord,
  type Accounts,
  type NewAccount,
  type Role,
} from './accounts.ts';

export type Protocol = 'dashboard' | 'api' | 'sftp' | 'http-listener' | 'smtp' | 'actx';

/** Who is trying: the remote address (no port) and the protocol. */
export interface Peer {
  address: string;
  protocol: Protocol;
  /** Only accounts of these roles may log in this way; the others are refused (not counted as guesses). */
  roles?: readonly Role[];
}

export type AuthRefusal = 'throttled' | 'unknown-login' | 'bad-password' | 'bad-key' | 'disabled' | 'role';

export type AuthResult =
  { ok: true; account: AccountRecord } | { ok: false; reason: AuthRefusal; retryAfterMs: number | null };

export interface AuthPolicy {
  /** Failures an address may make; the last of them starts the first delay. */
  freeFailures: number;
  /** Delay after the first failure beyond the free ones; doubles with each further one. */
  firstDelayMs: number;
  maxDelayMs: number;
  /** An address's failures are forgotten after this long without a new one. */
  forgetAfterMs: number;
  /** Failed attempts of one address on one account are summed into one audit row per window. */
  auditWindowMs: number;
  hashConcurrency: number;
}

export const defaultAuthPolicy: AuthPolicy = {
  freeFailures: 5,
  firstDelayMs: 30_000,
  maxDelayMs: 15 * 60_000,
  forgetAfterMs: 24 * 3600_000,
  auditWindowMs: 60_000,
  hashConcurrency: 2,
};

interface ThrottleRow {
  failures: number;
  last_at: number;
  blocked_until: number;
}

interface FailureWindow {
  address: string;
  account: AccountRecord | null;
  opened: number;
  count: number;
  reasons: Record<string, number>;
  via: Set<Protocol>;
}

/** Who changes an account: a login (dashboard) or `cli:USER`, and from where. */
export interface Actor {
  actor: string;
  role?: string | null;
  source?: string | null;
}

/** `::ffff:10.0.0.1` and `10.0.0.1` are one address. */
export const normalizeAddress = (address: string): string => address.replace(/^::ffff:(?=\d+\.)/, '');

type ThrottlePolicy = Pick<AuthPolicy, 'forgetAfterMs' | 'freeFailures' | 'firstDelayMs' | 'maxDelayMs'>;

const throttleStatements = (db: Db) => ({
  get: db.prepare<[string, string], ThrottleRow>(
    'SELECT failures, last_at, blocked_until FROM auth_throttle WHERE address = ? AND login = ?',
  ),
  put: db.prepare(`INSERT INTO auth_throttle (address, login, failures, last_at, blocked_until)
    VALUES (@address, @login, @failures, @now, @blocked)
    ON CONFLICT (address, login) DO UPDATE SET failures = @failures, last_at = @now, blocked_until = @blocked`),
  clearPair: db.prepare('DELETE FROM auth_throttle WHERE address = ? AND login = ?'),
  unlock: db.prepare(`DELETE FROM auth_throttle WHERE login = @login
    OR (login = '' AND address IN (SELECT address FROM auth_throttle WHERE login = @login))`),
  forget: db.prepare('DELETE FROM auth_throttle WHERE last_at < ? AND blocked_until < ?'),
});

/**
 * The writes of authentication, each one method so that it runs in one transaction of the store's
 * writer: a failure counted with the throttle it decides, an account change with its audit row.
 */
export class LoginLedger {
  private readonly s;

  constructor(
    db: Db,
    private readonly accounts: Accounts,
    private readonly audit: Audit,
    private readonly sessions: Sessions,
  ) {
    this.s = throttleStatements(db);
  }

  /** A login succeeded: the account's failures and the pair's throttle are cleared, the login audited. */
  succeeded(login: string, address: string, event: AuditEvent, now: number): void {
    this.accounts.recordSuccess(login, now);
    this.s.clearPair.run(address, login);
    this.audit.record(event, now);
  }

  /** One more failure of an address (and of the account when it exists); returns until when the address is blocked. */
  failed(address: string, login: string | null, now: number, policy: ThrottlePolicy): number {
    const blocked = this.count(address, '', now, policy);
    if (login !== null) {
      this.count(address, login, now, policy);
      this.accounts.recordFailure(login);
    }
    return blocked;
  }

  /** The first failure of an address on an account: audited at once; stale throttles are forgotten. */
  firstFailure(event: AuditEvent, now: number, forgetAfterMs: number): void {
    this.s.forget.run(now - forgetAfterMs, now);
    this.audit.record(event, now);
  }

  /** Creates an account (the password hashed here, off the caller's thread); audited with `detail`. */
  addAccount(a: NewAccount, by: Actor, detail: Record<string, unknown>): AccountRecord {
    const added = this.accounts.add(a);
    this.audit.record({ ...by, action: 'account-add', object: `account:${a.login}`, detail });
    return added;
  }

  /** Clears the failures of an account and of the addresses that failed on it; audited. */
  unlock(login: string, by: Actor): void {
    if (!this.accounts.get(login))
      throw new AccountError('ACCOUNT_UNKNOWN', `account "${login}" does not exist`);
    this.accounts.resetFailures(login);
    this.s.unlock.run({ login });
    this.audit.record({ ...by, action: 'account-unlock', object: `account:${login}` });
  }

  /**
   * Sets a new password (hashed by the caller) and ends every session of the account: whoever held
   * one with the old password is out. With `sessionFrom`, opens the one new session of the caller
   * (who just changed its own password) in the same transaction. Audited.
   */
  setPassword(
    login: string,
    hash: string,
    by: Actor,
    options: { mustChange?: boolean; sessionFrom?: string | null } = {},
  ): { token: string; csrf: string } | null {
    this.accounts.setPasswordHash(login, hash, options.mustChange ?? false);
    this.sessions.endAll(login);
    this.audit.record({ ...by, action: 'account-password', object: `account:${login}` });
    return options.sessionFrom === undefined ? null : this.sessions.create(login, options.sessionFrom);
  }

  /** Disables (or enables again) an account; a disabled account's sessions end at once. Audited. */
  setDisabled(login: string, disabled: boolean, by: Actor): void {
    this.accounts.setDisabled(login, disabled);
    if (disabled) this.sessions.endAll(login);
    this.audit.record({
      ...by,
      action: disabled ? 'account-disable' : 'account-enable',
      object: `account:${login}`,
    });
  }

  private count(address: string, login: string, now: number, policy: ThrottlePolicy): number {
    const r = this.s.get.get(address, login);
    const failures = r && now - r.last_at < policy.forgetAfterMs ? r.failures + 1 : 1;
    const beyond = failures - policy.freeFailures;
    const blocked =
      login === '' && beyond >= 0
        ? now + Math.min(policy.firstDelayMs * 2 ** Math.min(beyond, 30), policy.maxDelayMs)
        : 0;
    this.s.put.run({ address, login, failures, now, blocked });
    return blocked;
  }
}

export class AuthService {
  readonly policy: AuthPolicy;
  private readonly s;
  private readonly chains = new Map<string, Promise<unknown>>();
  private readonly windows = new Map<string, FailureWindow>();
  private readonly flushTimer: NodeJS.Timeout;
  private hashing = 0;
  private readonly waitingForHash: Array<() => void> = [];

  /**
   * `db` is for reads (the throttle in force); every write goes through the store's writer, to the
   * `logins` module (LoginLedger) and to `accounts` and `audit`.
   */
  constructor(
    db: Db,
    private readonly write: Writes<WriterModules>,
    private readonly accounts: Accounts,
    policy: Partial<AuthPolicy> = {},
    private readonly clock: () => number = Date.now,
  ) {
    this.policy = { ...defaultAuthPolicy, ...policy };
    this.s = throttleStatements(db);
    this.flushTimer = setInterval(() => this.flush(false), this.policy.auditWindowMs);
    this.flushTimer.unref();
  }

  /** Checks a password. Never throws for a wrong one: the refusal says why (for the audit, not the peer). */
  password(login: string, password: string, peer: Peer): Promise<AuthResult> {
    return this.serial(login, () =>
      this.withHashSlot(async () => {
        const address = normalizeAddress(peer.address);
        const throttled = this.throttled(address);
        const row = this.accounts.row(login);
        if (throttled !== null) return this.refuse(login, row, { ...peer, address }, 'throttled', throttled);
        const ok = await verifyPasswordHash(password, row?.password_hash ?? (await decoyHash()));
        if (!row) return this.refuse(login, row, { ...peer, address }, 'unknown-login', null);
        if (!ok || row.disabled === 1) {
          return this.refuse(login, row, { ...peer, address }, ok ? 'disabled' : 'bad-password', null);
        }
        if (row.password_hash && hashIsWeak(row.password_hash)) {
          const stronger = await hashPasswordAsync(password);
          await this.write.accounts.upgradeHash(login, row.password_hash!, stronger);
        }
        return this.succeed(toRecord(row), { ...peer, address });
      }),
    );
  }

  /**
   * Checks a public key. `proof` is what the protocol established: `query` (the client only asks
   * whether the key would do: neither a success nor a failure), `signed` (it proved holding the
   * private key) or `bad-signature`.
   */
  publicKey(
    login: string,
    algorithm: string,
    key: Buffer,
    peer: Peer,
    proof: 'query' | 'signed' | 'bad-signature',
  ): Promise<AuthResult> {
    return this.serial(login, async () => {
      const address = normalizeAddress(peer.address);
      const throttled = this.throttled(address);
      const row = this.accounts.row(login);
      if (throttled !== null) return this.refuse(login, row, { ...peer, address }, 'throttled', throttled);
      const known =
        row !== undefined && row.disabled === 0 && this.accounts.hasPublicKey(login, algorithm, key);
      if (proof === 'query') {
        return known
          ? { ok: true, account: toRecord(row) }
          : { ok: false, reason: 'bad-key', retryAfterMs: null };
      }
      if (known && proof === 'signed') return this.succeed(toRecord(row), { ...peer, address });
      return this.refuse(login, row, { ...peer, address }, row?.disabled ? 'disabled' : 'bad-key', null);
    });
  }

  /** Clears the failures of an account and of the addresses that failed on it; audited. */
  unlock(login: string, by: Actor): Promise<void> {
    return this.write.logins.unlock(login, by);
  }

  /**
   * Sets a new password (hashed by the caller: hashPasswordAsync or hashPassword) and ends every
   * session of the account: whoever held one with the old password is out. Audited.
   */
  async setPassword(
    login: string,
    hash: string,
    by: Actor,
    options: { mustChange?: boolean } = {},
  ): Promise<void> {
    await this.write.logins.setPassword(login, hash, by, options);
  }

  /** Disables (or enables again) an account; a disabled account's sessions end at once. Audited. */
  setDisabled(login: string, disabled: boolean, by: Actor): Promise<void> {
    return this.write.logins.setDisabled(login, disabled, by);
  }

  /** Writes the pending failure summaries now instead of when their window closes. */
  flushFailures(): Promise<void> {
    return this.flush(true);
  }

  /** Writes the pending failure summaries (at shutdown, before the writer closes). */
  close(): Promise<void> {
    clearInterval(this.flushTimer);
    return this.flush(true);
  }

  private serial<T>(login: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.chains.get(login) ?? Promise.resolve();
    const run = previous.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.chains.set(login, tail);
    void tail.then(() => {
      if (this.chains.get(login) === tail) this.chains.delete(login);
    });
    return run;
  }

  private async withHashSlot<T>(fn: () => Promise<T>): Promise<T> {
    if (this.hashing >= this.policy.hashConcurrency) {
      await new Promise<void>((resolve) => this.waitingForHash.push(resolve));
    } else this.hashing++;
    try {
      return await fn();
    } finally {
      const next = this.waitingForHash.shift();
      if (next) next();
      else this.hashing--;
    }
  }

  /** Milliseconds this address must still wait, or null. */
  private throttled(address: string): number | null {
    const now = this.clock();
    const r = this.s.get.get(address, '');
    return r && r.blocked_until > now ? r.blocked_until - now : null;
  }

  private async succeed(account: AccountRecord, peer: Peer): Promise<AuthResult> {
    if (peer.roles && !peer.roles.includes(account.role)) {
      return this.refuse(account.login, this.accounts.row(account.login), peer, 'role', null);
    }
    await this.write.logins.succeeded(
      account.login,
      peer.address,
      {
        actor: account.login,
        role: account.role,
        source: peer.address,
        establishment: account.finess,
        action: 'login',
        detail: { via: peer.protocol },
      },
      this.clock(),
    );
    return { ok: true, account };
  }

  private async refuse(
    login: string,
    row: ReturnType<Accounts['row']>,
    peer: Peer,
    reason: AuthRefusal,
    retryAfterMs: number | null,
  ): Promise<AuthResult> {
    const now = this.clock();
    const account = row ? toRecord(row) : null;
    // A throttled attempt is not checked, and a right password on the wrong protocol is no guess:
    // both only show in the audit count.
    if (reason !== 'throttled' && reason !== 'role') {
      const blocked = await this.write.logins.failed(peer.address, account ? login : null, now, this.policy);
      retryAfterMs = blocked > now ? blocked - now : null;
    }
    await this.noteFailure(peer, account, reason, now);
    return { ok: false, reason, retryAfterMs };
  }

  /** The first failure of an address on an account is written at once; the next ones are summed. */
  private async noteFailure(
    peer: Peer,
    account: AccountRecord | null,
    reason: AuthRefusal,
    now: number,
  ): Promise<void> {
    const key = `${peer.address}|${account?.login ?? ''}`;
    const open = this.windows.get(key);
    if (open && now - open.opened < this.policy.auditWindowMs) {
      open.count++;
      open.reasons[reason] = (open.reasons[reason] ?? 0) + 1;
      open.via.add(peer.protocol);
      return;
    }
    if (open) await this.writeSummaries([open]);
    this.windows.set(key, {
      address: peer.address,
      account,
      opened: now,
      count: 0,
      reasons: {},
      via: new Set(),
    });
    await this.write.logins.firstFailure(
      {
        // The typed text of an unknown login is not kept: people type passwords into the login field.
        actor: account?.login ?? 'unknown',
        role: account?.role ?? null,
        source: peer.address,
        establishment: account?.finess ?? null,
        action: 'login-failed',
        outcome: 'refused',
        detail: { via: peer.protocol, reason },
      },
      now,
      this.policy.forgetAfterMs,
    );
  }

  private async writeSummaries(windows: readonly FailureWindow[]): Promise<void> {
    await Promise.all(windows.filter((w) => w.count > 0).map((w) => this.write.audit.record(summary(w))));
  }

  private flush(all: boolean): Promise<void> {
    const now = this.clock();
    const due = [...this.windows].filter(([, w]) => all || now - w.opened >= this.policy.auditWindowMs);
    for (const [key] of due) this.windows.delete(key);
    const written = this.writeSummaries(due.map(([, w]) => w));
    // A timer's flush has no caller to tell: a summary lost to a failing store is only a count.
    if (!all) written.catch(() => undefined);
    return written;
  }
}

function summary(w: FailureWindow): AuditEvent {
  return {
    actor: w.account?.login ?? 'unknown',
    role: w.account?.role ?? null,
    source: w.address,
    establishment: w.account?.finess ?? null,
    action: 'login-failed',
    outcome: 'refused',
    detail: {
      attempts: w.count,
      reasons: w.reasons,
      via: [...w.via],
      since: new Date(w.opened).toISOString(),
    },
  };
}
