// The DCC's patients: identities, identifiers per establishment, merges, links, and the journal
// of every identity decision. Matching rules live in vigilance.ts; this module only records.
//
// Merges redirect, they never move rows: the merged patient keeps its identifiers (and, later,
// its documents) and gets `merged_into` = survivor. Reads go through `resolvePatient()` (to the
// survivor) and `family()` (the survivor and everything merged into it). Why: undoing a wrong
// merge is then exact (clear one column), a merge costs one UPDATE however many documents the
// patient has, and each document keeps the patient its message named, which is the provenance an
// identity-vigilance audit asks for.
// Hook for the documents module: file a new document under `resolvePatient(id)`, and list a
// patient's documents with `WHERE patient_id IN (SELECT value FROM json_each(?))` bound to
// `JSON.stringify(family(resolvePatient(id)))`, never `= id`.
import type { Db, Migration } from './db.ts';
import { OncoError } from '../config/errors.ts';
import { blockingKeys, foldName, normaliseBirthDate, type Sex } from './identity-match.ts';

/** Identity status (national identity-vigilance reference) plus the PAM FR reliability codes worth keeping. */
export type Reliability = 'PROV' | 'RECUP' | 'VALI' | 'QUAL' | 'DOUT' | 'FICT';

export interface IdentifierRef {
  finess: string;
  ipp: string;
  /** Assigning-authority namespace as the establishment writes it (PID-3.4.1); informative. */
  namespace?: string | null;
}

export interface InsInput {
  matricule: string;
  oid: string;
  /** Identity status the INS was sent with; when absent the identity's reliability applies. */
  status?: string | null;
}

/** An identity as a source sent it; the engine maps its transformer's output to this. */
export interface IdentityInput {
  birthName: string;
  /** All birth given names, in order. */
  givenNames?: string[] | null;
  firstGivenName: string;
  /** `YYYY-MM-DD` or `YYYYMMDD` (an HL7 TS with a time is accepted), or partial `YYYY`/`YYYYMM`. */
  birthDate: string;
  /** `M`, `F`, `U`; `I` (PAM FR undetermined) and anything else unknown read as `U`. */
  sex: string;
  /** INSEE code of the birth place. */
  birthPlace?: string | null;
  usedName?: string | null;
  usedGivenName?: string | null;
  ins?: InsInput | null;
  /** PROV, RECUP, VALI, QUAL, DOUT, FICT, VIDE (PAM FR spellings DOUTE and FICTI accepted). */
  reliability?: string | null;
  identifiers: IdentifierRef[];
  /** SM, CV, INSI, CB, RFID, AV. */
  collectionMode?: string | null;
}

/** An identity after validation: what the store writes. */
export interface Identity {
  birthName: string;
  givenNames: string;
  firstGivenName: string;
  birthDate: string;
  sex: Sex;
  birthPlace: string | null;
  usedName: string | null;
  usedGivenName: string | null;
  ins: { matricule: string; oid: string; status: Reliability } | null;
  reliability: Reliability;
  collectionMode: string | null;
}

export interface PatientRecord extends Identity {
  id: number;
  mergedInto: number | null;
  createdAt: string;
  updatedAt: string;
  sourceMessageId: number | null;
}

export interface IdentifierRecord {
  id: number;
  finess: string;
  ipp: string;
  namespace: string | null;
  /** The patient this identifier was attached to; differs from the looked-up patient after a merge. */
  patientId: number;
  status: 'active' | 'merged';
  mergedIntoIpp: string | null;
  /** The last identity this establishment sent for this IPP. */
  identity: Identity;
  updatedAt: string;
}

export type DecisionAction =
  | 'created'
  | 'created-with-review'
  | 'linked'
  | 'updated'
  | 'merged'
  | 'unmerged'
  | 'identifier-merged'
  | 'identifier-changed'
  | 'identifier-detached'
  | 'patients-linked'
  | 'patients-unlinked'
  | 'review-rejected'
  | 'unchanged';

export interface Decision {
  decisionId: number;
  patientId: number;
  action: DecisionAction;
  /** The rule that made the decision, e.g. `ipp-known`, `ins-qualified`, `strict-traits`, `manual`. */
  rule: string;
}

/** Who acts: the message that carried the event, or the person in the dashboard (`author`). */
export interface ActionContext {
  messageId?: number | null;
  author?: string | null;
}

export interface DecisionRecord {
  id: number;
  at: string;
  patientId: number | null;
  otherPatientId: number | null;
  action: DecisionAction;
  rule: string;
  messageId: number | null;
  author: string | null;
  input: unknown;
  detail: unknown;
}

export interface PatientSummary {
  id: number;
  birthName: string;
  firstGivenName: string;
  usedName: string | null;
  birthDate: string;
  sex: Sex;
  reliability: Reliability;
  ins: Identity['ins'];
}

export interface Page<T> {
  items: T[];
  /** Opaque cursor for the next page, null on the last one. */
  next: string | null;
}

export interface PatientView {
  patient: PatientRecord;
  /** The id asked for, when it was merged into `patient`. */
  requestedId: number;
  /** Patients merged into this one (transitively): their documents belong to it. */
  family: number[];
  identifiers: IdentifierRecord[];
  links: Array<{ patientId: number; decisionId: number }>;
  merges: Array<{
    mergeId: number;
    survivorId: number;
    mergedId: number;
    decisionId: number;
    undone: boolean;
  }>;
  history: DecisionRecord[];
}

export class PatientStoreError extends OncoError {
  declare readonly hint: string;
  constructor(code: string, message: string, hint: string, options: { cause?: unknown } = {}) {
    super(code, { message, hint, cause: options.cause });
  }
}

