// The audit trail (the seed's "traçabilité"): who read or changed what, from where. Append-only:
// triggers refuse UPDATE and DELETE, and each row stores sha256(previous hash + canonical row), so
// an edit made behind SQLite's back (another tool, a copied file) breaks the chain at that row.
// Limit worth knowing: removing the newest rows leaves a valid shorter chain; `verify()` returns the
// head hash so that an operator can anchor it elsewhere (a daily log line, a ticket) and compare.
import crypto from 'node:crypto';
import type { Db, Migration } from './db.ts';

export const auditMigrations: Migration[] = [
  {
    version: 300,
    name: 'audit trail, hash-chained and append-only',
    up: `
      CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        actor TEXT NOT NULL,
        role TEXT,
        source TEXT,
        establishment TEXT,
        patient_id INTEGER,
        action TEXT NOT NULL,
        object TEXT,
        outcome TEXT NOT NULL DEFAULT 'ok',
        detail TEXT,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
      );
      CREATE INDEX audit_by_actor ON audit (actor, id);
      CREATE INDEX audit_by_patient ON audit (patient_id, id) WHERE patient_id IS NOT NULL;
      CREATE INDEX audit_by_action ON audit (action, id);
      CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only: rows cannot be changed'); END;
      CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only: rows cannot be deleted'); END;
    `,
  },
];

/** What happened; one of these per audited act. */
export interface AuditEvent {
  /** Login of the person, or `system` / a channel id for the engine's own acts. */
  actor: string;
  role?: string | null;
  /** Remote address of the request. */
  source?: string | null;
  /** FINESS the actor acts for (establishment and lab accounts), or the establishment concerned. */
  establishment?: string | null;
  patientId?: number | null;
  /** Verb, e.g. `login`, `login-failed`, `patient-read`, `message-replay`, `channel-deploy`. */
  action: string;
  /** What it was done to: `channel:file-drop`, `message:42`, `delivery:7`, `review:3`. */
  object?: string | null;
  outcome?: 'ok' | 'refused' | 'failed';
  /** Small structured context; never patient names or secrets. */
  detail?: Record<string, unknown> | null;
}

export interface AuditRecord extends Required<Omit<AuditEvent, 'detail'>> {
  id: number;
  at: number;
  detail: Record<string, unknown> | null;
  hash: string;
}

interface AuditRow {
  id: number;
  at: number;
  actor: string;
  role: string | null;
  source: string | null;
  establishment: string | null;
  patient_id: number | null;
  action: string;
  object: string | null;
  outcome: 'ok' | 'refused' | 'failed';
  detail: string | null;
  prev_hash: string;
  hash: string;
}

export interface AuditFilter {
  actor?: string;
  patientId?: number;
  action?: string;
  from?: number;
  to?: number;
}

export type VerifyResult =
  { ok: true; rows: number; head: string } | { ok: false; rows: number; firstBadId: number; reason: string };

const GENESIS = '0'.repeat(64);

/** The hashed form of a row: fixed field order, so the same row always hashes the same. */
function canonical(r: Omit<AuditRow, 'hash' | 'prev_hash'>): string {
  return JSON.stringify([
    r.id,
    r.at,
    r.actor,
    r.role,
    r.source,
    r.establishment,
    r.patient_id,
    r.action,
    r.object,
    r.outcome,
    r.detail,
  ]);
}

const chainHash = (prev: string, row: Omit<AuditRow, 'hash' | 'prev_hash'>): string =>
  crypto.createHash('sha256').update(prev).update(canonical(row)).digest('hex');

const toRecord = (r: AuditRow): AuditRecord => ({
  id: r.id,
  at: r.at,
  actor: r.actor,
  role: r.role,
  source: r.source,
  establishment: r.establishment,
  patientId: r.patient_id,
  action: r.action,
  object: r.object,
  outcome: r.outcome,
  detail: r.detail === null ? null : (JSON.parse(r.detail) as Record<string, unknown>),
  hash: r.hash,
});

