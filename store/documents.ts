// Clinical documents in the core store: one document per report, every version kept, filed on the
// patient its identifiers and traits designate through the identity-vigilance rules — never on a
// guess. A document no rule designates waits (unmatched) and is attached as soon as an identity
// that designates it is filed; traits that are only close open review items for a person to decide.
//
// The rules, most certain first, as for identities (one function decides for both: `designate` in
// identity-match.ts), except that a document never creates a patient nor picks one of several:
//   1. ipp-known      an IPP of the report designates a patient (two patients: review, not filed);
//   2. ins-qualified  the report's INS (accepted OID) is carried by exactly one QUAL patient;
//   3. strict-traits  equal strict traits on exactly one live patient (or review, as configured);
//   4. near-match     close traits: review items, the document waits;
//   5. no-match       the document waits.
//
// Writes are synchronous methods over plain data (the writer runs them in its transaction); reads
// for pages and the API run on the caller's connection.
import type { Db } from './db.ts';
import { OncoError } from '../config/errors.ts';
import type { BlobFiles, BlobRef } from './blob-files.ts';
import type { Filed } from './filing.ts';
import {
  compareIdentities,
  couldBeClose,
  designate,
  normaliseBirthDate,
  type Designation,
} from './identity-match.ts';
import {
  parseIdentity,
  PatientStoreError,
  type ActionContext,
  type IdentifierRef,
  type Identity,
  type Page,
  type PatientRecord,
  type PatientStore,
} from './patients.ts';

export { documentMigrations, flattenDocumentShards } from './document-schema.ts';

export type DocumentKind = 'pathology' | 'molecular';
export type VersionStatus = 'final' | 'replacement' | 'deletion';

export interface CodedValue {
  code: string;
  system?: string;
  display?: string;
}

export interface FindingInput extends CodedValue {
  /** adicap, icdo3-topography, icdo3-morphology, tnm, snomed-ct, icd10, other. */
  kind: string;
}

export interface VariantInput {
  gene: string;
  referenceSequence?: string;
  dnaChange?: string;
  proteinChange?: string;
  classification?: CodedValue;
  interpretation?: CodedValue[];
}

/** Who the sender says the report is about. */
export interface DocumentPatient {
  /** IPPs under the FINESS of their establishment. */
  identifiers: IdentifierRef[];
  ins?: { matricule: string; oid: string } | null;
  birthName?: string;
  firstGivenName?: string;
  givenNames?: string[];
  birthDate?: string;
  sex?: string;
  birthPlace?: string;
}

/**
 * A document's bytes as the filing receives them: in the call, or (`blob`) a file the journal keeps
 * already, which the filing links instead of writing again (store/blob-files.ts, `linkNow`).
 */
export type DocumentBytes = { mediaType: string } & ({ bytes: Uint8Array } | { blob: BlobRef });

/** A report as the store files it; the document writer maps the report model to it. */
export interface DocumentInput {
  kind: DocumentKind;
  format: string;
  documentType?: CodedValue;
  template?: string;
  title?: string;
  reportDate?: string;
  author?: { rpps?: string; name?: string };
  lab?: { finess?: string; name?: string };
  ids: { uniqueId?: string; setId?: string; version?: number; status: VersionStatus; replaces?: string };
  orderNumber?: string;
  conclusion?: string;
  text?: string;
  specimens: unknown[];
  findings: FindingInput[];
  variants: VariantInput[];
  genesAnalysed: string[];
  patient: DocumentPatient;
  original: DocumentBytes;
  attachments: DocumentBytes[];
}

/** Where the document came from: the message, and the file or the mail it came in. */
export interface Provenance {
  messageId: number | null;
  channel: string | null;
  fileName?: string | null;
  mail?: string | null;
  sender?: string | null;
  /** FINESS of the authenticated sender. */
  owner?: string | null;
}

export interface DocumentRules {
  /** Equal strict traits: file on that patient (`link`) or open a review item (`review`). */
  strictTraitsMatch: 'link' | 'review';
  /** Score (0..1) from which close traits open a review item. */
  nearMatchThreshold: number;
  /** Review items opened at most for one document, closest first. */
  maxReviews: number;
}

export const defaultDocumentRules: DocumentRules = {
  strictTraitsMatch: 'link',
  nearMatchThreshold: 0.9,
  maxReviews: 3,
};

/** The filing settings of a channel: kept with the document, so that a later match uses the same. */
export interface MatchSettings {
  /** INS OIDs this channel may match on (the identity writer's `acceptedInsOids`). */
  insOids: string[];
  rules?: Partial<DocumentRules>;
}

export interface FilingContext extends MatchSettings {
  provenance: Provenance;
}

export interface FilingResult {
  documentId: number;
  versionId: number;
  version: number;
  /** filed on a patient, waiting for one, waiting with review items, duplicate of a version, deleted. */
  action: 'filed' | 'waiting' | 'review' | 'duplicate' | 'deleted';
  patientId: number | null;
  rule: string;
  reviewIds: number[];
  /** The DCC order this result answered and closed (its number), when it carried one the DCC issued. */
  orderClosed?: string;
}

export interface DocumentSummary {
  id: number;
  kind: DocumentKind;
  title: string | null;
  date: string | null;
  /** The document's state: final, replacement (its newest version replaced an earlier one) or deleted. */
  status: 'final' | 'replacement' | 'deleted';
  formatCode: string | null;
  source: string;
  format: string;
  version: number;
  labFiness: string | null;
  patientId: number | null;
  match: 'filed' | 'waiting' | 'review';
  hasPdf: boolean;
  hasCda: boolean;
}