const RANK: Record<Reliability, number> = { FICT: 0, DOUT: 0, PROV: 1, RECUP: 2, VALI: 2, QUAL: 3 };

/** Higher means more trustworthy traits; RECUP and VALI are each half of a qualification, so they rank equal. */
export function reliabilityRank(r: Reliability): number {
  return RANK[r];
}

const RELIABILITY_ALIASES: Record<string, Reliability> = {
  PROV: 'PROV',
  VIDE: 'PROV',
  RECUP: 'RECUP',
  VALI: 'VALI',
  QUAL: 'QUAL',
  DOUT: 'DOUT',
  DOUTE: 'DOUT',
  FICT: 'FICT',
  FICTI: 'FICT',
};

/** Unknown or absent codes read as PROV: the lowest status that still allows matching. */
export function parseReliability(code: string | null | undefined): Reliability {
  return RELIABILITY_ALIASES[(code ?? '').trim().toUpperCase()] ?? 'PROV';
}

function invalid(field: string, what: string): PatientStoreError {
  return new PatientStoreError(
    'IDENTITY_INVALID',
    `identity field ${field} ${what}`,
    `correct ${field} in the sending system and send the identity again`,
  );
}

function tidy(s: string | null | undefined): string | null {
  const t = (s ?? '').trim().replace(/\s+/g, ' ');
  return t === '' ? null : t;
}

/** Validates and normalises an input; throws `IDENTITY_INVALID` naming the field. */
export function parseIdentity(input: IdentityInput): Identity {
  const birthName = tidy(input.birthName);
  if (birthName === null || foldName(birthName) === '') throw invalid('birthName', 'is empty');
  const firstGivenName = tidy(input.firstGivenName) ?? tidy(input.givenNames?.[0]);
  if (firstGivenName === null) throw invalid('firstGivenName', 'is empty');
  const birthDate = normaliseBirthDate(input.birthDate ?? '');
  if (birthDate === null) throw invalid('birthDate', `is not a date (YYYY-MM-DD or YYYYMMDD)`);
  const sex = (['M', 'F'] as const).find((s) => s === (input.sex ?? '').trim().toUpperCase()) ?? 'U';
  const reliability = parseReliability(input.reliability ?? input.ins?.status);
  const matricule = tidy(input.ins?.matricule)?.replace(/ /g, '') ?? null;
  const oid = tidy(input.ins?.oid);
  if (matricule !== null && !/^\d{13}(\d{2})?$/.test(matricule))
    throw invalid('ins.matricule', 'is not 13 or 15 digits');
  if (matricule !== null && oid === null) throw invalid('ins.oid', 'is missing for the INS matricule');
  return {
    birthName,
    givenNames:
      (input.givenNames ?? [])
        .map((g) => tidy(g))
        .filter((g) => g !== null)
        .join(' ') || firstGivenName,
    firstGivenName,
    birthDate,
    sex,
    birthPlace: tidy(input.birthPlace),
    usedName: tidy(input.usedName),
    usedGivenName: tidy(input.usedGivenName),
    ins:
      matricule !== null && oid !== null
        ? { matricule, oid, status: input.ins?.status ? parseReliability(input.ins.status) : reliability }
        : null,
    reliability,
    collectionMode: tidy(input.collectionMode),
  };
}

