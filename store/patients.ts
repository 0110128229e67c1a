// The patient store as the engine uses it: records, the merge and link graph, and the reads the
// dashboard asks for (search, the patient view). The model, schema, records and graph live in
// patient-*.ts; this module re-exports what callers import.
import type { Db } from './db.ts';
import { foldName } from './identity-match.ts';
import {
  PatientStoreError,
  type Page,
  type PatientRecord,
  type PatientSummary,
  type PatientView,
  type ActionContext,
  type Decision,
} from './patient-model.ts';
import { toDecision, toPatient, type DecisionRow, type PatientRow } from './patient-schema.ts';
import { PatientGraph } from './patient-graph.ts';
import type { PatientStoreOptions } from './patient-records.ts';

export * from './patient-model.ts';
export { patientMigrations } from './patient-schema.ts';
export type { PatientStoreOptions } from './patient-records.ts';

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

/** A birth name alone is long enough to find a patient; search below that is noise. */
const MIN_SEARCH_CHARS = 2;

/** What a reviewer may do to a patient's identity from the dashboard. */
export type PatientAct = 'merge' | 'unmerge' | 'link' | 'unlink' | 'detach';

export class PatientStore extends PatientGraph {
  private readonly reads;

  constructor(db: Db, options: PatientStoreOptions = {}) {
    super(db, options);
    const p = (s: string) => db.prepare(s);
    this.reads = {
      // The IPP under each FINESS in turn, the FINESS walked through the (finess, ipp) index one
      // by one: a region has a few hundred establishments, and no index by IPP alone to write.
      identifiersByIpp: p(`WITH RECURSIVE f(finess) AS (
                             SELECT min(finess) FROM patient_identifiers
                             UNION ALL SELECT (SELECT min(finess) FROM patient_identifiers WHERE finess > f.finess)
                               FROM f WHERE f.finess IS NOT NULL)
                           SELECT i.patient_id FROM f JOIN patient_identifiers i ON i.finess = f.finess AND i.ipp = ?
                           ORDER BY i.patient_id`).pluck(),
      history: p(`SELECT * FROM identity_decisions WHERE patient_id IN (SELECT value FROM json_each(?))
                  OR other_patient_id IN (SELECT value FROM json_each(?)) ORDER BY id DESC LIMIT 200`),
      mergesOf: p(`SELECT * FROM patient_merges WHERE survivor_id IN (SELECT value FROM json_each(?))
                   OR merged_id IN (SELECT value FROM json_each(?)) ORDER BY id`),
      linksOf: p(`SELECT patient_a, patient_b, decision_id FROM patient_links WHERE unlink_decision_id IS NULL
                  AND (patient_a IN (SELECT value FROM json_each(?)) OR patient_b IN (SELECT value FROM json_each(?)))`),
      searchNames:
        // A patient found by several of its names comes once, at its first matching name.
        p(`SELECT p.*, MIN(s.name) AS search_name FROM patient_search s JOIN patients p ON p.id = s.patient_id
                      WHERE s.name >= @from AND s.name < @to
                        AND (' ' || s.given) LIKE @given AND p.merged_into IS NULL
                      GROUP BY p.id HAVING (MIN(s.name), p.id) > (@after_name, @after_id)
                      ORDER BY search_name, p.id LIMIT @limit`),
      searchIns: p(
        'SELECT * FROM patients WHERE ins_matricule = ? AND merged_into IS NULL ORDER BY id LIMIT ?',
      ),
    };
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
      for (const r of this.reads.searchIns.all(compact, limit) as PatientRow[]) ids.add(r.id);
      for (const pid of this.reads.identifiersByIpp.all(compact) as number[])
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
    const rows = this.reads.searchNames.all({
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

  /**
   * An identity-vigilance act of a reviewer on patient `id` (the dashboard): merge it into `other`,
   * undo its merge, link or unlink the pair, or detach one of its IPPs. One method, so that the
   * check of the IPP and the act share the writer's transaction.
   */
  act(
    action: PatientAct,
    id: number,
    body: { other?: number; finess?: string; ipp?: string },
    ctx: ActionContext,
  ): Decision {
    const { other, finess, ipp } = body;
    switch (action) {
      case 'merge':
        return this.merge(other!, id, ctx);
      case 'unmerge':
        return this.unmerge(id, ctx);
      case 'link':
        return this.link(id, other!, ctx);
      case 'unlink':
        return this.unlink(id, other!, ctx);
      case 'detach':
        if (this.resolveIdentifier({ finess: finess!, ipp: ipp! }) !== this.resolvePatient(id)) {
          throw Object.assign(new Error(`IPP ${ipp} of FINESS ${finess} is not one of patient ${id}'s`), {
            code: 'IDENTIFIER_NOT_OF_PATIENT',
          });
        }
        return this.detachIdentifier({ finess: finess!, ipp: ipp! }, ctx);
    }
  }

  /** A patient with its identities per establishment, merges, links and decision history; follows merges. */
  view(id: number): PatientView | null {
    const resolved = this.resolvePatient(id);
    if (resolved === null) return null;
    const family = this.family(resolved);
    const ids = JSON.stringify(family);
    const links = (
      this.reads.linksOf.all(ids, ids) as Array<{ patient_a: number; patient_b: number; decision_id: number }>
    ).map((l) => ({
      patientId: family.includes(l.patient_a) ? l.patient_b : l.patient_a,
      decisionId: l.decision_id,
    }));
    const merges = (
      this.reads.mergesOf.all(ids, ids) as Array<{
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
      history: (this.reads.history.all(ids, ids) as DecisionRow[]).map(toDecision),
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