export interface VersionRecord {
  id: number;
  version: number;
  senderVersion: number | null;
  uniqueId: string | null;
  status: VersionStatus;
  replaces: string | null;
  format: string;
  documentType: CodedValue | null;
  template: string | null;
  title: string | null;
  reportDate: string | null;
  author: { rpps: string | null; name: string | null };
  lab: { finess: string | null; name: string | null };
  orderNumber: string | null;
  conclusion: string | null;
  text: string | null;
  specimens: unknown[];
  genesAnalysed: string[];
  mediaType: string;
  sha256: string;
  size: number;
  provenance: Provenance;
  filedAt: string;
  attachments: Array<{ id: number; mediaType: string; sha256: string; size: number }>;
}

export interface FindingRecord extends FindingInput {
  documentId: number;
  versionId: number;
}

export interface VariantRecord extends VariantInput {
  documentId: number;
  versionId: number;
}

export interface DocumentReview {
  id: number;
  documentId: number;
  candidateId: number;
  score: number;
  reasons: string[];
  status: 'open' | 'attached' | 'closed';
  openedAt: string;
  resolvedBy: string | null;
  resolvedAt: string | null;
}

export interface DocumentEvent {
  id: number;
  at: string;
  versionId: number | null;
  action: string;
  rule: string;
  patientId: number | null;
  messageId: number | null;
  author: string | null;
  detail: unknown;
}

export interface DocumentRecord extends DocumentSummary {
  owner: string | null;
  matchRule: string;
  createdAt: string;
  updatedAt: string;
  /** Every version received, oldest first. */
  versions: VersionRecord[];
  /** Findings and variants of the current version (the newest that is not a deletion). */
  findings: FindingRecord[];
  variants: VariantRecord[];
  reviews: DocumentReview[];
  events: DocumentEvent[];
}

/** An unfiled document in the vigilance queue: who the sender said, and the close candidates. */
export interface WaitingDocument {
  id: number;
  kind: DocumentKind;
  title: string | null;
  date: string | null;
  match: 'waiting' | 'review';
  rule: string;
  owner: string | null;
  labFiness: string | null;
  /** As the sender identified the patient: for the reviewer's eyes only (never logged). */
  patient: DocumentPatient;
  reviews: DocumentReview[];
  since: string;
}

export class DocumentError extends OncoError {
  declare readonly hint: string;
  constructor(code: string, message: string, hint: string) {
    super(code, { message, hint });
  }
}

interface DocumentRow {
  id: number;
  kind: DocumentKind;
  set_id: string | null;
  patient_id: number | null;
  match: 'filed' | 'waiting' | 'review';
  match_rule: string;
  state: 'current' | 'deleted';
  current_version_id: number;
  owner: string | null;
  lab_finess: string | null;
  match_settings: string;
  created_at: string;
  updated_at: string;
}

interface VersionRow {
  id: number;
  document_id: number;
  version: number;
  sender_version: number | null;
  unique_id: string | null;
  status: VersionStatus;
  replaces: string | null;
  format: string;
  document_type: string | null;
  template: string | null;
  title: string | null;
  report_date: string | null;
  author_rpps: string | null;
  author_name: string | null;
  lab_finess: string | null;
  lab_name: string | null;
  order_number: string | null;
  conclusion: string | null;
  text: string | null;
  specimens: string;
  genes_analysed: string;
  patient: string;
  media_type: string;
  sha256: string;
  size: number;
  message_id: number | null;
  channel: string | null;
  file_name: string | null;
  mail: string | null;
  sender: string | null;
  owner: string | null;
  filed_at: string;
}

interface ReviewRow {
  id: number;
  document_id: number;
  candidate_id: number;
  score: number;
  reasons: string;
  status: DocumentReview['status'];
  opened_at: string;
  resolved_by: string | null;
  resolved_at: string | null;
}

const CDA_TYPES = new Set(['text/xml', 'application/xml', 'application/hl7-cda+xml']);

const opt = <T>(v: T | null | undefined): T | undefined => (v === null ? undefined : v);

function toReview(r: ReviewRow): DocumentReview {
  return {
    id: r.id,
    documentId: r.document_id,
    candidateId: r.candidate_id,
    score: r.score,
    reasons: JSON.parse(r.reasons) as string[],
    status: r.status,
    openedAt: r.opened_at,
    resolvedBy: r.resolved_by,
    resolvedAt: r.resolved_at,
  };
}

function toVersion(r: VersionRow, attachments: VersionRecord['attachments']): VersionRecord {
  return {
    id: r.id,
    version: r.version,
    senderVersion: r.sender_version,
    uniqueId: r.unique_id,
    status: r.status,
    replaces: r.replaces,
    format: r.format,
    documentType: r.document_type === null ? null : (JSON.parse(r.document_type) as CodedValue),
    template: r.template,
    title: r.title,
    reportDate: r.report_date,
    author: { rpps: r.author_rpps, name: r.author_name },
    lab: { finess: r.lab_finess, name: r.lab_name },
    orderNumber: r.order_number,
    conclusion: r.conclusion,
    text: r.text,
    specimens: JSON.parse(r.specimens) as unknown[],
    genesAnalysed: JSON.parse(r.genes_analysed) as string[],
    mediaType: r.media_type,
    sha256: r.sha256,
    size: r.size,
    provenance: {
      messageId: r.message_id,
      channel: r.channel,
      fileName: r.file_name,
      mail: r.mail,
      sender: r.sender,
      owner: r.owner,
    },
    filedAt: r.filed_at,
    attachments,
  };
}