export const patientMigrations: Migration[] = [
  {
    version: 400,
    name: 'patients, identifiers per establishment, name search',
    up: `
      CREATE TABLE patients (
        id INTEGER PRIMARY KEY,
        birth_name TEXT NOT NULL,
        given_names TEXT NOT NULL,
        first_given_name TEXT NOT NULL,
        birth_date TEXT NOT NULL,
        sex TEXT NOT NULL CHECK (sex IN ('M', 'F', 'U')),
        birth_place TEXT,
        used_name TEXT,
        used_given_name TEXT,
        ins_matricule TEXT,
        ins_oid TEXT,
        ins_status TEXT,
        reliability TEXT NOT NULL CHECK (reliability IN ('PROV', 'RECUP', 'VALI', 'QUAL', 'DOUT', 'FICT')),
        collection_mode TEXT,
        name_year_block TEXT NOT NULL,
        name_day_block TEXT NOT NULL,
        merged_into INTEGER REFERENCES patients (id),
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        source_message_id INTEGER
      );
      -- Candidate blocks for identity matching: only live patients, so both indexes stay lean.
      CREATE INDEX patients_birth_date ON patients (birth_date) WHERE merged_into IS NULL;
      CREATE INDEX patients_name_year_block ON patients (name_year_block) WHERE merged_into IS NULL;
      CREATE INDEX patients_name_day_block ON patients (name_day_block) WHERE merged_into IS NULL;
      CREATE INDEX patients_ins ON patients (ins_matricule) WHERE ins_matricule IS NOT NULL;
      CREATE INDEX patients_merged_into ON patients (merged_into) WHERE merged_into IS NOT NULL;

      CREATE TABLE patient_identifiers (
        id INTEGER PRIMARY KEY,
        finess TEXT NOT NULL,
        ipp TEXT NOT NULL,
        namespace TEXT,
        patient_id INTEGER NOT NULL REFERENCES patients (id),
        status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'merged')),
        merged_into_ipp TEXT,
        identity TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        source_message_id INTEGER,
        UNIQUE (finess, ipp)
      );
      CREATE INDEX patient_identifiers_patient ON patient_identifiers (patient_id);
      CREATE INDEX patient_identifiers_ipp ON patient_identifiers (ipp);

      -- Folded birth and used names, for prefix search with keyset pages.
      CREATE TABLE patient_search (
        name TEXT NOT NULL,
        patient_id INTEGER NOT NULL REFERENCES patients (id),
        given TEXT NOT NULL,
        PRIMARY KEY (name, patient_id)
      ) WITHOUT ROWID;
      CREATE INDEX patient_search_patient ON patient_search (patient_id);
    `,
  },
  {
    version: 401,
    name: 'identity decisions journal, merges, links, review items',
    up: `
      CREATE TABLE identity_decisions (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        patient_id INTEGER,
        other_patient_id INTEGER,
        action TEXT NOT NULL,
        rule TEXT NOT NULL,
        message_id INTEGER,
        author TEXT,
        input TEXT,
        detail TEXT
      );
      CREATE INDEX identity_decisions_patient ON identity_decisions (patient_id);
      CREATE INDEX identity_decisions_other ON identity_decisions (other_patient_id)
        WHERE other_patient_id IS NOT NULL;
      CREATE INDEX identity_decisions_message ON identity_decisions (message_id) WHERE message_id IS NOT NULL;

      CREATE TABLE patient_merges (
        id INTEGER PRIMARY KEY,
        survivor_id INTEGER NOT NULL REFERENCES patients (id),
        merged_id INTEGER NOT NULL REFERENCES patients (id),
        survivor_before TEXT,
        identifier_id INTEGER REFERENCES patient_identifiers (id),
        decision_id INTEGER NOT NULL REFERENCES identity_decisions (id),
        undo_decision_id INTEGER REFERENCES identity_decisions (id)
      );
      CREATE INDEX patient_merges_survivor ON patient_merges (survivor_id);
      CREATE INDEX patient_merges_merged ON patient_merges (merged_id);

      CREATE TABLE patient_links (
        id INTEGER PRIMARY KEY,
        patient_a INTEGER NOT NULL REFERENCES patients (id),
        patient_b INTEGER NOT NULL REFERENCES patients (id),
        decision_id INTEGER NOT NULL REFERENCES identity_decisions (id),
        unlink_decision_id INTEGER REFERENCES identity_decisions (id),
        CHECK (patient_a < patient_b)
      );
      CREATE UNIQUE INDEX patient_links_active ON patient_links (patient_a, patient_b) WHERE unlink_decision_id IS NULL;
      CREATE INDEX patient_links_b ON patient_links (patient_b);

      CREATE TABLE identity_reviews (
        id INTEGER PRIMARY KEY,
        patient_id INTEGER NOT NULL REFERENCES patients (id),
        candidate_id INTEGER NOT NULL REFERENCES patients (id),
        score REAL NOT NULL,
        reasons TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'confirmed', 'rejected')),
        decision_id INTEGER NOT NULL REFERENCES identity_decisions (id),
        resolution_decision_id INTEGER REFERENCES identity_decisions (id),
        CHECK (patient_id <> candidate_id)
      );
      CREATE INDEX identity_reviews_open ON identity_reviews (id) WHERE status = 'open';
      CREATE INDEX identity_reviews_patient ON identity_reviews (patient_id);
      CREATE INDEX identity_reviews_candidate ON identity_reviews (candidate_id);
    `,
  },
];

interface PatientRow {
  id: number;
  birth_name: string;
  given_names: string;
  first_given_name: string;
  birth_date: string;
  sex: Sex;
  birth_place: string | null;
  used_name: string | null;
  used_given_name: string | null;
  ins_matricule: string | null;
  ins_oid: string | null;
  ins_status: Reliability | null;
  reliability: Reliability;
  collection_mode: string | null;
  merged_into: number | null;
  created_at: string;
  updated_at: string;
  source_message_id: number | null;
}

interface IdentifierRow {
  id: number;
  finess: string;
  ipp: string;
  namespace: string | null;
  patient_id: number;
  status: 'active' | 'merged';
  merged_into_ipp: string | null;
  identity: string;
  updated_at: string;
}

interface DecisionRow {
  id: number;
  at: string;
  patient_id: number | null;
  other_patient_id: number | null;
  action: DecisionAction;
  rule: string;
  message_id: number | null;
  author: string | null;
  input: string | null;
  detail: string | null;
}

function toPatient(r: PatientRow): PatientRecord {
  return {
    id: r.id,
    birthName: r.birth_name,
    givenNames: r.given_names,
    firstGivenName: r.first_given_name,
    birthDate: r.birth_date,
    sex: r.sex,
    birthPlace: r.birth_place,
    usedName: r.used_name,
    usedGivenName: r.used_given_name,
    ins:
      r.ins_matricule !== null && r.ins_oid !== null
        ? { matricule: r.ins_matricule, oid: r.ins_oid, status: r.ins_status ?? r.reliability }
        : null,
    reliability: r.reliability,
    collectionMode: r.collection_mode,
    mergedInto: r.merged_into,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    sourceMessageId: r.source_message_id,
  };
}

function toIdentifier(r: IdentifierRow): IdentifierRecord {
  return {
    id: r.id,
    finess: r.finess,
    ipp: r.ipp,
    namespace: r.namespace,
    patientId: r.patient_id,
    status: r.status,
    mergedIntoIpp: r.merged_into_ipp,
    identity: JSON.parse(r.identity) as Identity,
    updatedAt: r.updated_at,
  };
}

