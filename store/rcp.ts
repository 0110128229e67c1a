// RCP and PPS in the core store: multidisciplinary meetings (RCP sessions), the forms of the patients
// they discussed (FRCP) and personalised care programmes (PPS), with their versions. A form or a
// programme is a draft until validated; validating it writes, in the same transaction, the message
// that sends it (the outbox row of `documents-out`), so a validated document is never lost nor sent
// twice across a crash (DESIGN.md, rule 10). A correction after validation is a new version of the
// same set (written as CDA with relatedDocument RPLC). Every change is audited in its transaction.
//
// The clinical content is kept as the JSON the API was given (the CDA model's shapes: professionals,
// coded values, diagnosis, treatments), with the fields the store searches or checks in columns.
import { OncoError } from '../config/errors.ts';
import type { PatientSnapshot } from '../contracts/patient-snapshot.ts';
import type { Audit } from './audit.ts';
import type { Db, Migration } from './db.ts';
import type { Outbox } from './outbox.ts';
import type { PatientStore } from './patients.ts';

// A form and a programme are versioned the same way (draft, validated, sent; a correction is a new
// version of the set): one table shape, but a form always belongs to a meeting and a programme may not.
const documentTable = (table: string, session: string): string => `
      CREATE TABLE ${table} (
        id INTEGER PRIMARY KEY,
        set_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        replaces INTEGER REFERENCES ${table} (id),
        session_id ${session} REFERENCES rcp_sessions (id),
        patient_id INTEGER NOT NULL,
        status TEXT NOT NULL,
        data TEXT NOT NULL,
        external_id TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        validated_at TEXT,
        validated_by TEXT,
        outbox_id INTEGER,
        UNIQUE (set_id, version)
      );`;

export const rcpMigrations: Migration[] = [
  {
    version: 600,
    name: 'rcp: meetings, forms, care programmes, oppositions',
    // Dates are ISO text (`YYYY-MM-DD…`), as the patients table keeps them: the yearly report counts
    // sessions by their date, forms by their meeting's date, programmes by their validation.
    up: `
      CREATE TABLE rcp_sessions (
        id INTEGER PRIMARY KEY,
        date TEXT NOT NULL,
        committee TEXT NOT NULL,
        organ TEXT,
        site_finess TEXT,
        organiser_rpps TEXT,
        data TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      );
      CREATE INDEX rcp_sessions_by_date ON rcp_sessions (date, committee);

${documentTable('rcp_forms', 'INTEGER NOT NULL')}
      CREATE INDEX rcp_forms_of_session ON rcp_forms (session_id);
      CREATE INDEX rcp_forms_of_patient ON rcp_forms (patient_id);
      CREATE UNIQUE INDEX rcp_forms_imported ON rcp_forms (external_id) WHERE external_id IS NOT NULL;

${documentTable('pps', 'INTEGER')}
      CREATE INDEX pps_of_patient ON pps (patient_id);

      CREATE TABLE patient_oppositions (
        patient_id INTEGER NOT NULL,
        kind TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        recorded_by TEXT NOT NULL,
        PRIMARY KEY (patient_id, kind)
      ) WITHOUT ROWID;
    `,
  },
];

/** The outbox channel validated documents go to. */
export const DOCUMENTS_OUT = 'documents-out';
export const RCP_DOCUMENT_TYPE = 'application/vnd.onco-relay.rcp-document+json';

export type DocumentKind = 'frcp' | 'pps';
export type DocumentStatus = 'draft' | 'validated' | 'sent';
/** Oppositions a patient may record; `mes`: no document to Mon espace santé. */
export type OppositionKind = 'mes';

/** Who acts, for the audit trail. */
export interface Actor {
  login: string;
  role?: string | null;
  source?: string | null;
}

type Json = Record<string, unknown>;

/** A professional as the documents carry them (the CDA model's `Professional`). */
export interface PersonData {
  rpps?: string;
  family: string;
  given?: string;
  [more: string]: unknown;
}