export class Audit {
  private readonly s;

  constructor(private readonly db: Db) {
    this.s = {
      head: db.prepare<[], { id: number; hash: string }>(
        'SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1',
      ),
      insert: db.prepare(`INSERT INTO audit
        (id, at, actor, role, source, establishment, patient_id, action, object, outcome, detail, prev_hash, hash)
        VALUES (@id, @at, @actor, @role, @source, @establishment, @patient_id, @action, @object, @outcome, @detail, @prev_hash, @hash)`),
      all: db.prepare<[number, number], AuditRow>('SELECT * FROM audit WHERE id > ? ORDER BY id LIMIT ?'),
    };
  }

  /**
   * Appends one event. Synchronous and transactional: run it inside the caller's transaction (or
   * the group-commit writer) so the act and its trace commit together.
   */
  record(e: AuditEvent, now = Date.now()): AuditRecord {
    return this.db.transaction(() => {
      const head = this.s.head.get();
      const row = {
        id: (head?.id ?? 0) + 1,
        at: now,
        actor: e.actor,
        role: e.role ?? null,
        source: e.source ?? null,
        establishment: e.establishment ?? null,
        patient_id: e.patientId ?? null,
        action: e.action,
        object: e.object ?? null,
        outcome: e.outcome ?? 'ok',
        detail: e.detail ? JSON.stringify(e.detail) : null,
      };
      const prev = head?.hash ?? GENESIS;
      const full = { ...row, prev_hash: prev, hash: chainHash(prev, row) };
      this.s.insert.run(full);
      return toRecord(full);
    })();
  }

  /** Newest first, in keyset pages (`after` is the last id of the previous page). */
  search(
    filter: AuditFilter,
    page: { limit?: number; after?: number | null } = {},
  ): { items: AuditRecord[]; next: number | null } {
    const limit = Math.min(Math.max(page.limit ?? 50, 1), 500);
    const where: string[] = ['id < @after'];
    if (filter.actor) where.push('actor = @actor');
    if (filter.patientId !== undefined) where.push('patient_id = @patientId');
    if (filter.action) where.push('action = @action');
    // The unary + keeps SQLite on the id-ordered indexes instead of sorting a time range.
    if (filter.from !== undefined) where.push('+at >= @from');
    if (filter.to !== undefined) where.push('+at < @to');
    const rows = this.db
      .prepare<Record<string, unknown>, AuditRow>(
        `SELECT * FROM audit WHERE ${where.join(' AND ')} ORDER BY id DESC LIMIT @limit`,
      )
      .all({
        ...filter,
        after: page.after ?? Number.MAX_SAFE_INTEGER,
        limit: limit + 1,
      });
    const items = rows.slice(0, limit).map(toRecord);
    return { items, next: rows.length > limit ? items.at(-1)!.id : null };
  }

  /** Recomputes the chain from the first row; reports the first row whose content, order or predecessor changed. */
  verify(): VerifyResult {
    let prev = GENESIS;
    let expectedId = 1;
    let rows = 0;
    for (let after = 0; ;) {
      const batch = this.s.all.all(after, 5000);
      if (batch.length === 0) break;
      for (const r of batch) {
        if (r.id !== expectedId) {
          return {
            ok: false,
            rows,
            firstBadId: expectedId,
            reason: `row ${expectedId} is missing (deleted)`,
          };
        }
        if (r.prev_hash !== prev) {
          return { ok: false, rows, firstBadId: r.id, reason: `row ${r.id} does not follow row ${r.id - 1}` };
        }
        if (chainHash(prev, r) !== r.hash) {
          return {
            ok: false,
            rows,
            firstBadId: r.id,
            reason: `row ${r.id} was changed after it was written`,
          };
        }
        prev = r.hash;
        expectedId++;
        rows++;
      }
      after = batch.at(-1)!.id;
    }
    return { ok: true, rows, head: prev };
  }
}
