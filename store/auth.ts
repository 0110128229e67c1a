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
import type { GroupCommit } from './group-commit.ts';
import type { Audit } from './audit.ts';
import type { Sessions } from './sessions.ts';
import {
  AccountError,
  decoyHash,
  hashIsWeak,
  hashPasswordAsync,
  toRecord,
  verifyPasswordHash,
  type AccountRecord,
  type Accounts,
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

export class AuthService {
  readonly policy: AuthPolicy;
  private readonly s;
  private readonly chains = new Map<string, Promise<unknown>>();
  private readonly windows = new Map<string, FailureWindow>();
  private readonly flushTimer: NodeJS.Timeout;
  private hashing = 0;
  private readonly waitingForHash: Array<() => void> = [];

  constructor(
    private readonly db: Db,
    private readonly writer: GroupCommit,
    private readonly accounts: Accounts,
    private readonly audit: Audit,
    private readonly sessions: Sessions,
    policy: Partial<AuthPolicy> = {},
    private readonly clock: () => number = Date.now,
  ) {
    this.policy = { ...defaultAuthPolicy, ...policy };
    this.s = {
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
    };
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
          await this.writer.write(() => this.accounts.upgradeHash(login, row.password_hash!, stronger));
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
  unlock(login: string, by: Actor): void {
    this.db.transaction(() => {
      if (!this.accounts.get(login))
        throw new AccountError('ACCOUNT_UNKNOWN', `account "${login}" does not exist`);
      this.accounts.resetFailures(login);
      this.s.unlock.run({ login });
      this.audit.record({ ...by, action: 'account-unlock', object: `account:${login}` });
    })();
  }

  /**
   * Sets a new password (hashed by the caller: hashPasswordAsync or hashPassword) and ends every
   * session of the account: whoever held one with the old password is out. Audited.
   */
  setPassword(login: string, hash: string, by: Actor, options: { mustChange?: boolean } = {}): void {
    this.db.transaction(() => {
      this.accounts.setPasswordHash(login, hash, options.mustChange ?? false);
      this.sessions.endAll(login);
      this.audit.record({ ...by, action: 'account-password', object: `account:${login}` });
    })();
  }

  /** Disables (or enables again) an account; a disabled account's sessions end at once. Audited. */
  setDisabled(login: string, disabled: boolean, by: Actor): void {
    this.db.transaction(() => {
      this.accounts.setDisabled(login, disabled);
      if (disabled) this.sessions.endAll(login);
      this.audit.record({
        ...by,
        action: disabled ? 'account-disable' : 'account-enable',
        object: `account:${login}`,
      });
    })();
  }

  /** Writes the pending failure summaries now instead of when their window closes. */
  flushFailures(): void {
    this.flush(true);
  }

  /** Writes the pending failure summaries (at shutdown). */
  close(): void {
    clearInterval(this.flushTimer);
    this.flush(true);
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
    await this.writer.write(() => {
      this.accounts.recordSuccess(account.login, this.clock());
      this.s.clearPair.run(peer.address, account.login);
      this.audit.record({
        actor: account.login,
        role: account.role,
        source: peer.address,
        establishment: account.finess,
        action: 'login',
        detail: { via: peer.protocol },
      });
    });
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
      await this.writer.write(() => {
        const blocked = this.count(peer.address, '', now);
        if (account) {
          this.count(peer.address, login, now);
          this.accounts.recordFailure(login);
        }
        retryAfterMs = blocked > now ? blocked - now : null;
      });
    }
    await this.noteFailure(peer, account, reason, now);
    return { ok: false, reason, retryAfterMs };
  }

  /** One more failure for (address, login); returns until when the address is blocked. */
  private count(address: string, login: string, now: number): number {
    const r = this.s.get.get(address, login);
    const failures = r && now - r.last_at < this.policy.forgetAfterMs ? r.failures + 1 : 1;
    const beyond = failures - this.policy.freeFailures;
    const blocked =
      login === '' && beyond >= 0
        ? now + Math.min(this.policy.firstDelayMs * 2 ** Math.min(beyond, 30), this.policy.maxDelayMs)
        : 0;
    this.s.put.run({ address, login, failures, now, blocked });
    return blocked;
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
    if (open) await this.writer.write(() => this.writeSummary(open));
    this.windows.set(key, {
      address: peer.address,
      account,
      opened: now,
      count: 0,
      reasons: {},
      via: new Set(),
    });
    await this.writer.write(() => {
      this.s.forget.run(now - this.policy.forgetAfterMs, now);
      this.audit.record(
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
      );
    });
  }

  private writeSummary(w: FailureWindow): void {
    if (w.count === 0) return;
    this.audit.record({
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
    });
  }

  private flush(all: boolean): void {
    const now = this.clock();
    const due = [...this.windows].filter(([, w]) => all || now - w.opened >= this.policy.auditWindowMs);
    for (const [key] of due) this.windows.delete(key);
    if (due.length === 0) return;
    const write = (): void => {
      for (const [, w] of due) this.writeSummary(w);
    };
    // At shutdown the writer may already refuse: the summary is written directly, in its own transaction.
    if (all) this.db.transaction(write)();
    else void this.writer.write(write).catch(() => undefined);
  }
}
