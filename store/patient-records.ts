// The patient records: identities, identifiers per establishment, and the journal of every identity
// decision. Matching rules live in vigilance.ts; this module only records.
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
import type { Db } from './db.ts';
import { blockingKeys, foldName } from './identity-match.ts';
import {
  PatientStoreError,
  type ActionContext,
  type DecisionAction,
  type IdentifierRecord,
  type IdentifierRef,
  type Identity,
  type PatientRecord,
} from './patient-model.ts';
import {
  CANDIDATE_COLUMNS,
  toCandidate,
  toIdentifier,
  toPatient,
  traitParams,
  type CandidateRecord,
  type CandidateRow,
  type IdentifierRow,
  type PatientRow,
} from './patient-schema.ts';

export interface PatientStoreOptions {
  /** Clock for the journal; tests pin it. */
  now?: () => Date;
}

/** Upper bound of a candidate block: a bigger block means a blocking key gone bad, not a real cohort. */
const MAX_CANDIDATES = 500;

export class PatientRecords {
  private readonly now: () => Date;
  protected readonly sql;

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
      // The three blocks, unioned from their covering indexes alone (migration 404): the id, and the
      // birth date and name that most candidates are told apart by; lowest ids first, as ever.
      blocks:
        p(`SELECT id, birth_date, birth_name FROM patients WHERE birth_date = @birth_date AND merged_into IS NULL
                 UNION SELECT id, birth_date, birth_name FROM patients WHERE name_year_block = @name_year_block AND merged_into IS NULL
                 UNION SELECT id, birth_date, birth_name FROM patients WHERE name_day_block = @name_day_block AND merged_into IS NULL
                 ORDER BY id LIMIT ${MAX_CANDIDATES}`).raw(),
      candidate: p(`SELECT ${CANDIDATE_COLUMNS} FROM patients WHERE id = ?`).raw(),
      insert:
        p(`INSERT INTO patients (birth_name, given_names, first_given_name, birth_date, sex, birth_place,
                   used_name, used_given_name, ins_matricule, ins_oid, ins_status, reliability, collection_mode,
                   death_date, deceased,
                   name_year_block, name_day_block, created_at, updated_at, source_message_id)
                 VALUES (@birth_name, @given_names, @first_given_name, @birth_date, @sex, @birth_place,
                   @used_name, @used_given_name, @ins_matricule, @ins_oid, @ins_status, @reliability, @collection_mode,
                   @death_date, @deceased,
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
      updateDeath: p(`UPDATE patients SET death_date = @death_date, deceased = @deceased, updated_at = @at,
                   source_message_id = @message_id WHERE id = @id`),
      deleteSearch: p('DELETE FROM patient_search WHERE name = ? AND patient_id = ?'),
      insertSearch: p('INSERT OR IGNORE INTO patient_search (name, patient_id, given) VALUES (?, ?, ?)'),
      identifier: p('SELECT * FROM patient_identifiers WHERE finess = ? AND ipp = ?'),
      identifierPatient: p('SELECT patient_id FROM patient_identifiers WHERE finess = ? AND ipp = ?').pluck(),
      identifierRow: p('SELECT id, patient_id FROM patient_identifiers WHERE finess = ? AND ipp = ?').raw(),
      identifiersOf: p(`SELECT * FROM patient_identifiers WHERE patient_id IN (SELECT value FROM json_each(?))
                        ORDER BY finess, ipp`),
      identifierRefsOf:
        p(`WITH RECURSIVE f(id) AS (SELECT ? UNION SELECT p.id FROM patients p JOIN f ON p.merged_into = f.id
                           WHERE p.merged_into IS NOT NULL)
                         SELECT finess, ipp FROM patient_identifiers WHERE patient_id IN f`),
      insertIdentifier:
        p(`INSERT INTO patient_identifiers (finess, ipp, namespace, patient_id, identity, created_at,
                   updated_at, source_message_id) VALUES (@finess, @ipp, @namespace, @patient_id, @identity, @at, @at, @message_id)`),
      refreshIdentifier:
        p(`UPDATE patient_identifiers SET identity = @identity, namespace = COALESCE(@namespace, namespace),
                   updated_at = @at, source_message_id = @message_id WHERE id = @id`),
      journal:
        p(`INSERT INTO identity_decisions (at, patient_id, other_patient_id, action, rule, message_id, author, input, detail)
                  VALUES (@at, @patient_id, @other_patient_id, @action, @rule, @message_id, @author, @input, @detail)`),
    };
    this.reindexPending();
  }

  /** Own transaction when called alone, a savepoint inside the caller's: each action is all or nothing. */
  protected atomic<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  /** The last timestamp written: an identity writes three or four in the same millisecond. */
  private lastAt = { ms: Number.NaN, iso: '' };

  protected at(): string {
    const now = this.now();
    const ms = now.getTime();
    if (ms !== this.lastAt.ms) this.lastAt = { ms, iso: now.toISOString() };
    return this.lastAt.iso;
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

  protected mustResolve(id: number): number {
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

  /** The FINESS and IPP of every identifier of the patient and its merged patients: `identifiers` without their identities. */
  identifierRefs(id: number): Array<{ finess: string; ipp: string }> {
    return this.sql.identifierRefsOf.all(id) as Array<{ finess: string; ipp: string }>;
  }

  findIdentifier(finess: string, ipp: string): IdentifierRecord | null {
    const row = this.sql.identifier.get(finess, ipp) as IdentifierRow | undefined;
    return row ? toIdentifier(row) : null;
  }

  /** The surviving patient an establishment's IPP designates, or null. */
  resolveIdentifier(ref: IdentifierRef): number | null {
    const patientId = this.sql.identifierPatient.get(ref.finess, ref.ipp) as number | undefined;
    return patientId === undefined ? null : this.resolvePatient(patientId);
  }

  /** Live patients carrying this INS. */
  findByIns(matricule: string, oid: string): number[] {
    return this.sql.byIns.all(matricule, oid) as number[];
  }

  /**
   * Live patients sharing the birth date or a name block: the only rows a match looks at (at most
   * MAX_CANDIDATES, lowest ids first). Most are other people: `keep` (e.g. `couldBeClose`) sees each
   * one's birth date and birth name, read from the blocks' indexes, and only the rows it keeps are
   * read, with only the columns a match compares.
   */
  candidates(
    identity: Identity,
    keep: (c: { birthDate: string; birthName: string }) => boolean = () => true,
  ): CandidateRecord[] {
    const { nameYear, nameDay } = blockingKeys(identity);
    const blocks = this.sql.blocks.all({
      birth_date: identity.birthDate,
      name_year_block: nameYear,
      name_day_block: nameDay,
    }) as Array<[number, string, string]>;
    return blocks
      .filter(([, birthDate, birthName]) => keep({ birthDate, birthName }))
      .map(([id]) => toCandidate(this.sql.candidate.get(id) as CandidateRow));
  }

  create(identity: Identity, ctx: ActionContext): number {
    const at = this.at();
    const id = Number(
      this.sql.insert.run({
        ...traitParams(identity),
        used_name: identity.usedName,
        used_given_name: identity.usedGivenName,
        death_date: identity.deathDate ?? null,
        deceased: deceasedParam(identity.deceased ?? null),
        at,
        message_id: ctx.messageId ?? null,
      }).lastInsertRowid,
    );
    this.indexSearch(id, identity);
    return id;
  }

  /** Replaces strict traits, INS and reliability; the vigilance rules decide whether it may. */
  writeTraits(id: number, identity: Identity, ctx: ActionContext): void {
    const before = this.get(id)!;
    this.sql.updateTraits.run({
      ...traitParams(identity),
      id,
      at: this.at(),
      message_id: ctx.messageId ?? null,
    });
    this.reindexSearch(id, before, this.get(id)!);
  }

  /** Death is not a strict trait: any source may report it, as it may a used name. */
  writeDeath(id: number, deathDate: string | null, deceased: boolean | null, ctx: ActionContext): void {
    this.sql.updateDeath.run({
      id,
      death_date: deathDate,
      deceased: deceasedParam(deceased),
      at: this.at(),
      message_id: ctx.messageId ?? null,
    });
  }

  writeUsedNames(
    id: number,
    usedName: string | null,
    usedGivenName: string | null,
    ctx: ActionContext,
  ): void {
    const before = this.get(id)!;
    this.sql.updateUsed.run({
      id,
      used_name: usedName,
      used_given_name: usedGivenName,
      at: this.at(),
      message_id: ctx.messageId ?? null,
    });
    this.reindexSearch(id, before, this.get(id)!);
  }

  /** Replaces the search keys of a patient's names `before` by those of its names `after`. */
  private reindexSearch(id: number, before: SearchNames, after: SearchNames): void {
    for (const key of searchKeys(before).keys) this.sql.deleteSearch.run(key, id);
    this.indexSearch(id, after);
  }

  /** The search keys of a patient that has none yet. */
  private indexSearch(id: number, names: SearchNames): void {
    const { keys, given } = searchKeys(names);
    for (const key of keys) this.sql.insertSearch.run(key, id, given);
  }

  /** Patients whose search keys predate the current indexing (migration 403): their old keys are unknown. */
  private reindexPending(): void {
    const pending = this.db.prepare('SELECT patient_id FROM patient_search_pending').pluck();
    this.atomic(() => {
      const ids = pending.all() as number[];
      if (ids.length === 0) return;
      // One pass over the keys: they have no index by patient.
      this.db.exec(
        'DELETE FROM patient_search WHERE patient_id IN (SELECT patient_id FROM patient_search_pending)',
      );
      for (const id of ids) {
        const patient = this.get(id);
        if (patient !== null) this.indexSearch(id, patient);
      }
      this.db.exec('DELETE FROM patient_search_pending');
    });
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
    const found = this.sql.identifierRow.get(ref.finess, ref.ipp) as [number, number] | undefined;
    const params = { identity: JSON.stringify(identity), at: this.at(), message_id: ctx.messageId ?? null };
    if (found === undefined) {
      this.sql.insertIdentifier.run({
        ...params,
        finess: ref.finess,
        ipp: ref.ipp,
        namespace: ref.namespace ?? null,
        patient_id: patientId,
      });
      return 'attached';
    }
    const [identifierId, owner] = found;
    if (this.resolvePatient(owner) !== this.resolvePatient(patientId)) return 'elsewhere';
    this.sql.refreshIdentifier.run({ ...params, id: identifierId, namespace: ref.namespace ?? null });
    return 'refreshed';
  }
}

type SearchNames = Pick<Identity, 'birthName' | 'usedName' | 'givenNames' | 'usedGivenName'>;

/**
 * A patient is found by its birth and used names, whole or by any of their words (`MARTIN-LÉGER`
 * by `leger`), and by any of its given names.
 */
function searchKeys(i: SearchNames): { keys: Set<string>; given: string } {
  const given = foldName(`${i.givenNames} ${i.usedGivenName ?? ''}`);
  const keys = new Set(given.split(' '));
  for (const name of [i.birthName, i.usedName]) {
    if (name === null) continue;
    const folded = foldName(name);
    keys.add(folded);
    for (const word of folded.split(' ')) keys.add(word);
  }
  keys.delete('');
  return { keys, given };
}

function deceasedParam(deceased: boolean | null): 0 | 1 | null {
  return deceased === null ? null : deceased ? 1 : 0;
}
