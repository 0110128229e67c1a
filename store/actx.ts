// Contextual calls (ACTX): a hospital's record system opens the DCC for one of its professionals,
// in a patient's context or not. Once the caller has checked the signature, everything the call
// decides is one method here, run by the writer in one transaction: the nonce is spent, the
// account found or created, the patient found or created through the identity rules, the session
// opened and the access audited — or the call is refused and the refusal audited (or counted, see
// below). A crash can thus never leave a spent nonce without its audit row or count, nor an account
// without the call that made it.
// Nonces live as long as a call with their `ts` could be accepted, then are pruned.
//
// Refusals are audited but summed, as failed logins are (store/auth.ts): anyone can send unsigned
// calls, and one audit row each would let them fill the trail. The first refusal of an
// establishment (of an address, when the call names no known establishment) for one reason is
// audited at once with its RPPS; the next ones within the minute only count, in a row of their own
// table written in the same transaction, and one audit row carries the count once the minute is
// over. The counts are in the database, so a crash loses none of them.
import type { Db, Migration } from './db.ts';
import type { Accounts, Role } from './accounts.ts';
import type { Audit } from './audit.ts';
import type { Sessions } from './sessions.ts';
import type { IdentityInput } from './patients.ts';
import type { Vigilance } from './vigilance.ts';

/** Migrations 710-719 are this module's. */
export const actxMigrations: Migration[] = [
  {
    version: 710,
    name: 'contextual calls: spent nonces',
    up: `
      CREATE TABLE actx_nonces (
        finess TEXT NOT NULL,
        nonce TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (finess, nonce)
      ) WITHOUT ROWID;
      CREATE INDEX actx_nonces_by_expiry ON actx_nonces (expires_at);
    `,
  },
  {
    version: 711,
    name: 'contextual calls: refusals counted per minute',
    up: `
      CREATE TABLE actx_refusals (
        scope TEXT NOT NULL,
        kind TEXT NOT NULL,
        reason TEXT NOT NULL,
        opened_at INTEGER NOT NULL,
        count INTEGER NOT NULL,
        establishment TEXT,
        source TEXT NOT NULL,
        PRIMARY KEY (scope, kind, reason)
      ) WITHOUT ROWID;
    `,
  },
];

/** Refusals after the first of a minute are counted, and audited as one row once the minute is over. */
export const REFUSAL_WINDOW_S = 60;

/** A refused call, as the audit and the count need it. */
export interface ActxRefusalEvent {
  kind: ActxEntry['kind'];
  /** The FINESS the call claims (well formed), known or not: the audit row names it. */
  finess: string | null;
  rpps: string | null;
  source: string;
  code: string;
  /** Unix seconds. */
  now: number;
  /**
   * What the refusals are summed by: a known establishment's FINESS, else the remote address (an
   * invented FINESS per call must not open a new count each time).
   */
  scope: string;
}

interface RefusalWindow {
  scope: string;
  kind: string;
  reason: string;
  opened_at: number;
  count: number;
  establishment: string | null;
  source: string;
}

/** A verified call, as plain data (it crosses to the writer's thread). */
export interface ActxEntry {
  kind: 'patient' | 'global';
  finess: string;
  nonce: string;
  /** The call's `ts` and the server's clock, Unix seconds; the nonce is kept until `ts + windowS`. */
  ts: number;
  now: number;
  windowS: number;
  professional: { rpps: string; family: string; given: string };
  /** The patient of a patient call, as the identity rules take it (the IPP under `finess`). */
  identity: IdentityInput | null;
  insOids: readonly string[];
  createAccounts: boolean;
  accountRole: Extract<Role, 'establishment' | 'viewer'>;
  /** Remote address, for the session and the audit trail. */
  source: string;
}

export type ActxRefusal =
  | { code: 'ACTX_NONCE_REPLAYED'; params: { nonce: string; finess: string } }
  | { code: 'ACTX_ACCOUNT_UNKNOWN' | 'ACTX_ACCOUNT_DISABLED'; params: { rpps: string; finess: string } }
  | { code: 'ACTX_ACCOUNT_MISMATCH'; params: { rpps: string; finess: string; reason: string } };

export type ActxOutcome =
  | {
      ok: true;
      login: string;
      patientId: number | null;
      patientCreated: boolean;
      userCreated: boolean;
      /** Review items the identity rules opened (a near match is never guessed). */
      reviewItemIds: number[];
      session: { token: string; csrf: string };
    }
  | ({ ok: false } & ActxRefusal);

/** Accounts an establishment may open by its signature: its own, of the roles ACTX creates. */
const OPENABLE: readonly Role[] = ['establishment', 'viewer'];

export class ContextualCalls {
  private readonly s;
  private readonly transaction: (e: ActxEntry) => ActxOutcome;

  constructor(
    db: Db,
    private readonly modules: { accounts: Accounts; audit: Audit; sessions: Sessions; vigilance: Vigilance },
  ) {
    this.s = {
      prune: db.prepare('DELETE FROM actx_nonces WHERE expires_at < ?'),
      spend: db.prepare('INSERT OR IGNORE INTO actx_nonces (finess, nonce, expires_at) VALUES (?, ?, ?)'),
      window: db.prepare<[string, string, string], RefusalWindow>(
        'SELECT * FROM actx_refusals WHERE scope = ? AND kind = ? AND reason = ?',
      ),
      count: db.prepare(
        'UPDATE actx_refusals SET count = count + 1 WHERE scope = ? AND kind = ? AND reason = ?',
      ),
      open: db.prepare(`INSERT OR REPLACE INTO actx_refusals
        (scope, kind, reason, opened_at, count, establishment, source)
        VALUES (@scope, @kind, @code, @now, 0, @finess, @source)`),
      due: db.prepare<[number], RefusalWindow>('SELECT * FROM actx_refusals WHERE opened_at <= ?'),
      close: db.prepare('DELETE FROM actx_refusals WHERE scope = ? AND kind = ? AND reason = ?'),
    };
    this.transaction = db.transaction((e: ActxEntry) => this.decide(e));
  }