/** An RCP session as the API gives it (the CDA model's `RcpMeeting`); the store reads these fields. */
export interface MeetingData {
  date: string;
  committee: { id: string; name: string; sessionId?: string };
  organ?: { text: string } | { code: string; displayName: string; codeSystem: string };
  site: { finess?: string; name: string; [more: string]: unknown };
  organiser: PersonData;
  participants: Array<PersonData & { quorum: boolean }>;
  [more: string]: unknown;
}

export interface DocumentInput {
  patientId: number;
  /** The RCP session (required for a form; a programme may name the RCP it carries out). */
  meetingId?: number | null;
  /** The clinical content (the CDA model's RcpForm or PpsDocument without header and patient). */
  content: Json;
  /** Id of the form in the software that produced it (import): a second import of it is refused. */
  externalId?: string | null;
}

export interface MeetingRecord {
  id: number;
  date: string;
  committee: string;
  organ: string | null;
  siteFiness: string | null;
  data: MeetingData;
  createdAt: string;
  updatedAt: string;
}

export interface DocumentRecord {
  id: number;
  kind: DocumentKind;
  setId: string;
  version: number;
  /** The version this one corrects. */
  replaces: number | null;
  meetingId: number | null;
  patientId: number;
  status: DocumentStatus;
  content: Json;
  externalId: string | null;
  createdAt: string;
  updatedAt: string;
  validatedAt: string | null;
  validatedBy: string | null;
  /** The outbox row written at validation: the way to the messages that sent it. */
  outboxId: number | null;
}

/** The content of the outbox row of a validated document: everything the CDA writers and the routing need. */
export interface ValidatedDocument {
  kind: DocumentKind;
  documentId: number;
  setId: string;
  version: number;
  /** The version it corrects: its id and number (relatedDocument RPLC). */
  replaces: { documentId: number; version: number } | null;
  validatedAt: string;
  validatedBy: string;
  patient: PatientSnapshot;
  meeting: (MeetingData & { id: number }) | null;
  content: Json;
  /** Mon espace santé may receive it: qualified INS and no opposition recorded. */
  mesAllowed: boolean;
}

export class RcpError extends OncoError {
  constructor(code: string, params: Record<string, string | number>) {
    super(code, { params });
  }
}

interface DocumentRow {
  id: number;
  set_id: string;
  version: number;
  replaces: number | null;
  session_id: number | null;
  patient_id: number;
  status: DocumentStatus;
  data: string;
  external_id: string | null;
  created_at: string;
  updated_at: string;
  validated_at: string | null;
  validated_by: string | null;
  outbox_id: number | null;
}

interface MeetingRow {
  id: number;
  date: string;
  committee: string;
  organ: string | null;
  site_finess: string | null;
  data: string;
  created_at: string;
  updated_at: string;
}

const TABLE: Record<DocumentKind, string> = { frcp: 'rcp_forms', pps: 'pps' };
const iso = (now: number): string => new Date(now).toISOString();
const organLabel = (o: MeetingData['organ']): string | null =>
  o === undefined ? null : 'text' in o ? o.text : o.displayName;

/** Content a document of each kind must have before it can be stored. */
const REQUIRED: Record<DocumentKind, readonly string[]> = {
  frcp: ['question', 'clinicalSummary', 'diagnosis', 'proposal', 'referringPhysician'],
  pps: ['treatments', 'site', 'referent'],
};

function checkMeeting(m: MeetingData): void {
  const missing = ['date', 'committee', 'site', 'organiser', 'participants'].filter(
    (f) => (m as Json)[f] === undefined || (m as Json)[f] === null,
  );
  if (missing.length) throw new RcpError('RCP_INVALID', { what: 'meeting', missing: missing.join(', ') });
  if (!/^\d{8}/.test(m.date.replace(/-/g, '')))
    throw new RcpError('RCP_INVALID', { what: 'meeting', missing: 'a date (YYYY-MM-DD)' });
}

export class Rcp {
  private readonly s;