/** The keys under which an unfiled document is found again: its IPPs, its INS, its birth date. */
function waitingKeys(p: DocumentPatient): string[] {
  const keys = p.identifiers.map((r) => `ipp:${r.finess}|${r.ipp}`);
  if (p.ins) keys.push(`ins:${p.ins.oid}|${p.ins.matricule}`);
  const birth = p.birthDate === undefined ? null : normaliseBirthDate(p.birthDate);
  if (birth !== null) keys.push(`birth:${birth}`);
  return keys;
}

function patientKeys(p: PatientRecord, identifiers: readonly IdentifierRef[]): string[] {
  const keys = identifiers.map((r) => `ipp:${r.finess}|${r.ipp}`);
  if (p.ins) keys.push(`ins:${p.ins.oid}|${p.ins.matricule}`);
  keys.push(`birth:${p.birthDate}`);
  return keys;
}

/** The report's strict traits as the identity model reads them; null when one is missing. */
function traitsOf(p: DocumentPatient): Identity | null {
  if (!p.birthName || !p.firstGivenName || !p.birthDate) return null;
  try {
    return parseIdentity({
      birthName: p.birthName,
      firstGivenName: p.firstGivenName,
      givenNames: p.givenNames ?? null,
      birthDate: p.birthDate,
      sex: p.sex ?? 'U',
      birthPlace: p.birthPlace ?? null,
      identifiers: [],
    });
  } catch (error) {
    if (error instanceof PatientStoreError) return null;
    throw error;
  }
}

export class Documents {
  private readonly sql;
  private readonly now: () => Date;
  private readonly closeOrder: (orderNumber: string, documentId: number, now: number) => boolean;