  /** Spends the nonce and opens the DCC for the professional, or says why not; audited either way. */
  enter(e: ActxEntry): ActxOutcome {
    return this.transaction(e);
  }

  /**
   * A call refused before it reached the store (parameters, signature, clock): audited at once if it
   * is the first of its minute for its scope and reason, else counted.
   */
  refused(e: ActxRefusalEvent): void {
    const open = this.s.window.get(e.scope, e.kind, e.code);
    if (open && e.now - open.opened_at < REFUSAL_WINDOW_S) {
      this.s.count.run(e.scope, e.kind, e.code);
      return;
    }
    if (open) this.summarise(open, e.now);
    this.s.open.run({
      scope: e.scope,
      kind: e.kind,
      code: e.code,
      now: e.now,
      finess: e.finess,
      source: e.source,
    });
    this.modules.audit.record(
      {
        actor: e.rpps ?? 'anonymous',
        source: e.source,
        establishment: e.finess,
        action: `actx-${e.kind}`,
        outcome: 'refused',
        detail: { rpps: e.rpps, reason: e.code },
      },
      e.now * 1000,
    );
  }

  /** Audits the count of every minute of refusals that is over by `now` (Unix seconds). */
  closeRefusalWindows(now: number): void {
    for (const w of this.s.due.all(now - REFUSAL_WINDOW_S)) this.summarise(w, now);
  }

  private summarise(w: RefusalWindow, now: number): void {
    this.s.close.run(w.scope, w.kind, w.reason);
    if (w.count === 0) return;
    this.modules.audit.record(
      {
        actor: 'anonymous',
        source: w.scope.startsWith('address:') ? w.source : null,
        establishment: w.scope.startsWith('finess:') ? w.establishment : null,
        action: `actx-${w.kind}`,
        outcome: 'refused',
        detail: {
          reason: w.reason,
          attempts: w.count,
          since: new Date(w.opened_at * 1000).toISOString(),
        },
      },
      now * 1000,
    );
  }

  private decide(e: ActxEntry): ActxOutcome {
    const { accounts, audit, sessions, vigilance } = this.modules;
    const { rpps } = e.professional;
    const refuse = (r: ActxRefusal): ActxOutcome => {
      this.refused({ ...e, rpps, code: r.code, scope: `finess:${e.finess}` });
      return { ok: false, ...r };
    };
    this.s.prune.run(e.now);
    if (this.s.spend.run(e.finess, e.nonce, e.ts + e.windowS).changes === 0)
      return refuse({ code: 'ACTX_NONCE_REPLAYED', params: { nonce: e.nonce, finess: e.finess } });

    let account = accounts.get(rpps);
    const userCreated = account === undefined;
    if (account === undefined) {
      if (!e.createAccounts)
        return refuse({ code: 'ACTX_ACCOUNT_UNKNOWN', params: { rpps, finess: e.finess } });
      account = accounts.add(
        { login: rpps, role: e.accountRole, finess: e.finess, contextualOnly: true },
        e.now * 1000,
      );
      audit.record(
        {
          actor: rpps,
          role: account.role,
          source: e.source,
          establishment: e.finess,
          action: 'account-add',
          object: `account:${rpps}`,
          detail: {
            role: account.role,
            by: 'actx',
            family: e.professional.family,
            given: e.professional.given,
          },
        },
        e.now * 1000,
      );
    } else if (account.disabled) {
      return refuse({ code: 'ACTX_ACCOUNT_DISABLED', params: { rpps, finess: e.finess } });
    } else if (!OPENABLE.includes(account.role) || account.finess !== e.finess) {
      const reason = OPENABLE.includes(account.role)
        ? `it belongs to FINESS ${account.finess ?? 'none'}`
        : `its role ${account.role} is opened by password only`;
      return refuse({ code: 'ACTX_ACCOUNT_MISMATCH', params: { rpps, finess: e.finess, reason } });
    }

    const decision =
      e.identity === null ? null : vigilance.applyIdentity(e.identity, { author: rpps, insOids: e.insOids });
    const session = sessions.create(rpps, e.source, e.now * 1000);
    audit.record(
      {
        actor: rpps,
        role: account.role,
        source: e.source,
        establishment: e.finess,
        patientId: decision?.patientId ?? null,
        action: `actx-${e.kind}`,
        object: decision ? `patient:${decision.patientId}` : null,
        detail: {
          rpps,
          userCreated,
          ...(decision
            ? { decision: decision.action, rule: decision.rule, reviewItemIds: decision.reviewItemIds }
            : {}),
        },
      },
      e.now * 1000,
    );
    return {
      ok: true,
      login: rpps,
      patientId: decision?.patientId ?? null,
      patientCreated: decision !== null && decision.action.startsWith('created'),
      userCreated,
      reviewItemIds: decision?.reviewItemIds ?? [],
      session,
    };
  }
}
