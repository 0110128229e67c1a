// Tables of the patient store (migrations) and the mapping between their rows and the model.
import type { Migration } from './db.ts';
import { blockingKeys, type Sex } from './identity-match.ts';
import type {
  DecisionAction,
  DecisionRecord,
  IdentifierRecord,
  Identity,
  PatientRecord,
  Reliability,
} from './patient-model.ts';

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
  {
    version: 402,
    name: 'death date and indicator (PID-29, PID-30)',
    up: `
      ALTER TABLE patients ADD COLUMN death_date TEXT;
      ALTER TABLE patients ADD COLUMN deceased INTEGER CHECK (deceased IN (0, 1));
    `,
  },
  {
    version: 403,
    name: 'search by every word of the birth and used names and by any given name',
    // Folding names is code, not SQL: the store reindexes the patients listed here when it opens.
    up: `
      CREATE TABLE patient_search_pending (patient_id INTEGER PRIMARY KEY);
      INSERT INTO patient_search_pending SELECT id FROM patients;
    `,
  },
  {
    version: 404,
    name: 'candidate blocks that cover the birth date and name: most candidates are told apart without reading their row',
    up: `
      DROP INDEX patients_birth_date;
      DROP INDEX patients_name_year_block;
      DROP INDEX patients_name_day_block;
      -- merged_into last: its value is implied, but an index holding it is covering for the blocks' query.
      CREATE INDEX patients_birth_date ON patients (birth_date, birth_name, merged_into) WHERE merged_into IS NULL;
      CREATE INDEX patients_name_year_block ON patients (name_year_block, birth_date, birth_name, merged_into)
        WHERE merged_into IS NULL;
      CREATE INDEX patients_name_day_block ON patients (name_day_block, birth_date, birth_name, merged_into)
        WHERE merged_into IS NULL;
    `,
  },
  {
    version: 405,
    name: 'no index that only writes pay for: search keys deleted by their key, an IPP found through its establishment',
    // patient_search_patient served only the deletion of a patient's keys, which now names them;
    // patient_identifiers_ipp only the dashboard's search by IPP, which walks the FINESS of the
    // (finess, ipp) index instead. Three index entries fewer per identity filed.
    up: `
      DROP INDEX patient_search_patient;
      DROP INDEX patient_identifiers_ipp;
    `,
  },
];

export interface PatientRow {
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
  death_date: string | null;
  deceased: 0 | 1 | null;
  merged_into: number | null;
  created_at: string;
  updated_at: string;
  source_message_id: number | null;
}

export interface IdentifierRow {
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

export interface DecisionRow {
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

export function toPatient(r: PatientRow): PatientRecord {
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
    deathDate: r.death_date,
    deceased: r.deceased === null ? null : r.deceased === 1,
    mergedInto: r.merged_into,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    sourceMessageId: r.source_message_id,
  };
}

/** What the candidate search compares of a patient. */
export type CandidateRecord = Pick<
  PatientRecord,
  | 'id'
  | 'birthName'
  | 'givenNames'
  | 'firstGivenName'
  | 'birthDate'
  | 'sex'
  | 'birthPlace'
  | 'reliability'
  | 'ins'
>;

/** The columns of a candidate, read as an array (`raw()`): no object per row to build and drop. */
export const CANDIDATE_COLUMNS =
  'id, birth_name, given_names, first_given_name, birth_date, sex, birth_place, reliability, ins_matricule, ins_oid, ins_status';

export type CandidateRow = [
  number,
  string,
  string,
  string,
  string,
  Sex,
  string | null,
  Reliability,
  string | null,
  string | null,
  Reliability | null,
];

export function toCandidate(r: CandidateRow): CandidateRecord {
  const [
    id,
    birthName,
    givenNames,
    firstGivenName,
    birthDate,
    sex,
    birthPlace,
    reliability,
    matricule,
    oid,
    status,
  ] = r;
  return {
    id,
    birthName,
    givenNames,
    firstGivenName,
    birthDate,
    sex,
    birthPlace,
    reliability,
    // As toPatient reads it.
    ins: matricule !== null && oid !== null ? { matricule, oid, status: status ?? reliability } : null,
  };
}

export function toIdentifier(r: IdentifierRow): IdentifierRecord {
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

export function toDecision(r: DecisionRow): DecisionRecord {
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

export function traitParams(i: Identity): Record<string, string | null> {
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