function toDecision(r: DecisionRow): DecisionRecord {
  return {
    id: r.id,
    at: r.at,
    patientId: r.patient_id,
    otherPatientId: r.other_patient_id,
    action: r.action,
    rule: r.rule,
    messageId: r.message_id,
    author: r.author,
    input: r.input === null ? null : JSON.parse(r.input),
    detail: r.detail === null ? null : JSON.parse(r.detail),
  };
}

function traitParams(i: Identity): Record<string, string | null> {
  const keys = blockingKeys(i);
  return {
    birth_name: i.birthName,
    given_names: i.givenNames,
    first_given_name: i.firstGivenName,
    birth_date: i.birthDate,
    sex: i.sex,
    birth_place: i.birthPlace,
    ins_matricule: i.ins?.matricule ?? null,
    ins_oid: i.ins?.oid ?? null,
    ins_status: i.ins?.status ?? null,
    reliability: i.reliability,
    collection_mode: i.collectionMode,
    name_year_block: keys.nameYear,
    name_day_block: keys.nameDay,
  };
}

function encodeCursor(v: unknown): string {
  return Buffer.from(JSON.stringify(v)).toString('base64url');
}

function decodeCursor(c: string): [string, number] {
  try {
    const v: unknown = JSON.parse(Buffer.from(c, 'base64url').toString());
    if (Array.isArray(v) && typeof v[0] === 'string' && typeof v[1] === 'number') return [v[0], v[1]];
  } catch {
    // fall through to the error below
  }
  throw new PatientStoreError(
    'CURSOR_INVALID',
    'the page cursor is not one this search returned',
    'restart the search from its first page',
  );
}

export interface PatientStoreOptions {
  /** Clock for the journal; tests pin it. */
  now?: () => Date;
}

/** Upper bound of a candidate block: a bigger block means a blocking key gone bad, not a real cohort. */
const MAX_CANDIDATES = 500;
/** A birth name alone is long enough to find a patient; search below that is noise. */
const MIN_SEARCH_CHARS = 2;

export class PatientStore {
  private readonly now: () => Date;
  private readonly sql;

  constructor(
    readonly db: Db,
    options: PatientStoreOptions = {},
  ) {
    this.now = options.now ?? (() => new Date());
    const p = (s: string) => db.prepare(s);
    this.sql = {
      patient: p('SELECT * FROM patients WHERE id = ?'),
      mergedInto: p('SELECT merged_into FROM patients WHERE id = ?').pluck(),
      family:
        p(`WITH RECURSIVE f(id) AS (SELECT ? UNION SELECT p.id FROM patients p JOIN f ON p.merged_into = f.id
                 WHERE p.merged_into IS NOT NULL) SELECT id FROM f ORDER BY id`).pluck(),
      byIns: p(
        `SELECT id FROM patients WHERE ins_matricule = ? AND ins_oid = ? AND merged_into IS NULL ORDER BY id`,
      ).pluck(),
      candidates: p(`SELECT * FROM patients WHERE birth_date = @birth_date AND merged_into IS NULL
                     UNION SELECT * FROM patients WHERE name_year_block = @name_year_block AND merged_into IS NULL
                     UNION SELECT * FROM patients WHERE name_day_block = @name_day_block AND merged_into IS NULL
                     LIMIT ${MAX_CANDIDATES}`),
      insert:
        p(`INSERT INTO patients (birth_name, given_names, first_given_name, birth_date, sex, birth_place,
                   used_name, used_given_name, ins_matricule, ins_oid, ins_status, reliability, collection_mode,
                   name_year_block, name_day_block, created_at, updated_at, source_message_id)
                 VALUES (@birth_name, @given_names, @first_given_name, @birth_date, @sex, @birth_place,
                   @used_name, @used_given_name, @ins_matricule, @ins_oid, @ins_status, @reliability, @collection_mode,
                   @name_year_block, @name_day_block, @at, @at, @message_id)`),
      updateTraits: p(`UPDATE patients SET birth_name = @birth_name, given_names = @given_names,
                   first_given_name = @first_given_name, birth_date = @birth_date, sex = @sex, birth_place = @birth_place,
                   ins_matricule = @ins_matricule, ins_oid = @ins_oid, ins_status = @ins_status,
                   reliability = @reliability, collection_mode = @collection_mode,
                   name_year_block = @name_year_block, name_day_block = @name_day_block,
                   updated_at = @at, source_message_id = @message_id WHERE id = @id`),
      updateUsed:
        p(`UPDATE patients SET used_name = @used_name, used_given_name = @used_given_name, updated_at = @at,
                   source_message_id = @message_id WHERE id = @id`),
      setMergedInto: p('UPDATE patients SET merged_into = ?, updated_at = ? WHERE id = ?'),
      deleteSearch: p('DELETE FROM patient_search WHERE patient_id = ?'),
      insertSearch: p('INSERT OR IGNORE INTO patient_search (name, patient_id, given) VALUES (?, ?, ?)'),
      identifier: p('SELECT * FROM patient_identifiers WHERE finess = ? AND ipp = ?'),
      identifiersOf: p(`SELECT * FROM patient_identifiers WHERE patient_id IN (SELECT value FROM json_each(?))
                        ORDER BY finess, ipp`),
      insertIdentifier:
        p(`INSERT INTO patient_identifiers (finess, ipp, namespace, patient_id, identity, created_at,
                   updated_at, source_message_id) VALUES (@finess, @ipp, @namespace, @patient_id, @identity, @at, @at, @message_id)`),
      refreshIdentifier:
        p(`UPDATE patient_identifiers SET identity = @identity, namespace = COALESCE(@namespace, namespace),
                   updated_at = @at, source_message_id = @message_id WHERE id = @id`),
      moveIdentifier: p('UPDATE patient_identifiers SET patient_id = ?, updated_at = ? WHERE id = ?'),
      setIdentifierStatus: p(
        'UPDATE patient_identifiers SET status = ?, merged_into_ipp = ?, updated_at = ? WHERE id = ?',
      ),
      renameIdentifier: p('UPDATE patient_identifiers SET ipp = ?, updated_at = ? WHERE id = ?'),
      identifiersByIpp: p(
        'SELECT patient_id FROM patient_identifiers WHERE ipp = ? ORDER BY patient_id',
      ).pluck(),
      journal:
        p(`INSERT INTO identity_decisions (at, patient_id, other_patient_id, action, rule, message_id, author, input, detail)
                  VALUES (@at, @patient_id, @other_patient_id, @action, @rule, @message_id, @author, @input, @detail)`),
      history: p(`SELECT * FROM identity_decisions WHERE patient_id IN (SELECT value FROM json_each(?))
                  OR other_patient_id IN (SELECT value FROM json_each(?)) ORDER BY id DESC LIMIT 200`),
      insertMerge:
        p(`INSERT INTO patient_merges (survivor_id, merged_id, survivor_before, identifier_id, decision_id)
                      VALUES (?, ?, ?, ?, ?)`),
      merge: p('SELECT * FROM patient_merges WHERE id = ?'),
      lastMergeOf: p(
        'SELECT id FROM patient_merges WHERE merged_id = ? AND undo_decision_id IS NULL ORDER BY id DESC LIMIT 1',
      ).pluck(),
      undoMerge: p('UPDATE patient_merges SET undo_decision_id = ? WHERE id = ?'),
      mergesOf: p(`SELECT * FROM patient_merges WHERE survivor_id IN (SELECT value FROM json_each(?))
                   OR merged_id IN (SELECT value FROM json_each(?)) ORDER BY id`),
      insertLink: p('INSERT INTO patient_links (patient_a, patient_b, decision_id) VALUES (?, ?, ?)'),
      activeLink: p(
        'SELECT id FROM patient_links WHERE patient_a = ? AND patient_b = ? AND unlink_decision_id IS NULL',
      ).pluck(),
      unlink: p('UPDATE patient_links SET unlink_decision_id = ? WHERE id = ?'),
      linksOf: p(`SELECT patient_a, patient_b, decision_id FROM patient_links WHERE unlink_decision_id IS NULL
                  AND (patient_a IN (SELECT value FROM json_each(?)) OR patient_b IN (SELECT value FROM json_each(?)))`),
      searchNames:
        p(`SELECT p.* , s.name AS search_name FROM patient_search s JOIN patients p ON p.id = s.patient_id
                      WHERE s.name >= @from AND s.name < @to AND (s.name, s.patient_id) > (@after_name, @after_id)
                        AND (' ' || s.given) LIKE @given AND p.merged_into IS NULL
                      ORDER BY s.name, s.patient_id LIMIT @limit`),
      searchIns: p(
        'SELECT * FROM patients WHERE ins_matricule = ? AND merged_into IS NULL ORDER BY id LIMIT ?',
      ),
    };
  }