  constructor(
    readonly db: Db,
    private readonly patients: PatientStore,
    /** Where the bytes live (blobs named by their SHA-256); null for a store in memory, which cannot file documents. */
    private readonly files: BlobFiles | null,
    options: {
      now?: () => Date;
      /** Closes the molecular order a result answers; false for an order the DCC never issued. */
      closeOrder?: (orderNumber: string, documentId: number, now: number) => boolean;
    } = {},
  ) {
    this.now = options.now ?? (() => new Date());
    this.closeOrder = options.closeOrder ?? (() => false);
    const p = (s: string) => db.prepare(s);
    const versionOfDoc = `SELECT v.* FROM document_versions v WHERE v.document_id = ? ORDER BY v.version`;
    const summary = `SELECT d.*, v.title, v.report_date, v.status AS version_status, v.document_type, v.format,
        v.version, v.channel, v.file_name, v.mail, v.sender, v.id AS version_id, v.media_type,
        (SELECT COUNT(*) FROM document_attachments a WHERE a.version_id = v.id AND a.media_type = 'application/pdf') AS pdfs,
        (SELECT COUNT(*) FROM document_attachments a WHERE a.version_id = v.id
           AND a.media_type IN ('text/xml', 'application/xml', 'application/hl7-cda+xml')) AS cdas
      FROM documents d JOIN document_versions v ON v.id = d.current_version_id`;
    this.sql = {
      document: p('SELECT * FROM documents WHERE id = ?'),
      bySetId: p('SELECT * FROM documents WHERE set_id = ?'),
      versionByUniqueId: p('SELECT * FROM document_versions WHERE unique_id = ? ORDER BY id DESC LIMIT 1'),
      duplicate: p(`SELECT * FROM document_versions WHERE sha256 = ?
                    OR (unique_id = ? AND status = ?) ORDER BY id LIMIT 1`),
      lastVersion: p('SELECT MAX(version) FROM document_versions WHERE document_id = ?').pluck(),
      insertDocument:
        p(`INSERT INTO documents (kind, set_id, match, match_rule, state, owner, lab_finess, match_settings,
              created_at, updated_at) VALUES (@kind, @set_id, 'waiting', 'no-match', 'current', @owner, @lab_finess,
              @match_settings, @at, @at)`),
      insertVersion:
        p(`INSERT INTO document_versions (document_id, version, sender_version, unique_id, status, replaces, format,
              document_type, template, title, report_date, author_rpps, author_name, lab_finess, lab_name, order_number,
              conclusion, text, specimens, genes_analysed, patient, media_type, sha256, size, message_id, channel,
              file_name, mail, sender, owner, filed_at)
            VALUES (@document_id, @version, @sender_version, @unique_id, @status, @replaces, @format, @document_type,
              @template, @title, @report_date, @author_rpps, @author_name, @lab_finess, @lab_name, @order_number,
              @conclusion, @text, @specimens, @genes_analysed, @patient, @media_type, @sha256, @size, @message_id,
              @channel, @file_name, @mail, @sender, @owner, @filed_at)`),
      setCurrent: p(`UPDATE documents SET current_version_id = ?, state = 'current', match_settings = ?,
                     updated_at = ? WHERE id = ?`),
      setDeleted: p(`UPDATE documents SET state = 'deleted', updated_at = ? WHERE id = ?`),
      setMatch: p(
        `UPDATE documents SET patient_id = ?, match = ?, match_rule = ?, updated_at = ? WHERE id = ?`,
      ),
      insertAttachment: p(
        'INSERT INTO document_attachments (version_id, media_type, sha256, size) VALUES (?, ?, ?, ?)',
      ),
      insertFinding: p(
        'INSERT INTO document_findings (version_id, kind, code, system, display) VALUES (?, ?, ?, ?, ?)',
      ),
      insertVariant:
        p(`INSERT INTO document_variants (version_id, gene, reference_sequence, dna_change, protein_change,
              classification_code, classification_display, interpretation) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
      insertWaiting: p('INSERT OR IGNORE INTO document_waiting (key, document_id) VALUES (?, ?)'),
      clearWaiting: p('DELETE FROM document_waiting WHERE document_id = ?'),
      anyWaiting: p('SELECT 1 FROM document_waiting LIMIT 1').pluck(),
      waitingFor: p(`SELECT DISTINCT document_id FROM document_waiting
                     WHERE key IN (SELECT value FROM json_each(?)) ORDER BY document_id`).pluck(),
      insertReview:
        p(`INSERT OR IGNORE INTO document_reviews (document_id, candidate_id, score, reasons, opened_at)
           VALUES (?, ?, ?, ?, ?)`),
      openReviews: p(
        `SELECT * FROM document_reviews WHERE document_id = ? AND status = 'open' ORDER BY score DESC, id`,
      ),
      reviewsOf: p('SELECT * FROM document_reviews WHERE document_id = ? ORDER BY id'),
      closeReviews:
        p(`UPDATE document_reviews SET status = CASE WHEN candidate_id = ? THEN 'attached' ELSE 'closed' END,
                       resolved_by = ?, resolved_at = ? WHERE document_id = ? AND status = 'open'`),
      insertEvent:
        p(`INSERT INTO document_events (at, document_id, version_id, action, rule, patient_id, message_id, author, detail)
           VALUES (@at, @document_id, @version_id, @action, @rule, @patient_id, @message_id, @author, @detail)`),
      eventsOf: p('SELECT * FROM document_events WHERE document_id = ? ORDER BY id'),
      holdsBlob: p(`SELECT 1 FROM document_versions WHERE sha256 = ?
                    UNION ALL SELECT 1 FROM document_attachments WHERE sha256 = ? LIMIT 1`),
      versionsOf: p(versionOfDoc),
      version: p('SELECT * FROM document_versions WHERE id = ?'),
      attachmentsOf: p(
        'SELECT id, media_type, sha256, size FROM document_attachments WHERE version_id = ? ORDER BY id',
      ),
      findingsOf: p('SELECT * FROM document_findings WHERE version_id = ? ORDER BY id'),
      variantsOf: p('SELECT * FROM document_variants WHERE version_id = ? ORDER BY id'),
      summary: p(`${summary} WHERE d.id = ?`),
      ofPatients: p(`${summary} WHERE d.patient_id IN (SELECT value FROM json_each(?))
                     ORDER BY COALESCE(v.report_date, d.created_at) DESC, d.id DESC`),
      unfiled: p(`${summary} WHERE d.match <> 'filed' AND d.id > ? ORDER BY d.id LIMIT ?`),
      findingsByCode: p(`SELECT f.*, v.document_id FROM document_findings f
                         JOIN documents d ON d.current_version_id = f.version_id
                         JOIN document_versions v ON v.id = f.version_id
                         WHERE f.kind = ? AND f.code = ? AND d.state = 'current' ORDER BY f.id LIMIT ?`),
      variantsByGene: p(`SELECT x.*, v.document_id FROM document_variants x
                         JOIN documents d ON d.current_version_id = x.version_id
                         JOIN document_versions v ON v.id = x.version_id
                         WHERE x.gene = ? AND d.state = 'current' ORDER BY x.id LIMIT ?`),
    };
  }

  private at(): string {
    return this.now().toISOString();
  }

  /**
   * Files one report: keeps its bytes, recognises a duplicate, adds a version to its document (a
   * replacement) or marks the document deleted, records findings and variants, and files the
   * document on the patient the rules designate — or leaves it waiting. One transaction.
   */
  file(input: DocumentInput, ctx: FilingContext): FilingResult {
    const files = this.requireFiles();
    // Written and fsynced before the transaction that names them commits; a rollback leaves them to
    // the recovery sweep (`holdsBlob`).
    const keep = (d: DocumentBytes): BlobRef => ('blob' in d ? files.linkNow(d.blob) : files.putNow(d.bytes));
    const original = keep(input.original);
    const sha256 = original.digest;
    const attachments = input.attachments.map((a) => {
      const { digest, size } = keep(a);
      return { mediaType: a.mediaType, sha256: digest, size };
    });
    return this.db.transaction(() => {
      const { ids } = input;
      const copy = this.sql.duplicate.get(sha256, ids.uniqueId ?? null, ids.status) as VersionRow | undefined;
      if (copy !== undefined) return this.duplicate(copy, ctx);
      const existing = this.targetOf(input);
      if (ids.status === 'deletion') return this.delete(existing, input, original, ctx);
      if (existing !== null) this.checkOwner(existing, ctx.provenance.owner, 'replace');
      const documentId =
        existing?.id ??
        Number(
          this.sql.insertDocument.run({
            kind: input.kind,
            set_id: ids.setId ?? ids.uniqueId ?? null,
            owner: ctx.provenance.owner ?? null,
            lab_finess: input.lab?.finess ?? null,
            match_settings: JSON.stringify({ insOids: ctx.insOids, rules: ctx.rules ?? {} }),
            at: this.at(),
          }).lastInsertRowid,
        );
      const { versionId, version } = this.addVersion(documentId, input, original, ctx.provenance);
      for (const a of attachments) this.sql.insertAttachment.run(versionId, a.mediaType, a.sha256, a.size);
      for (const f of input.findings)
        this.sql.insertFinding.run(versionId, f.kind, f.code, f.system ?? null, f.display ?? null);
      for (const v of input.variants)
        this.sql.insertVariant.run(
          versionId,
          v.gene,
          v.referenceSequence ?? null,
          v.dnaChange ?? null,
          v.proteinChange ?? null,
          v.classification?.code ?? null,
          v.classification?.display ?? null,
          JSON.stringify(v.interpretation ?? []),
        );
      const settings = JSON.stringify({ insOids: ctx.insOids, rules: ctx.rules ?? {} });
      this.sql.setCurrent.run(versionId, settings, this.at(), documentId);
      this.event(documentId, versionId, existing === null ? 'received' : 'replaced', ids.status, {
        messageId: ctx.provenance.messageId,
      });
      const settled = this.settle(documentId, input.patient, ctx, { messageId: ctx.provenance.messageId });
      // A result that answers a DCC order closes it, in the transaction that files it.
      const closed =
        input.orderNumber !== undefined &&
        this.closeOrder(input.orderNumber, documentId, this.now().getTime());
      return {
        documentId,
        versionId,
        version,
        ...settled,
        ...(closed ? { orderClosed: input.orderNumber } : {}),
      };
    })();
  }

  /** `file` as a store writer's filing: the result is the delivery's response, with a one-line detail. */
  fileReport(input: DocumentInput, ctx: FilingContext): Filed & { response: FilingResult } {
    const result = this.file(input, ctx);
    return { response: result, detail: describeFiling(result) };
  }

  /**
   * Files again every unfiled document an identity now designates (its IPPs, INS or birth date):
   * called by identity vigilance in the transaction that filed the identity.
   */
  identityFiled(patientId: number, ctx: ActionContext): void {
    // Most identities arrive with no document waiting at all (a region's base at go-live): reading
    // the patient and its IPPs for nothing was 16 % of the bulk load's writer thread.
    if (this.sql.anyWaiting.get() === undefined) return;
    const id = this.patients.resolvePatient(patientId);
    if (id === null) return;
    const patient = this.patients.get(id)!;
    const keys = patientKeys(patient, this.patients.identifiers(id));
    for (const documentId of this.sql.waitingFor.all(JSON.stringify(keys)) as number[]) {
      const doc = this.mustGet(documentId);
      const current = this.sql.version.get(doc.current_version_id) as VersionRow;
      const settings = JSON.parse(doc.match_settings) as MatchSettings;
      this.settle(documentId, JSON.parse(current.patient) as DocumentPatient, settings, ctx, 'automatic');
    }
  }

  /** A reviewer files an unfiled document on a patient (the caller audits the act). */
  attach(documentId: number, patientId: number, ctx: { author: string; note?: string }): FilingResult {
    if (ctx.author.trim() === '')
      throw new DocumentError(
        'AUTHOR_REQUIRED',
        'attaching a document needs its author',
        'pass the login of the person deciding',
      );
    return this.db.transaction(() => {
      const doc = this.mustGet(documentId);
      if (doc.match === 'filed')
        throw new DocumentError(
          'DOCUMENT_ALREADY_FILED',
          `document ${documentId} is already filed on patient ${doc.patient_id}`,
          'reload the vigilance queue: only unfiled documents are attached by hand',
        );
      const target = this.patients.resolvePatient(patientId);
      if (target === null)
        throw new PatientStoreError('PATIENT_UNKNOWN', `no patient ${patientId}`, 'check the patient id');
      this.fileOn(documentId, target, 'manual', { author: ctx.author }, { note: ctx.note ?? null });
      return {
        documentId,
        versionId: doc.current_version_id,
        version: (this.sql.version.get(doc.current_version_id) as VersionRow).version,
        action: 'filed' as const,
        patientId: target,
        rule: 'manual',
        reviewIds: [],
      };
    })();
  }

  // ——— reads ———

  /** The documents of a patient and of the patients merged into it, newest first. */
  listOfPatient(patientId: number, options: { owner?: string | null } = {}): DocumentSummary[] {
    const id = this.patients.resolvePatient(patientId);
    if (id === null) return [];
    const rows = this.sql.ofPatients.all(JSON.stringify(this.patients.family(id))) as SummaryRow[];
    return rows
      .filter((r) => options.owner === undefined || options.owner === null || r.owner === options.owner)
      .map(toSummary);
  }

  get(documentId: number): DocumentRecord | null {
    const row = this.sql.summary.get(documentId) as SummaryRow | undefined;
    if (row === undefined) return null;
    const versions = (this.sql.versionsOf.all(documentId) as VersionRow[]).map((v) =>
      toVersion(v, this.attachmentsOf(v.id)),
    );
    const current = row.version_id;
    return {
      ...toSummary(row),
      owner: row.owner,
      matchRule: row.match_rule,
      createdAt: row.created_at,
      updatedAt: row.updated_at,
      versions,
      findings: (this.sql.findingsOf.all(current) as FindingRow[]).map((f) => toFinding(f, documentId)),
      variants: (this.sql.variantsOf.all(current) as VariantRow[]).map((v) => toVariant(v, documentId)),
      reviews: (this.sql.reviewsOf.all(documentId) as ReviewRow[]).map(toReview),
      events: (this.sql.eventsOf.all(documentId) as EventRow[]).map((e) => ({
        id: e.id,
        at: e.at,
        versionId: e.version_id,
        action: e.action,
        rule: e.rule,
        patientId: e.patient_id,
        messageId: e.message_id,
        author: e.author,
        detail: e.detail === null ? null : (JSON.parse(e.detail) as unknown),
      })),
    };
  }

  /**
   * The bytes of a document's current version: as received (`original`), or the PDF or CDA it is or
   * carries. Null when it has none of that kind.
   */
  content(
    documentId: number,
    which: 'original' | 'pdf' | 'cda',
  ): { mediaType: string; sha256: string; file: string; fileName: string | null } | null {
    const row = this.sql.summary.get(documentId) as SummaryRow | undefined;
    if (row === undefined) return null;
    const files = this.requireFiles();
    const v = this.sql.version.get(row.version_id) as VersionRow;
    const own = { mediaType: v.media_type, sha256: v.sha256 };
    const wanted = (t: string) => (which === 'pdf' ? t === 'application/pdf' : CDA_TYPES.has(t));
    const found =
      which === 'original' || wanted(own.mediaType)
        ? own
        : this.attachmentsOf(v.id).find((a) => wanted(a.mediaType));
    if (found === undefined) return null;
    return { ...found, file: files.path(found.sha256), fileName: v.file_name };
  }

  /** Whether a version or an attachment keeps these bytes: the recovery sweep deletes the blobs none keeps. */
  holdsBlob(digest: string): boolean {
    return this.sql.holdsBlob.get(digest, digest) !== undefined;
  }

  /** Unfiled documents (waiting or in review), oldest first, in keyset pages. */
  listWaiting(options: { limit?: number; after?: string | null } = {}): Page<WaitingDocument> {
    const limit = Math.min(Math.max(options.limit ?? 50, 1), 500);
    const after = options.after ? Number(options.after) : 0;
    if (!Number.isSafeInteger(after))
      throw new DocumentError(
        'CURSOR_INVALID',
        'the page cursor is not one this list returned',
        'reload the list from its first page',
      );
    const rows = this.sql.unfiled.all(after, limit + 1) as SummaryRow[];
    const page = rows.slice(0, limit).map((r) => {
      const v = this.sql.version.get(r.version_id) as VersionRow;
      return {
        id: r.id,
        kind: r.kind,
        title: r.title,
        date: r.report_date,
        match: r.match as WaitingDocument['match'],
        rule: r.match_rule,
        owner: r.owner,
        labFiness: r.lab_finess,
        patient: JSON.parse(v.patient) as DocumentPatient,
        reviews: (this.sql.openReviews.all(r.id) as ReviewRow[]).map(toReview),
        since: r.created_at,
      };
    });
    return { items: page, next: rows.length > limit ? String(page.at(-1)!.id) : null };
  }

  /** Current findings of live documents with this code (`adicap`, `8140/3`…). */
  findingsWith(kind: string, code: string, limit = 500): FindingRecord[] {
    return (
      this.sql.findingsByCode.all(kind, code, limit) as Array<FindingRow & { document_id: number }>
    ).map((f) => toFinding(f, f.document_id));
  }

  /** Current variants of live documents in this gene (HGNC symbol). */
  variantsOfGene(gene: string, limit = 500): VariantRecord[] {
    return (this.sql.variantsByGene.all(gene, limit) as Array<VariantRow & { document_id: number }>).map(
      (v) => toVariant(v, v.document_id),
    );
  }

  // ——— inside the filing transaction ———

  private requireFiles(): BlobFiles {
    if (this.files === null)
      throw new DocumentError(
        'DOCUMENT_FILES_UNAVAILABLE',
        'this store has no data directory to keep document files in',
        'open the store on a data directory',
      );
    return this.files;
  }

  private mustGet(documentId: number): DocumentRow {
    const doc = this.sql.document.get(documentId) as DocumentRow | undefined;
    if (doc === undefined)
      throw new DocumentError('DOCUMENT_UNKNOWN', `no document ${documentId}`, 'check the document id');
    return doc;
  }

  private attachmentsOf(versionId: number): VersionRecord['attachments'] {
    return (
      this.sql.attachmentsOf.all(versionId) as Array<{
        id: number;
        media_type: string;
        sha256: string;
        size: number;
      }>
    ).map((a) => ({ id: a.id, mediaType: a.media_type, sha256: a.sha256, size: a.size }));
  }

  /** The document a version belongs to: the one it replaces or deletes, or the one of its set. */
  private targetOf(input: DocumentInput): DocumentRow | null {
    const { ids } = input;
    for (const uniqueId of [ids.replaces, ids.status === 'deletion' ? ids.uniqueId : undefined]) {
      if (uniqueId === undefined) continue;
      const v = this.sql.versionByUniqueId.get(uniqueId) as VersionRow | undefined;
      if (v !== undefined) return this.mustGet(v.document_id);
    }
    const setId = ids.setId ?? (ids.status === 'final' ? ids.uniqueId : undefined);
    return setId === undefined ? null : ((this.sql.bySetId.get(setId) as DocumentRow | undefined) ?? null);
  }

  /** Only the sender that filed a document corrects it (DESIGN.md rule 9). */
  private checkOwner(doc: DocumentRow, owner: string | null | undefined, act: string): void {
    if (doc.owner !== null && owner != null && doc.owner !== owner)
      throw new DocumentError(
        'DOCUMENT_NOT_OWNER',
        `document ${doc.id} was filed by FINESS ${doc.owner}; FINESS ${owner} may not ${act} it`,
        'send corrections from the establishment or lab that sent the document',
      );
  }

  private duplicate(copy: VersionRow, ctx: FilingContext): FilingResult {
    const doc = this.mustGet(copy.document_id);
    this.event(doc.id, copy.id, 'duplicate', 'same-content-or-id', {
      messageId: ctx.provenance.messageId,
    });
    return {
      documentId: doc.id,
      versionId: copy.id,
      version: copy.version,
      action: 'duplicate',
      patientId: doc.patient_id,
      rule: 'same-content-or-id',
      reviewIds: [],
    };
  }

  private delete(
    doc: DocumentRow | null,
    input: DocumentInput,
    original: BlobRef,
    ctx: FilingContext,
  ): FilingResult {
    if (doc === null)
      throw new DocumentError(
        'DOCUMENT_TO_DELETE_UNKNOWN',
        `the deletion names document ${input.ids.replaces ?? input.ids.uniqueId ?? input.ids.setId ?? '(no id)'}, which the DCC never filed`,
        'check the unique id of the document to delete (OBX-11 D, TXA-12/13 or relatedDocument)',
      );
    this.checkOwner(doc, ctx.provenance.owner, 'delete');
    const { versionId, version } = this.addVersion(doc.id, input, original, ctx.provenance);
    this.sql.setDeleted.run(this.at(), doc.id);
    this.event(doc.id, versionId, 'deleted', 'deletion', { messageId: ctx.provenance.messageId });
    return {
      documentId: doc.id,
      versionId,
      version,
      action: 'deleted',
      patientId: doc.patient_id,
      rule: 'deletion',
      reviewIds: [],
    };
  }

  private addVersion(
    documentId: number,
    input: DocumentInput,
    original: BlobRef,
    p: Provenance,
  ): { versionId: number; version: number } {
    const version = Number(this.sql.lastVersion.get(documentId) ?? 0) + 1;
    const versionId = Number(
      this.sql.insertVersion.run({
        document_id: documentId,
        version,
        sender_version: input.ids.version ?? null,
        unique_id: input.ids.uniqueId ?? null,
        status: input.ids.status,
        replaces: input.ids.replaces ?? null,
        format: input.format,
        document_type: input.documentType ? JSON.stringify(input.documentType) : null,
        template: input.template ?? null,
        title: input.title ?? null,
        report_date: input.reportDate ?? null,
        author_rpps: input.author?.rpps ?? null,
        author_name: input.author?.name ?? null,
        lab_finess: input.lab?.finess ?? null,
        lab_name: input.lab?.name ?? null,
        order_number: input.orderNumber ?? null,
        conclusion: input.conclusion ?? null,
        text: input.text ?? null,
        specimens: JSON.stringify(input.specimens),
        genes_analysed: JSON.stringify(input.genesAnalysed),
        patient: JSON.stringify(input.patient),
        media_type: input.original.mediaType,
        sha256: original.digest,
        size: original.size,
        message_id: p.messageId,
        channel: p.channel,
        file_name: p.fileName ?? null,
        mail: p.mail ?? null,
        sender: p.sender ?? null,
        owner: p.owner ?? null,
        filed_at: this.at(),
      }).lastInsertRowid,
    );
    return { versionId, version };
  }

  /**
   * Runs the rules for a document and records the outcome: filed on the patient, or waiting (with
   * the keys that find it again and the review items of close candidates).
   */
  private settle(
    documentId: number,
    patient: DocumentPatient,
    settings: MatchSettings,
    ctx: ActionContext,
    how: 'on-arrival' | 'automatic' = 'on-arrival',
  ): Pick<FilingResult, 'action' | 'patientId' | 'rule' | 'reviewIds'> {
    const rules = { ...defaultDocumentRules, ...settings.rules };
    const match = this.match(patient, settings.insOids, rules);
    if (match.patientId !== null) {
      this.fileOn(documentId, match.patientId, match.rule, ctx, { how });
      return { action: 'filed', patientId: match.patientId, rule: match.rule, reviewIds: [] };
    }
    const at = this.at();
    const reviewIds: number[] = [];
    for (const c of match.reviews.sort((a, b) => b.score - a.score).slice(0, rules.maxReviews)) {
      const r = this.sql.insertReview.run(documentId, c.patientId, c.score, JSON.stringify(c.reasons), at);
      if (r.changes > 0) reviewIds.push(Number(r.lastInsertRowid));
    }
    const inReview = (this.sql.openReviews.all(documentId) as ReviewRow[]).length > 0;
    const action = inReview ? 'review' : 'waiting';
    const doc = this.mustGet(documentId);
    if (doc.match !== action || doc.match_rule !== match.rule || doc.patient_id !== null) {
      this.sql.setMatch.run(null, action, match.rule, at, documentId);
      this.event(documentId, doc.current_version_id, action, match.rule, ctx, {
        reviews: reviewIds,
      });
    }
    for (const key of waitingKeys(patient)) this.sql.insertWaiting.run(key, documentId);
    return { action, patientId: null, rule: match.rule, reviewIds };
  }

  private fileOn(
    documentId: number,
    patientId: number,
    rule: string,
    ctx: ActionContext,
    detail: Record<string, unknown>,
  ): void {
    const at = this.at();
    const doc = this.mustGet(documentId);
    this.sql.setMatch.run(patientId, 'filed', rule, at, documentId);
    this.sql.clearWaiting.run(documentId);
    this.sql.closeReviews.run(patientId, ctx.author ?? null, at, documentId);
    const action = doc.match === 'filed' ? (doc.patient_id === patientId ? 'refiled' : 'moved') : 'filed';
    this.event(documentId, doc.current_version_id, action, rule, ctx, { ...detail, patientId }, patientId);
  }

  /** The identity rules (identity-match.ts), except that a document never creates a patient nor guesses between two. */
  private match(p: DocumentPatient, insOids: readonly string[], rules: DocumentRules): Designation {
    return designate({
      byIpp: [
        ...new Set(
          p.identifiers.map((ref) => this.patients.resolveIdentifier(ref)).filter((id) => id !== null),
        ),
      ],
      byIns: () =>
        p.ins && insOids.includes(p.ins.oid)
          ? this.patients
              .findByIns(p.ins.matricule, p.ins.oid)
              .filter((id) => this.patients.get(id)!.reliability === 'QUAL')
          : null,
      byTraits: () => {
        const traits = traitsOf(p);
        if (traits === null) return 'no-traits';
        return this.patients
          .candidates(traits, (c) => couldBeClose(traits, c, rules.nearMatchThreshold))
          .filter((c) => c.reliability !== 'FICT' && c.reliability !== 'DOUT')
          .map((c) => ({ patientId: c.id, match: compareIdentities(traits, c, rules.nearMatchThreshold) }));
      },
      linkOnStrictTraits: rules.strictTraitsMatch === 'link',
      several: 'none',
    });
  }

  private event(
    documentId: number,
    versionId: number | null,
    action: string,
    rule: string,
    ctx: ActionContext,
    detail?: unknown,
    patientId?: number | null,
  ): void {
    this.sql.insertEvent.run({
      at: this.at(),
      document_id: documentId,
      version_id: versionId,
      action,
      rule,
      patient_id: patientId ?? null,
      message_id: ctx.messageId ?? null,
      author: ctx.author ?? null,
      detail: detail === undefined ? null : JSON.stringify(detail),
    });
  }
}

interface SummaryRow extends DocumentRow {
  title: string | null;
  report_date: string | null;
  version_status: VersionStatus;
  document_type: string | null;
  format: string;
  version: number;
  channel: string | null;
  file_name: string | null;
  mail: string | null;
  sender: string | null;
  version_id: number;
  media_type: string;
  pdfs: number;
  cdas: number;
}

interface FindingRow {
  id: number;
  version_id: number;
  kind: string;
  code: string;
  system: string | null;
  display: string | null;
}

interface VariantRow {
  id: number;
  version_id: number;
  gene: string;
  reference_sequence: string | null;
  dna_change: string | null;
  protein_change: string | null;
  classification_code: string | null;
  classification_display: string | null;
  interpretation: string;
}

interface EventRow {
  id: number;
  at: string;
  version_id: number | null;
  action: string;
  rule: string;
  patient_id: number | null;
  message_id: number | null;
  author: string | null;
  detail: string | null;
}

function toSummary(r: SummaryRow): DocumentSummary {
  const type = r.document_type === null ? null : (JSON.parse(r.document_type) as CodedValue);
  return {
    id: r.id,
    kind: r.kind,
    title: r.title ?? type?.display ?? null,
    date: r.report_date,
    status: r.state === 'deleted' ? 'deleted' : r.version_status === 'replacement' ? 'replacement' : 'final',
    formatCode: type?.code ?? null,
    source: r.file_name ?? r.mail ?? r.channel ?? '',
    format: r.format,
    version: r.version,
    labFiness: r.lab_finess,
    patientId: r.patient_id,
    match: r.match,
    hasPdf: r.media_type === 'application/pdf' || r.pdfs > 0,
    hasCda: CDA_TYPES.has(r.media_type) || r.cdas > 0,
  };
}

function toFinding(f: FindingRow, documentId: number): FindingRecord {
  return {
    documentId,
    versionId: f.version_id,
    kind: f.kind,
    code: f.code,
    ...(f.system === null ? {} : { system: f.system }),
    ...(f.display === null ? {} : { display: f.display }),
  };
}

function toVariant(v: VariantRow, documentId: number): VariantRecord {
  return {
    documentId,
    versionId: v.version_id,
    gene: v.gene,
    referenceSequence: opt(v.reference_sequence),
    dnaChange: opt(v.dna_change),
    proteinChange: opt(v.protein_change),
    ...(v.classification_code === null
      ? {}
      : {
          classification: {
            code: v.classification_code,
            ...(v.classification_display === null ? {} : { display: v.classification_display }),
          },
        }),
    interpretation: JSON.parse(v.interpretation) as CodedValue[],
  };
}

function describeFiling(r: FilingResult): string {
  const doc = `document ${r.documentId} version ${r.version}`;
  switch (r.action) {
    case 'filed':
      return `${doc} filed on patient ${r.patientId} (${r.rule})${r.orderClosed ? `, order ${r.orderClosed} closed` : ''}`;
    case 'deleted':
      return `${doc}: the document is deleted`;
    case 'duplicate':
      return `already filed as ${doc}`;
    default:
      return `${doc} waits for its patient (${r.rule}${r.reviewIds.length > 0 ? `, review items ${r.reviewIds.join(', ')}` : ''})`;
  }
}