  constructor(
    private readonly db: Db,
    private readonly patients: PatientStore,
    private readonly outbox: Outbox,
    private readonly audit: Audit,
  ) {
    const docs = (kind: DocumentKind) => {
      const t = TABLE[kind];
      return {
        get: db.prepare<[number], DocumentRow>(`SELECT * FROM ${t} WHERE id = ?`),
        versions: db.prepare<[string], DocumentRow>(`SELECT * FROM ${t} WHERE set_id = ? ORDER BY version`),
        // The latest version of each set: a session lists its forms, not their corrections.
        ofMeeting: db.prepare<[number], DocumentRow>(
          `SELECT * FROM ${t} f WHERE session_id = ?
           AND version = (SELECT max(version) FROM ${t} g WHERE g.set_id = f.set_id) ORDER BY set_id, id`,
        ),
        ofPatient: db.prepare<[number], DocumentRow>(`SELECT * FROM ${t} WHERE patient_id = ? ORDER BY id`),
        byExternal: db.prepare<[string], number>(`SELECT id FROM ${t} WHERE external_id = ?`).pluck(),
        insert: db.prepare(
          `INSERT INTO ${t} (set_id, version, replaces, session_id, patient_id, status, data, external_id, created_at, updated_at)
           VALUES (@setId, @version, @replaces, @meetingId, @patientId, 'draft', @data, @externalId, @now, @now)`,
        ),
        setSet: db.prepare(`UPDATE ${t} SET set_id = ? WHERE id = ?`),
        update: db.prepare(`UPDATE ${t} SET data = ?, session_id = ?, updated_at = ? WHERE id = ?`),
        validate: db.prepare(
          `UPDATE ${t} SET status = 'validated', validated_at = ?, validated_by = ?, outbox_id = ?, updated_at = ? WHERE id = ?`,
        ),
        sent: db.prepare(
          `UPDATE ${t} SET status = 'sent', updated_at = ? WHERE id = ? AND status = 'validated'`,
        ),
      };
    };
    this.s = {
      docs: { frcp: docs('frcp'), pps: docs('pps') },
      meeting: db.prepare<[number], MeetingRow>('SELECT * FROM rcp_sessions WHERE id = ?'),
      insertMeeting: db.prepare(
        `INSERT INTO rcp_sessions (date, committee, organ, site_finess, organiser_rpps, data, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      updateMeeting: db.prepare(
        `UPDATE rcp_sessions SET date = ?, committee = ?, organ = ?, site_finess = ?, organiser_rpps = ?, data = ?, updated_at = ?
         WHERE id = ?`,
      ),
      meetings: db.prepare<[string, string, string, string, number], MeetingRow>(
        `SELECT * FROM rcp_sessions WHERE date >= ? AND date < ? AND (? = '' OR committee = ?)
         ORDER BY date DESC, id DESC LIMIT ?`,
      ),
      opposition: db
        .prepare<[number, string], number>(
          'SELECT 1 FROM patient_oppositions WHERE patient_id = ? AND kind = ?',
        )
        .pluck(),
      oppose: db.prepare(
        'INSERT OR IGNORE INTO patient_oppositions (patient_id, kind, recorded_at, recorded_by) VALUES (?, ?, ?, ?)',
      ),
      withdraw: db.prepare('DELETE FROM patient_oppositions WHERE patient_id = ? AND kind = ?'),
    };
  }

  // ---- reads (main thread) ----

  meeting(id: number): MeetingRecord | undefined {
    const r = this.s.meeting.get(id);
    return r ? toMeeting(r) : undefined;
  }

  /** Sessions between two dates (`YYYY-MM-DD`, end excluded), newest first, of one committee if given. */
  meetings(from: string, to: string, committee = '', limit = 200): MeetingRecord[] {
    return this.s.meetings.all(from, to, committee, committee, limit).map(toMeeting);
  }

  document(kind: DocumentKind, id: number): DocumentRecord | undefined {
    const r = this.s.docs[kind].get.get(id);
    return r ? toDocument(kind, r) : undefined;
  }

  /** Every version of the document's set, first version first. */
  versions(kind: DocumentKind, id: number): DocumentRecord[] {
    const d = this.s.docs[kind].get.get(id);
    return d ? this.s.docs[kind].versions.all(d.set_id).map((r) => toDocument(kind, r)) : [];
  }

  /** The forms of a session, each in its latest version. */
  formsOfMeeting(meetingId: number): DocumentRecord[] {
    return this.s.docs.frcp.ofMeeting.all(meetingId).map((r) => toDocument('frcp', r));
  }

  documentsOfPatient(kind: DocumentKind, patientId: number): DocumentRecord[] {
    return this.s.docs[kind].ofPatient.all(patientId).map((r) => toDocument(kind, r));
  }

  hasOpposition(patientId: number, kind: OppositionKind = 'mes'): boolean {
    return this.s.opposition.get(this.patientOf(patientId), kind) !== undefined;
  }

  // ---- writes (the writer: synchronous, plain data) ----

  createMeeting(data: MeetingData, actor: Actor, now: number): { id: number } {
    checkMeeting(data);
    const id = Number(
      this.s.insertMeeting.run(...meetingColumns(data), JSON.stringify(data), iso(now), iso(now))
        .lastInsertRowid,
    );
    this.record(actor, 'rcp-meeting-create', `rcp-meeting:${id}`, null, now, { date: data.date });
    return { id };
  }

  updateMeeting(id: number, data: MeetingData, actor: Actor, now: number): { id: number } {
    checkMeeting(data);
    if (!this.s.meeting.get(id)) throw new RcpError('RCP_UNKNOWN', { what: 'meeting', id });
    this.s.updateMeeting.run(...meetingColumns(data), JSON.stringify(data), iso(now), id);
    this.record(actor, 'rcp-meeting-update', `rcp-meeting:${id}`, null, now, { date: data.date });
    return { id };
  }

  /** A new draft, version 1 of a new set. */
  create(
    kind: DocumentKind,
    input: DocumentInput,
    actor: Actor,
    now: number,
  ): { id: number; status: DocumentStatus; version: number } {
    const patientId = this.checkInput(kind, input);
    const t = this.s.docs[kind];
    if (input.externalId && t.byExternal.get(input.externalId) !== undefined)
      throw new RcpError('RCP_ALREADY_IMPORTED', { id: input.externalId });
    const id = Number(
      t.insert.run({
        setId: '',
        version: 1,
        replaces: null,
        meetingId: input.meetingId ?? null,
        patientId,
        data: JSON.stringify(input.content),
        externalId: input.externalId ?? null,
        now: iso(now),
      }).lastInsertRowid,
    );
    // The set is named after its first version: stable, unique, and known without another counter.
    t.setSet.run(`${kind.toUpperCase()}-${id}`, id);
    this.record(actor, `${kind}-create`, `${kind}:${id}`, patientId, now, {
      externalId: input.externalId ?? null,
    });
    return { id, status: 'draft', version: 1 };
  }

  /**
   * Edits a document: a draft is changed in place; a validated (or sent) one is kept as it was and
   * the change becomes its next version, a draft to validate in turn.
   */
  update(
    kind: DocumentKind,
    id: number,
    input: DocumentInput,
    actor: Actor,
    now: number,
  ): { id: number; status: DocumentStatus; version: number } {
    const t = this.s.docs[kind];
    const current = t.get.get(id);
    if (!current) throw new RcpError('RCP_UNKNOWN', { what: kind, id });
    const patientId = this.checkInput(kind, input);
    if (patientId !== this.patientOf(current.patient_id)) throw new RcpError('RCP_PATIENT_CHANGED', { id });
    const latest = t.versions.all(current.set_id).at(-1)!;
    if (latest.id !== id) throw new RcpError('RCP_NOT_LATEST', { id, latest: latest.id });
    if (current.status === 'draft') {
      t.update.run(JSON.stringify(input.content), input.meetingId ?? null, iso(now), id);
      this.record(actor, `${kind}-update`, `${kind}:${id}`, patientId, now, null);
      return { id, status: 'draft', version: current.version };
    }
    const next = Number(
      t.insert.run({
        setId: current.set_id,
        version: current.version + 1,
        replaces: id,
        meetingId: input.meetingId ?? null,
        patientId,
        data: JSON.stringify(input.content),
        externalId: null,
        now: iso(now),
      }).lastInsertRowid,
    );
    this.record(actor, `${kind}-correct`, `${kind}:${next}`, patientId, now, {
      replaces: id,
      version: current.version + 1,
    });
    return { id: next, status: 'draft', version: current.version + 1 };
  }

  /**
   * Validates a draft and, in the same transaction, writes the outbox row that sends it: the
   * document, the patient as known now and whether Mon espace santé may receive it.
   */
  validate(
    kind: DocumentKind,
    id: number,
    actor: Actor,
    now: number,
  ): { id: number; status: DocumentStatus; version: number; outboxId: number } {
    const t = this.s.docs[kind];
    const row = t.get.get(id);
    if (!row) throw new RcpError('RCP_UNKNOWN', { what: kind, id });
    if (row.status !== 'draft') throw new RcpError('RCP_NOT_DRAFT', { id, status: row.status });
    const previous = row.replaces === null ? undefined : t.get.get(row.replaces);
    if (previous && previous.status === 'draft')
      throw new RcpError('RCP_NOT_DRAFT', { id: previous.id, status: 'draft' });
    const patient = this.snapshot(row.patient_id);
    const meetingRow = row.session_id === null ? undefined : this.s.meeting.get(row.session_id);
    const document: ValidatedDocument = {
      kind,
      documentId: id,
      setId: row.set_id,
      version: row.version,
      replaces: previous ? { documentId: previous.id, version: previous.version } : null,
      validatedAt: iso(now),
      validatedBy: actor.login,
      patient,
      meeting: meetingRow ? { ...(JSON.parse(meetingRow.data) as MeetingData), id: meetingRow.id } : null,
      content: JSON.parse(row.data) as Json,
      mesAllowed: patient.ins !== null && this.s.opposition.get(patient.id, 'mes') === undefined,
    };
    const outboxId = this.outbox.add({
      channel: DOCUMENTS_OUT,
      content: JSON.stringify(document),
      contentType: RCP_DOCUMENT_TYPE,
      meta: {
        documentKind: kind,
        documentId: id,
        setId: row.set_id,
        version: row.version,
        patientId: patient.id,
      },
      owner: meetingRow?.site_finess ?? null,
      now,
    });
    t.validate.run(iso(now), actor.login, outboxId, iso(now), id);
    this.record(actor, `${kind}-validate`, `${kind}:${id}`, patient.id, now, {
      version: row.version,
      mesAllowed: document.mesAllowed,
    });
    return { id, status: 'validated', version: row.version, outboxId };
  }

  /** Creates and validates forms produced elsewhere (JSON import), each in its own savepoint. */
  importForms(
    items: Array<DocumentInput & { validate?: boolean }>,
    actor: Actor,
    now: number,
  ): Array<{
    index: number;
    id?: number;
    status?: DocumentStatus;
    error?: { code: string; message: string };
  }> {
    return items.map((item, index) => {
      try {
        return this.db.transaction(() => {
          const made = this.create('frcp', item, actor, now);
          const done = item.validate === false ? made : this.validate('frcp', made.id, actor, now);
          return { index, id: done.id, status: done.status };
        })();
      } catch (error) {
        if (!(error instanceof OncoError)) throw error;
        return { index, error: { code: error.code, message: error.message } };
      }
    });
  }

  /** The document was written and queued for each of its recipients (documents-out's `rcp-status`). */
  markSent(kind: DocumentKind, id: number, now: number): { detail: string } {
    if (kind !== 'frcp' && kind !== 'pps')
      throw new RcpError('RCP_UNKNOWN', { what: 'document kind', id: String(kind) });
    this.s.docs[kind].sent.run(iso(now), id);
    return { detail: `${kind} ${id} sent` };
  }

  /** Records (or withdraws) a patient's opposition; `mes`: nothing goes to Mon espace santé. */
  setOpposition(patientId: number, kind: OppositionKind, opposed: boolean, actor: Actor, now: number): void {
    const id = this.patientOf(patientId);
    if (opposed) this.s.oppose.run(id, kind, iso(now), actor.login);
    else this.s.withdraw.run(id, kind);
    this.record(actor, opposed ? 'opposition-record' : 'opposition-withdraw', `patient:${id}`, id, now, {
      kind,
    });
  }

  // ---- helpers ----

  private checkInput(kind: DocumentKind, input: DocumentInput): number {
    const patientId = this.patientOf(input.patientId);
    const missing = REQUIRED[kind].filter((f) => input.content[f] === undefined || input.content[f] === null);
    if (kind === 'frcp' && (input.meetingId === undefined || input.meetingId === null))
      missing.unshift('meetingId');
    if (missing.length) throw new RcpError('RCP_INVALID', { what: kind, missing: missing.join(', ') });
    if (input.meetingId != null && !this.s.meeting.get(input.meetingId))
      throw new RcpError('RCP_UNKNOWN', { what: 'meeting', id: input.meetingId });
    return patientId;
  }

  /** The patient a document belongs to, followed through merges. */
  private patientOf(patientId: number): number {
    const id = Number.isSafeInteger(patientId) ? this.patients.resolvePatient(patientId) : null;
    if (id === null) throw new RcpError('RCP_UNKNOWN', { what: 'patient', id: patientId });
    return id;
  }

  private snapshot(patientId: number): PatientSnapshot {
    const id = this.patientOf(patientId);
    const p = this.patients.get(id)!;
    const qualified = p.ins !== null && p.ins.status === 'QUAL';
    return {
      id,
      ins: qualified ? { matricule: p.ins!.matricule, oid: p.ins!.oid } : null,
      identifiers: this.patients
        .identifiers(id)
        .filter((i) => i.status === 'active')
        .map((i) => ({ finess: i.finess, ipp: i.ipp })),
      birthName: p.birthName,
      givenNames: p.givenNames,
      firstGivenName: p.firstGivenName,
      usedName: p.usedName,
      usedGivenName: p.usedGivenName,
      sex: p.sex,
      birthDate: p.birthDate,
      birthPlace: p.birthPlace,
    };
  }

  private record(
    actor: Actor,
    action: string,
    object: string,
    patientId: number | null,
    now: number,
    detail: Json | null,
  ): void {
    this.audit.record(
      {
        actor: actor.login,
        role: actor.role ?? null,
        source: actor.source ?? null,
        patientId,
        action,
        object,
        detail,
      },
      now,
    );
  }
}

/** `YYYY-MM-DD` of an ISO date or an HL7 TS: the column sessions are listed and counted by. */
const isoDay = (date: string): string => {
  const d = date.replace(/-/g, '');
  return `${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6, 8)}`;
};

function meetingColumns(m: MeetingData): [string, string, string | null, string | null, string | null] {
  return [
    isoDay(m.date),
    m.committee.name,
    organLabel(m.organ),
    m.site.finess ?? null,
    m.organiser.rpps ?? null,
  ];
}

const toMeeting = (r: MeetingRow): MeetingRecord => ({
  id: r.id,
  date: r.date,
  committee: r.committee,
  organ: r.organ,
  siteFiness: r.site_finess,
  data: JSON.parse(r.data) as MeetingData,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

const toDocument = (kind: DocumentKind, r: DocumentRow): DocumentRecord => ({
  id: r.id,
  kind,
  setId: r.set_id,
  version: r.version,
  replaces: r.replaces,
  meetingId: r.session_id,
  patientId: r.patient_id,
  status: r.status,
  content: JSON.parse(r.data) as Json,
  externalId: r.external_id,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  validatedAt: r.validated_at,
  validatedBy: r.validated_by,
  outboxId: r.outbox_id,
});