  /** Own transaction when called alone, a savepoint inside the caller's: each action is all or nothing. */
  private atomic<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  private at(): string {
    return this.now().toISOString();
  }

  /** Writes one journal entry; every change of identity data goes with one. */
  journal(entry: {
    patientId: number | null;
    otherPatientId?: number | null;
    action: DecisionAction;
    rule: string;
    ctx: ActionContext;
    input?: unknown;
    detail?: unknown;
  }): number {
    return Number(
      this.sql.journal.run({
        at: this.at(),
        patient_id: entry.patientId,
        other_patient_id: entry.otherPatientId ?? null,
        action: entry.action,
        rule: entry.rule,
        message_id: entry.ctx.messageId ?? null,
        author: entry.ctx.author ?? null,
        input: entry.input === undefined ? null : JSON.stringify(entry.input),
        detail: entry.detail === undefined ? null : JSON.stringify(entry.detail),
      }).lastInsertRowid,
    );
  }

  get(id: number): PatientRecord | null {
    const row = this.sql.patient.get(id) as PatientRow | undefined;
    return row ? toPatient(row) : null;
  }

  /** Follows merges to the surviving patient; null when the id is unknown. */
  resolvePatient(id: number): number | null {
    let current = id;
    for (let hops = 0; hops < 100; hops++) {
      const next = this.sql.mergedInto.get(current) as number | null | undefined;
      if (next === undefined) return null;
      if (next === null) return current;
      current = next;
    }
    throw new PatientStoreError(
      'MERGE_CYCLE',
      `patient ${id} is in a merge cycle`,
      'undo the last merge of this patient',
    );
  }

  private mustResolve(id: number): number {
    const r = this.resolvePatient(id);
    if (r === null)
      throw new PatientStoreError('PATIENT_UNKNOWN', `no patient ${id}`, 'check the patient id');
    return r;
  }

  /** The patient and every patient merged into it, transitively: what documents reads must cover. */
  family(id: number): number[] {
    return this.sql.family.all(id) as number[];
  }

  /** Every IPP designating this patient, its merged patients' included. */
  identifiers(id: number): IdentifierRecord[] {
    return (this.sql.identifiersOf.all(JSON.stringify(this.family(id))) as IdentifierRow[]).map(toIdentifier);
  }

  findIdentifier(finess: string, ipp: string): IdentifierRecord | null {
    const row = this.sql.identifier.get(finess, ipp) as IdentifierRow | undefined;
    return row ? toIdentifier(row) : null;
  }

