// Tables of the documents store (migrations 500-549; 550-599 are the molecular orders'). One row of
// `documents` per clinical document (a CDA set, an HL7 report and its corrections); one row of
// `document_versions` per version received, never updated nor deleted: a replacement is a new
// version, a deletion a version that marks the document deleted. Findings and variants are rows of
// their own, so that "every EGFR p.Leu858Arg" or "every ADICAP code of 2026" is one indexed query.
import fs from 'node:fs';
import path from 'node:path';
import type { Migration } from './db.ts';
import { syncDirectorySync } from './sync-directory.ts';

export const documentMigrations: Migration[] = [
  {
    version: 500,
    name: 'documents, versions, findings, variants, unmatched documents',
    up: `
      CREATE TABLE documents (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        -- The sender's set id (CDA setId; an HL7 report's first unique id): what versions share.
        set_id TEXT UNIQUE,
        -- Null while no rule designates a patient: the document waits (match 'waiting' or 'review').
        patient_id INTEGER REFERENCES patients (id),
        match TEXT NOT NULL CHECK (match IN ('filed', 'waiting', 'review')),
        match_rule TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('current', 'deleted')),
        current_version_id INTEGER,
        -- FINESS of the sender that filed the first version: only it may replace or delete it.
        owner TEXT,
        lab_finess TEXT,
        -- The filing rules of the channel (accepted INS OIDs, trait rules), for matching again later.
        match_settings TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      );
      CREATE INDEX documents_patient ON documents (patient_id) WHERE patient_id IS NOT NULL;
      CREATE INDEX documents_unfiled ON documents (id) WHERE match <> 'filed';
      CREATE INDEX documents_owner ON documents (owner);

      CREATE TABLE document_versions (
        id INTEGER PRIMARY KEY,
        document_id INTEGER NOT NULL REFERENCES documents (id),
        version INTEGER NOT NULL,
        sender_version INTEGER,
        unique_id TEXT,
        status TEXT NOT NULL CHECK (status IN ('final', 'replacement', 'deletion')),
        replaces TEXT,
        format TEXT NOT NULL,
        document_type TEXT,
        template TEXT,
        title TEXT,
        report_date TEXT,
        author_rpps TEXT,
        author_name TEXT,
        lab_finess TEXT,
        lab_name TEXT,
        order_number TEXT,
        conclusion TEXT,
        text TEXT,
        specimens TEXT NOT NULL,
        genes_analysed TEXT NOT NULL,
        -- Who the sender said the report is about (identifiers and traits), as sent: matching's input.
        patient TEXT NOT NULL,
        media_type TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        message_id INTEGER,
        channel TEXT,
        file_name TEXT,
        mail TEXT,
        sender TEXT,
        owner TEXT,
        filed_at TEXT NOT NULL,
        UNIQUE (document_id, version)
      );
      CREATE INDEX document_versions_unique_id ON document_versions (unique_id) WHERE unique_id IS NOT NULL;
      CREATE INDEX document_versions_sha256 ON document_versions (sha256);
      CREATE INDEX document_versions_message ON document_versions (message_id) WHERE message_id IS NOT NULL;
      CREATE INDEX document_versions_filed_at ON document_versions (filed_at);

      -- The CDA or PDF a report carried (an ED OBX, a PDF beside its sidecar): bytes in files too.
      CREATE TABLE document_attachments (
        id INTEGER PRIMARY KEY,
        version_id INTEGER NOT NULL REFERENCES document_versions (id),
        media_type TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL
      );
      CREATE INDEX document_attachments_version ON document_attachments (version_id);

      CREATE TABLE document_findings (
        id INTEGER PRIMARY KEY,
        version_id INTEGER NOT NULL REFERENCES document_versions (id),
        kind TEXT NOT NULL,
        code TEXT NOT NULL,
        system TEXT,
        display TEXT
      );
      CREATE INDEX document_findings_version ON document_findings (version_id);
      CREATE INDEX document_findings_code ON document_findings (kind, code);

      CREATE TABLE document_variants (
        id INTEGER PRIMARY KEY,
        version_id INTEGER NOT NULL REFERENCES document_versions (id),
        gene TEXT NOT NULL,
        reference_sequence TEXT,
        dna_change TEXT,
        protein_change TEXT,
        classification_code TEXT,
        classification_display TEXT,
        interpretation TEXT NOT NULL
      );
      CREATE INDEX document_variants_version ON document_variants (version_id);
      CREATE INDEX document_variants_gene ON document_variants (gene, protein_change);

      -- How an unfiled document can be found again when an identity arrives: its IPPs, its INS, its
      -- birth date (the block every strict or close match shares).
      CREATE TABLE document_waiting (
        key TEXT NOT NULL,
        document_id INTEGER NOT NULL REFERENCES documents (id),
        PRIMARY KEY (key, document_id)
      ) WITHOUT ROWID;
      CREATE INDEX document_waiting_document ON document_waiting (document_id);

      -- Patients a document's traits are close to: a reviewer attaches it, never a rule.
      CREATE TABLE document_reviews (
        id INTEGER PRIMARY KEY,
        document_id INTEGER NOT NULL REFERENCES documents (id),
        candidate_id INTEGER NOT NULL REFERENCES patients (id),
        score REAL NOT NULL,
        reasons TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'attached', 'closed')),
        opened_at TEXT NOT NULL,
        resolved_by TEXT,
        resolved_at TEXT
      );
      CREATE UNIQUE INDEX document_reviews_open ON document_reviews (document_id, candidate_id)
        WHERE status = 'open';

      -- Every filing decision, with its rule: filed, waiting, review, attached (automatically or by
      -- hand), replaced, deleted, duplicate.
      CREATE TABLE document_events (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        document_id INTEGER NOT NULL REFERENCES documents (id),
        version_id INTEGER REFERENCES document_versions (id),
        action TEXT NOT NULL,
        rule TEXT NOT NULL,
        patient_id INTEGER,
        message_id INTEGER,
        author TEXT,
        detail TEXT
      );
      CREATE INDEX document_events_document ON document_events (document_id);
    `,
  },
  {
    version: 501,
    name: 'documents: attachments found by their bytes',
    // The bytes are blobs (store/blob-files.ts): the recovery sweep keeps a file while a version
    // or an attachment names it, which this index answers without a scan.
    up: `CREATE INDEX document_attachments_sha256 ON document_attachments (sha256);`,
  },
];

/**
 * Documents filed before their bytes became blobs kept them as `<dir>/ab/abcdef…` (a shard folder per
 * first two hex digits); blobs are `<dir>/abcdef…`. Moves every such file up, once, at the store's
 * opening, before any writer runs: a rename in one file system, so a crash midway leaves each file
 * in one place or the other and the next opening finishes the move. Unfinished `.tmp` writes go.
 */
export function flattenDocumentShards(dir: string): void {
  if (!fs.existsSync(dir)) return;
  let moved = false;
  for (const shard of fs.readdirSync(dir)) {
    if (!/^[0-9a-f]{2}$/.test(shard)) continue;
    const folder = path.join(dir, shard);
    for (const name of fs.readdirSync(folder)) {
      const file = path.join(folder, name);
      const target = path.join(dir, name);
      if (/^[0-9a-f]{64}$/.test(name) && !fs.existsSync(target)) fs.renameSync(file, target);
      else fs.rmSync(file, { force: true });
      moved = true;
    }
    fs.rmdirSync(folder);
  }
  if (moved) syncDirectorySync(dir);
}
