// The audit trail (the seed's "traçabilité"): who read or changed what, from where. Append-only:
// triggers refuse UPDATE and DELETE, and each row stores HMAC-SHA256(key, previous hash + canonical
// row). The key lives outside the database (ONCO_AUDIT_KEY or data/audit.key), so whoever can write
// the file can neither edit a row nor recompute the chain. The head (last id and hash, signed with
// the key) is written to data/audit-head.json at intervals and at shutdown: deleting the newest rows
// then shows as a trail shorter than its head.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { OncoError } from '../config/errors.ts';
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
  {
    // The re-keying itself needs the key, which SQL does not have: Audit does it once, on open.
    version: 301,
    name: 'audit trail keyed (HMAC-SHA256)',
    up: `CREATE TABLE audit_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;`,
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
  /** Small structured context; never secrets. A patient search keeps its query (who looked for whom). */
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

/** One kind of damage `verify()` can name. */
export interface AuditBreak {
  kind: 'edited' | 'rewritten' | 'deleted' | 'unlinked' | 'deleted-newest' | 'head-forged';
  fromId: number;
  toId: number;
  message: string;
}

export type VerifyResult =
  | { ok: true; rows: number; head: string }
  | { ok: false; rows: number; firstBadId: number; reason: string; breaks: AuditBreak[] };

/** Where the chain's key and its head live; both outside the database file. */
export interface AuditKeying {
  key: Buffer;
  /** Null for an in-memory store: nothing outlives the process there. */
  headFile: string | null;
}

export class AuditKeyError extends OncoError {
  constructor(reason: string, hint?: string) {
    super('AUDIT_KEY_INVALID', { params: { reason }, ...(hint ? { hint } : {}) });
  }
}

const KEY_FILE = 'audit.key';
const HEAD_FILE = 'audit-head.json';

/**
 * The chain key: `ONCO_AUDIT_KEY` when set (keep it in a secret store, then a copy of the data
 * directory cannot recompute the chain), else `audit.key` in the data directory, created 0600.
 */
export function auditKeying(dataDir: string, env: NodeJS.ProcessEnv = process.env): AuditKeying {
  const fromEnv = env['ONCO_AUDIT_KEY'];
  const memory = dataDir === ':memory:';
  if (fromEnv !== undefined && fromEnv !== '') {
    if (fromEnv.length < 32) {
      throw new AuditKeyError(`ONCO_AUDIT_KEY has ${fromEnv.length} characters, at least 32 are needed`);
    }
    return { key: Buffer.from(fromEnv, 'utf8'), headFile: memory ? null : path.join(dataDir, HEAD_FILE) };
  }
  if (memory) return { key: crypto.randomBytes(32), headFile: null };
  const file = path.join(dataDir, KEY_FILE);
  try {
    fs.writeFileSync(file, crypto.randomBytes(32).toString('hex'), { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  const text = fs.readFileSync(file, 'utf8').trim();
  if (text.length < 32) {
    throw new AuditKeyError(
      `the key file ${file} holds ${text.length} characters`,
      'restore it from the backup: without the original key, verify reports the whole chain as rewritten',
    );
  }
  return { key: Buffer.from(text, 'utf8'), headFile: path.join(dataDir, HEAD_FILE) };
}

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

/** Before the key: plain SHA-256, which anyone holding the file could recompute. Read once, to re-key. */
export const legacyHash = (prev: string, row: Omit<AuditRow, 'hash' | 'prev_hash'>): string =>
  crypto.createHash('sha256').update(prev).update(canonical(row)).digest('hex');

const TRIGGERS = `
  CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only: rows cannot be changed'); END;
  CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only: rows cannot be deleted'); END;`;

interface HeadFile {
  id: number;
  hash: string;
  at: number;
  mac: string;
}

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
  /** The head read and the insert in one transaction, for a caller outside any. Built once. */
  private readonly appendAlone: (e: AuditEvent, now: number) => AuditRecord;
  private readonly headTimer: NodeJS.Timeout | undefined;
  private headWritten = '';

  constructor(
    private readonly db: Db,
    private readonly keying: AuditKeying,
    options: { headEveryMs?: number } = {},
  ) {
    this.s = {
      head: db.prepare<[], { id: number; hash: string }>(
        'SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1',
      ),
      insert: db.prepare(`INSERT INTO audit
        (id, at, actor, role, source, establishment, patient_id, action, object, outcome, detail, prev_hash, hash)
        VALUES (@id, @at, @actor, @role, @source, @establishment, @patient_id, @action, @object, @outcome, @detail, @prev_hash, @hash)`),
      all: db.prepare<[number, number], AuditRow>('SELECT * FROM audit WHERE id > ? ORDER BY id LIMIT ?'),
      hashOf: db.prepare<[number], string>('SELECT hash FROM audit WHERE id = ?').pluck(),
      chain: db.prepare<[], string>("SELECT value FROM audit_meta WHERE name = 'chain'").pluck(),
    };
    this.appendAlone = db.transaction((e: AuditEvent, now: number) => this.append(e, now));
    if (this.s.chain.get() !== 'hmac-sha256') this.rekey();
    if (keying.headFile) {
      this.headTimer = setInterval(() => this.writeHead(), options.headEveryMs ?? 60_000);
      this.headTimer.unref();
    }
  }

  private chainHash(prev: string, row: Omit<AuditRow, 'hash' | 'prev_hash'>): string {
    return crypto.createHmac('sha256', this.keying.key).update(prev).update(canonical(row)).digest('hex');
  }

  private headMac(id: number, hash: string): string {
    return crypto.createHmac('sha256', this.keying.key).update(`audit-head|${id}|${hash}`).digest('hex');
  }

  /**
   * Once, on the first start after the keyed chain arrived: the SHA-256 chain is checked, then every
   * row is hashed again with the key, and a row says so (with whether the old chain was intact).
   */
  private rekey(): void {
    this.db.transaction(() => {
      let prev = GENESIS;
      let newPrev = GENESIS;
      let intact = true;
      let rows = 0;
      const update = this.db.prepare('UPDATE audit SET prev_hash = ?, hash = ? WHERE id = ?');
      this.db.exec('DROP TRIGGER IF EXISTS audit_no_update');
      for (let after = 0; ;) {
        const batch = this.s.all.all(after, 5000);
        if (batch.length === 0) break;
        for (const r of batch) {
          if (r.prev_hash !== prev || legacyHash(prev, r) !== r.hash) intact = false;
          prev = r.hash;
          const hash = this.chainHash(newPrev, r);
          update.run(newPrev, hash, r.id);
          newPrev = hash;
          rows++;
        }
        after = batch.at(-1)!.id;
      }
      this.db.exec('DROP TRIGGER IF EXISTS audit_no_delete');
      this.db.exec(TRIGGERS);
      this.db.prepare("INSERT INTO audit_meta (name, value) VALUES ('chain', 'hmac-sha256')").run();
      if (rows > 0) {
        this.record({
          actor: 'system',
          action: 'audit-rekey',
          outcome: intact ? 'ok' : 'failed',
          detail: { rows, previousChainIntact: intact },
        });
      }
    })();
  }

  /**
   * Writes the newest row's id and hash, signed with the key, where a copy of the database does not
   * reach. Never over a head the trail no longer extends (rows deleted or rewritten since): that
   * file is the evidence. After restoring a backup on purpose, remove audit-head.json.
   */
  writeHead(now = Date.now()): void {
    const file = this.keying.headFile;
    const head = this.s.head.get();
    if (!file || !head || this.headWritten === head.hash) return;
    const recorded = this.readHead();
    if (recorded === 'forged') return;
    if (recorded && (recorded.id > head.id || this.s.hashOf.get(recorded.id) !== recorded.hash)) return;
    const body: HeadFile = { id: head.id, hash: head.hash, at: now, mac: this.headMac(head.id, head.hash) };
    const tmp = `${file}.tmp`;
    fs.writeFileSync(tmp, `${JSON.stringify(body)}\n`, { mode: 0o600 });
    fs.renameSync(tmp, file);
    this.headWritten = head.hash;
  }

  /** The head file, null when there is none yet, 'forged' when its signature is not ours. */
  private readHead(): HeadFile | null | 'forged' {
    const file = this.keying.headFile;
    if (!file || !fs.existsSync(file)) return null;
    let head: HeadFile;
    try {
      head = JSON.parse(fs.readFileSync(file, 'utf8')) as HeadFile;
    } catch {
      return 'forged';
    }
    const ok =
      typeof head.mac === 'string' &&
      head.mac.length === 64 &&
      crypto.timingSafeEqual(Buffer.from(head.mac), Buffer.from(this.headMac(head.id, head.hash)));
    return ok ? head : 'forged';
  }

  /** At shutdown: the head must name the very last row. */
  close(): void {
    if (this.headTimer) clearInterval(this.headTimer);
    if (this.db.open) this.writeHead();
  }

  /**
   * Appends one event. Synchronous and transactional: run it inside the caller's transaction (or
   * the group-commit writer) so the act and its trace commit together.
   */
  record(e: AuditEvent, now = Date.now()): AuditRecord {
    // Inside the caller's transaction the row needs no savepoint of its own: its one INSERT is
    // atomic, and a savepoint would copy the pages it touches to the sub-journal once more.
    return this.db.inTransaction ? this.append(e, now) : this.appendAlone(e, now);
  }

  private append(e: AuditEvent, now: number): AuditRecord {
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
    const full = { ...row, prev_hash: prev, hash: this.chainHash(prev, row) };
    this.s.insert.run(full);
    return toRecord(full);
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

  /**
   * Recomputes the keyed chain and compares its end with the head file. Names each kind of break:
   * a row edited in place (its hash alone is wrong), rows rewritten without the key (links agree,
   * keyed hashes do not), rows deleted in the middle (a gap) or at the end (the head file names a
   * later row), a row that does not follow its predecessor, and a head file not signed with the key.
   */
  verify(): VerifyResult {
    const breaks: AuditBreak[] = [];
    let prev = GENESIS;
    let expectedId = 1;
    let rows = 0;
    /** Consecutive rows whose keyed hash is wrong although each links to the one before. */
    let badRun: { from: number; to: number } | null = null;
    const closeRun = (): void => {
      if (!badRun) return;
      const { from, to } = badRun;
      breaks.push(
        from === to
          ? {
              kind: 'edited',
              fromId: from,
              toId: to,
              message: `row ${from} was changed after it was written`,
            }
          : {
              kind: 'rewritten',
              fromId: from,
              toId: to,
              message: `rows ${from} to ${to} were rewritten without the audit key: they link to each other but no keyed hash matches (or the key changed: check ONCO_AUDIT_KEY or audit.key)`,
            },
      );
      badRun = null;
    };
    for (let after = 0; ;) {
      const batch = this.s.all.all(after, 5000);
      if (batch.length === 0) break;
      for (const r of batch) {
        if (r.id !== expectedId) {
          closeRun();
          breaks.push({
            kind: 'deleted',
            fromId: expectedId,
            toId: r.id - 1,
            message:
              r.id - 1 === expectedId
                ? `row ${expectedId} is missing (deleted)`
                : `rows ${expectedId} to ${r.id - 1} are missing (deleted)`,
          });
        } else if (r.prev_hash !== prev) {
          closeRun();
          breaks.push({
            kind: 'unlinked',
            fromId: r.id,
            toId: r.id,
            message: `row ${r.id} does not follow row ${r.id - 1}`,
          });
        }
        if (this.chainHash(r.prev_hash, r) !== r.hash) {
          if (badRun) badRun.to = r.id;
          else badRun = { from: r.id, to: r.id };
        } else closeRun();
        prev = r.hash;
        expectedId = r.id + 1;
        rows++;
      }
      after = batch.at(-1)!.id;
    }
    closeRun();
    this.checkHead(expectedId - 1, breaks);
    if (breaks.length === 0) return { ok: true, rows, head: prev };
    const first = breaks[0]!;
    return { ok: false, rows, firstBadId: first.fromId, reason: first.message, breaks };
  }

  /** The end of the trail against the head file written at intervals and at shutdown. */
  private checkHead(lastId: number, breaks: AuditBreak[]): void {
    const head = this.readHead();
    if (head === null) return;
    if (head === 'forged') {
      breaks.push({
        kind: 'head-forged',
        fromId: lastId,
        toId: lastId,
        message: `the head file ${this.keying.headFile} is not signed with the audit key: it was written by someone else`,
      });
      return;
    }
    const when = new Date(head.at).toISOString();
    if (head.id > lastId) {
      breaks.push({
        kind: 'deleted-newest',
        fromId: lastId + 1,
        toId: head.id,
        message: `rows ${lastId + 1} to ${head.id} were deleted: the head file (${when}) names row ${head.id}, the trail ends at row ${lastId}`,
      });
    } else if (this.s.hashOf.get(head.id) !== head.hash) {
      breaks.push({
        kind: 'rewritten',
        fromId: head.id,
        toId: lastId,
        message: `row ${head.id} differs from the head file (${when}): the trail was rewritten from there`,
      });
    }
  }
}