  /** The surviving patient an establishment's IPP designates, or null. */
  resolveIdentifier(ref: IdentifierRef): number | null {
    const found = this.findIdentifier(ref.finess, ref.ipp);
    return found === null ? null : this.resolvePatient(found.patientId);
  }

  /** Live patients carrying this INS. */
  findByIns(matricule: string, oid: string): number[] {
    return this.sql.byIns.all(matricule, oid) as number[];
  }

  /** Live patients sharing the birth date or the name block: the only rows a match looks at. */
  candidates(identity: Identity): PatientRecord[] {
    const { birth_date, name_year_block, name_day_block } = traitParams(identity);
    return (this.sql.candidates.all({ birth_date, name_year_block, name_day_block }) as PatientRow[]).map(
      toPatient,
    );
  }

  create(identity: Identity, ctx: ActionContext): number {
    const at = this.at();
    const id = Number(
      this.sql.insert.run({
        ...traitParams(identity),
        used_name: identity.usedName,
        used_given_name: identity.usedGivenName,
        at,
        message_id: ctx.messageId ?? null,
      }).lastInsertRowid,
    );
    this.reindexSearch(id, identity);
    return id;
  }

  /** Replaces strict traits, INS and reliability; the vigilance rules decide whether it may. */
  writeTraits(id: number, identity: Identity, ctx: ActionContext): void {
    this.sql.updateTraits.run({
      ...traitParams(identity),
      id,
      at: this.at(),
      message_id: ctx.messageId ?? null,
    });
    this.reindexSearch(id, this.get(id)!);
  }

  writeUsedNames(
    id: number,
    usedName: string | null,
    usedGivenName: string | null,
    ctx: ActionContext,
  ): void {
    this.sql.updateUsed.run({
      id,
      used_name: usedName,
      used_given_name: usedGivenName,
      at: this.at(),
      message_id: ctx.messageId ?? null,
    });
    this.reindexSearch(id, this.get(id)!);
  }

  private reindexSearch(
    id: number,
    i: Pick<Identity, 'birthName' | 'usedName' | 'givenNames' | 'usedGivenName'>,
  ): void {
    this.sql.deleteSearch.run(id);
    const given = foldName(`${i.givenNames} ${i.usedGivenName ?? ''}`);
    for (const name of [i.birthName, i.usedName]) {
      if (name !== null) this.sql.insertSearch.run(foldName(name), id, given);
    }
  }

  /**
   * Attaches an establishment's IPP to a patient, or refreshes the identity it last sent.
   * Returns `attached`, `refreshed`, or `elsewhere` when the IPP already designates another patient.
   */
  attachIdentifier(
    patientId: number,
    ref: IdentifierRef,
    identity: Identity,
    ctx: ActionContext,
  ): 'attached' | 'refreshed' | 'elsewhere' {
    const found = this.findIdentifier(ref.finess, ref.ipp);
    const params = { identity: JSON.stringify(identity), at: this.at(), message_id: ctx.messageId ?? null };
    if (found === null) {
      this.sql.insertIdentifier.run({
        ...params,
        finess: ref.finess,
        ipp: ref.ipp,
        namespace: ref.namespace ?? null,
        patient_id: patientId,
      });
      return 'attached';
    }
    if (this.resolvePatient(found.patientId) !== this.resolvePatient(patientId)) return 'elsewhere';
    this.sql.refreshIdentifier.run({ ...params, id: found.id, namespace: ref.namespace ?? null });
    return 'refreshed';
  }

  /**
   * Merges `mergedId` into `survivorId` (both resolved first). When the merged patient's identity is
   * more reliable, the survivor takes its traits and INS; the survivor's old traits are kept so that
   * `unmerge` restores them. Already the same patient: journaled as `unchanged`.
   */
  merge(survivorId: number, mergedId: number, ctx: ActionContext, rule = 'manual'): Decision {
    return this.atomic(() => this.absorb(survivorId, mergedId, ctx, rule, null));
  }

  /** `identifierId`: the IPP a PAM merge marked `merged`, reactivated by `unmerge`. */
  private absorb(
    survivorId: number,
    mergedId: number,
    ctx: ActionContext,
    rule: string,
    identifierId: number | null,
  ): Decision {
    const survivor = this.get(this.mustResolve(survivorId))!;
    const merged = this.get(this.mustResolve(mergedId))!;
    if (survivor.id === merged.id) {
      const decisionId = this.journal({
        patientId: survivor.id,
        action: 'unchanged',
        rule,
        ctx,
        detail: { mergedId },
      });
      return { decisionId, patientId: survivor.id, action: 'unchanged', rule };
    }
    const adopt = reliabilityRank(merged.reliability) > reliabilityRank(survivor.reliability);
    const decisionId = this.journal({
      patientId: survivor.id,
      otherPatientId: merged.id,
      action: 'merged',
      rule,
      ctx,
      detail: { adoptedTraitsOf: adopt ? merged.id : null },
    });
    this.sql.setMergedInto.run(survivor.id, this.at(), merged.id);
    if (adopt) this.writeTraits(survivor.id, { ...merged, usedName: survivor.usedName }, ctx);
    this.sql.insertMerge.run(
      survivor.id,
      merged.id,
      adopt ? JSON.stringify(survivor) : null,
      identifierId,
      decisionId,
    );
    return { decisionId, patientId: survivor.id, action: 'merged', rule };
  }

  /**
   * Undoes a merge: the merged patient lives again with its own identifiers (and documents), the
   * survivor gets back the traits it had if the merge replaced them. Undoes the last merge that
   * absorbed `mergedId`.
   */
  unmerge(mergedId: number, ctx: ActionContext): Decision {
    return this.atomic(() => {
      const mergeId = this.sql.lastMergeOf.get(mergedId) as number | undefined;
      if (mergeId === undefined) {
        throw new PatientStoreError(
          'MERGE_UNKNOWN',
          `patient ${mergedId} is not merged into another`,
          'open the surviving patient and undo the merge from the patient that was absorbed',
        );
      }
      const m = this.sql.merge.get(mergeId) as {
        survivor_id: number;
        merged_id: number;
        survivor_before: string | null;
        identifier_id: number | null;
      };
      const decisionId = this.journal({
        patientId: m.merged_id,
        otherPatientId: m.survivor_id,
        action: 'unmerged',
        rule: 'manual',
        ctx,
        detail: { mergeId },
      });
      this.sql.setMergedInto.run(null, this.at(), m.merged_id);
      if (m.survivor_before !== null)
        this.writeTraits(m.survivor_id, JSON.parse(m.survivor_before) as Identity, ctx);
      if (m.identifier_id !== null)
        this.sql.setIdentifierStatus.run('active', null, this.at(), m.identifier_id);
      this.sql.undoMerge.run(decisionId, mergeId);
      return { decisionId, patientId: m.merged_id, action: 'unmerged', rule: 'manual' };
    });
  }

  /**
   * A PAM merge (A40): the establishment says its IPP `merged` is the same person as `survivor`.
   * The merged IPP is kept (status `merged`, still resolving) so late messages naming it land right;
   * when the two IPPs designate two DCC patients, those patients merge.
   */
  mergeIdentifiers(survivor: IdentifierRef, merged: IdentifierRef, ctx: ActionContext): Decision {
    return this.atomic(() => {
      const s = this.findIdentifier(survivor.finess, survivor.ipp);
      const m = this.findIdentifier(merged.finess, merged.ipp);
      if (s === null && m === null) {
        throw new PatientStoreError(
          'IDENTIFIER_UNKNOWN',
          `neither ${survivor.ipp}@${survivor.finess} nor ${merged.ipp}@${merged.finess} is known`,
          'send the surviving identity (A28 or A31) before the merge, or replay the merge after it',
        );
      }
      if (m === null) {
        const patientId = this.resolvePatient(s!.patientId)!;
        const decisionId = this.journal({
          patientId,
          action: 'unchanged',
          rule: 'pam-merge',
          ctx,
          detail: { survivor, merged, note: 'merged identifier unknown' },
        });
        return { decisionId, patientId, action: 'unchanged', rule: 'pam-merge' };
      }
      if (s === null) {
        this.sql.insertIdentifier.run({
          finess: survivor.finess,
          ipp: survivor.ipp,
          namespace: survivor.namespace ?? null,
          patient_id: m.patientId,
          identity: JSON.stringify(m.identity),
          at: this.at(),
          message_id: ctx.messageId ?? null,
        });
      }
      this.sql.setIdentifierStatus.run('merged', survivor.ipp, this.at(), m.id);
      const survivorPatient = this.resolvePatient(s?.patientId ?? m.patientId)!;
      const mergedPatient = this.resolvePatient(m.patientId)!;
      if (survivorPatient !== mergedPatient)
        return this.absorb(survivorPatient, mergedPatient, ctx, 'pam-merge', m.id);
      const decisionId = this.journal({
        patientId: survivorPatient,
        action: 'identifier-merged',
        rule: 'pam-merge',
        ctx,
        detail: { survivor, merged },
      });
      return { decisionId, patientId: survivorPatient, action: 'identifier-merged', rule: 'pam-merge' };
    });
  }

  /** A PAM identifier change (A47) within one establishment. */
  changeIdentifier(finess: string, oldIpp: string, newIpp: string, ctx: ActionContext): Decision {
    return this.atomic(() => {
      const old = this.findIdentifier(finess, oldIpp);
      if (old === null) {
        throw new PatientStoreError(
          'IDENTIFIER_UNKNOWN',
          `IPP ${oldIpp}@${finess} is not known`,
          'send the identity (A28) before changing its identifier',
        );
      }
      if (this.findIdentifier(finess, newIpp) !== null) {
        throw new PatientStoreError(
          'IDENTIFIER_TAKEN',
          `IPP ${newIpp}@${finess} already designates a patient`,
          'two IPPs of one person are merged with an A40, not renamed with an A47',
        );
      }
      this.sql.renameIdentifier.run(newIpp, this.at(), old.id);
      const patientId = this.resolvePatient(old.patientId)!;
      const decisionId = this.journal({
        patientId,
        action: 'identifier-changed',
        rule: 'pam-change-identifier',
        ctx,
        detail: { finess, oldIpp, newIpp },
      });
      return { decisionId, patientId, action: 'identifier-changed', rule: 'pam-change-identifier' };
    });
  }

  /**
   * Undoes a wrong link of an establishment's IPP: the IPP moves to a new patient built from the
   * identity that establishment last sent.
   */
  detachIdentifier(ref: IdentifierRef, ctx: ActionContext): Decision {
    return this.atomic(() => {
      const found = this.findIdentifier(ref.finess, ref.ipp);
      if (found === null) {
        throw new PatientStoreError(
          'IDENTIFIER_UNKNOWN',
          `IPP ${ref.ipp}@${ref.finess} is not known`,
          'check the IPP and FINESS',
        );
      }
      const from = this.resolvePatient(found.patientId)!;
      const patientId = this.create(found.identity, ctx);
      this.sql.moveIdentifier.run(patientId, this.at(), found.id);
      const decisionId = this.journal({
        patientId,
        otherPatientId: from,
        action: 'identifier-detached',
        rule: 'manual',
        ctx,
        detail: { finess: ref.finess, ipp: ref.ipp },
      });
      return { decisionId, patientId, action: 'identifier-detached', rule: 'manual' };
    });
  }

  /** Records that two patients are the same person while keeping them apart (PAM A24, or a reviewer's choice). */
  link(aId: number, bId: number, ctx: ActionContext, rule = 'manual'): Decision {
    return this.atomic(() => {
      const [a, b] = [this.mustResolve(aId), this.mustResolve(bId)].sort((x, y) => x - y) as [number, number];
      if (a === b) {
        throw new PatientStoreError(
          'LINK_SELF',
          `patients ${aId} and ${bId} are already one patient`,
          'nothing to link',
        );
      }
      const decisionId = this.journal({
        patientId: a,
        otherPatientId: b,
        action: 'patients-linked',
        rule,
        ctx,
      });
      if (this.sql.activeLink.get(a, b) === undefined) this.sql.insertLink.run(a, b, decisionId);
      return { decisionId, patientId: a, action: 'patients-linked', rule };
    });
  }

  unlink(aId: number, bId: number, ctx: ActionContext, rule = 'manual'): Decision {
    return this.atomic(() => {
      const [a, b] = [this.mustResolve(aId), this.mustResolve(bId)].sort((x, y) => x - y) as [number, number];
      const linkId = this.sql.activeLink.get(a, b) as number | undefined;
      if (linkId === undefined) {
        throw new PatientStoreError(
          'LINK_UNKNOWN',
          `patients ${aId} and ${bId} are not linked`,
          'check the two patient ids',
        );
      }
      const decisionId = this.journal({
        patientId: a,
        otherPatientId: b,
        action: 'patients-unlinked',
        rule,
        ctx,
      });
      this.sql.unlink.run(decisionId, linkId);
      return { decisionId, patientId: a, action: 'patients-unlinked', rule };
    });
  }

  /**
   * Finds live patients by birth or used name prefix (accents and case ignored; text after a comma
   * is a given-name prefix: `dupont, jean`), by INS matricule, or by IPP. Name results come in
   * keyset pages ordered by name; INS and IPP hits fit one page.
   */
  search(q: string, options: { limit?: number; after?: string | null } = {}): Page<PatientSummary> {
    const limit = Math.min(Math.max(options.limit ?? 50, 1), 500);
    const compact = q.replace(/\s+/g, '');
    if (/\d/.test(compact)) {
      const ids = new Set<number>();
      for (const r of this.sql.searchIns.all(compact, limit) as PatientRow[]) ids.add(r.id);
      for (const pid of this.sql.identifiersByIpp.all(compact) as number[])
        ids.add(this.resolvePatient(pid)!);
      return { items: [...ids].slice(0, limit).map((id) => summary(this.get(id)!)), next: null };
    }
    const [namePart, givenPart] = q.split(',', 2);
    const prefix = foldName(namePart ?? '');
    if (prefix.length < MIN_SEARCH_CHARS) {
      throw new PatientStoreError(
        'SEARCH_TOO_SHORT',
        `search text "${q}" is too short`,
        `type at least ${MIN_SEARCH_CHARS} letters of the name, an INS or an IPP`,
      );
    }
    const [afterName, afterId] = options.after ? decodeCursor(options.after) : ['', 0];
    const rows = this.sql.searchNames.all({
      from: prefix,
      to: `${prefix}\u007f`,
      after_name: afterName,
      after_id: afterId,
      given: `% ${foldName(givenPart ?? '')}%`,
      limit: limit + 1,
    }) as Array<PatientRow & { search_name: string }>;
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    return {
      items: page.map((r) => summary(toPatient(r))),
      next: rows.length > limit && last ? encodeCursor([last.search_name, last.id]) : null,
    };
  }

  /** A patient with its identities per establishment, merges, links and decision history; follows merges. */
  view(id: number): PatientView | null {
    const resolved = this.resolvePatient(id);
    if (resolved === null) return null;
    const family = this.family(resolved);
    const ids = JSON.stringify(family);
    const links = (
      this.sql.linksOf.all(ids, ids) as Array<{ patient_a: number; patient_b: number; decision_id: number }>
    ).map((l) => ({
      patientId: family.includes(l.patient_a) ? l.patient_b : l.patient_a,
      decisionId: l.decision_id,
    }));
    const merges = (
      this.sql.mergesOf.all(ids, ids) as Array<{
        id: number;
        survivor_id: number;
        merged_id: number;
        decision_id: number;
        undo_decision_id: number | null;
      }>
    ).map((m) => ({
      mergeId: m.id,
      survivorId: m.survivor_id,
      mergedId: m.merged_id,
      decisionId: m.decision_id,
      undone: m.undo_decision_id !== null,
    }));
    return {
      patient: this.get(resolved)!,
      requestedId: id,
      family,
      identifiers: this.identifiers(resolved),
      links,
      merges,
      history: (this.sql.history.all(ids, ids) as DecisionRow[]).map(toDecision),
    };
  }
}

function summary(p: PatientRecord): PatientSummary {
  return {
    id: p.id,
    birthName: p.birthName,
    firstGivenName: p.firstGivenName,
    usedName: p.usedName,
    birthDate: p.birthDate,
    sex: p.sex,
    reliability: p.reliability,
    ins: p.ins,
  };
}
