// The message journal: every message a source acknowledged, its content at each stage, and one
// delivery row per destination. The engine's delivery guarantees rest on the order of writes here:
// a message and its deliveries are committed before the source acknowledges (DESIGN.md, rule 1).
import type { Db, Migration } from './db.ts';
import type { BlobRef } from './blob-files.ts';
import type { Audit, AuditEvent } from './audit.ts';
import { OncoError, renderError } from '../config/errors.ts';

export const journalMigrations: Migration[] = [
  {
    version: 100,
    name: 'journal',
    up: `
      CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        channel TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        status TEXT NOT NULL,
        sender TEXT,
        owner TEXT,
        content_type TEXT,
        meta TEXT NOT NULL DEFAULT '{}',
        dedup_key TEXT,
        duplicate_of INTEGER,
        replay_of INTEGER,
        error TEXT
      );
      CREATE INDEX messages_by_channel ON messages (channel, id);
      CREATE INDEX messages_backlog ON messages (channel, id) WHERE status = 'RECEIVED';
      CREATE INDEX messages_by_status ON messages (status, id);
      CREATE INDEX messages_by_owner ON messages (owner, id);
      CREATE INDEX messages_by_time ON messages (received_at);

      CREATE TABLE contents (
        message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
        stage TEXT NOT NULL,
        destination TEXT NOT NULL DEFAULT '',
        content_type TEXT NOT NULL,
        content BLOB NOT NULL,
        PRIMARY KEY (message_id, stage, destination)
      ) WITHOUT ROWID;

      CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY,
        message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
        channel TEXT NOT NULL,
        destination TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        detail TEXT,
        sent_at INTEGER,
        updated_at INTEGER NOT NULL
      );
      CREATE INDEX deliveries_of_message ON deliveries (message_id);
      CREATE INDEX deliveries_queue ON deliveries (channel, destination, id) WHERE status = 'QUEUED';
      CREATE INDEX deliveries_by_status ON deliveries (status, channel);

      CREATE TABLE dedup (
        channel TEXT NOT NULL,
        key TEXT NOT NULL,
        message_id INTEGER NOT NULL,
        PRIMARY KEY (channel, key)
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 101,
    name: 'journal: poison guard, answers owed, de-duplication by content',
    // attempts/starts: how often work on a message (processing) or a delivery began; a start with no
    //   journaled outcome is a crash or stall, and a bounded number of them quarantines the item.
    // dedup.digest: a copy is the same sender, the same key (MSH-10) *and* the same bytes; the same
    //   key with other bytes is a reused control id, processed and flagged.
    // answers: what a source still owes its sender (an ACK file), written again after a crash and
    //   rewritten when a delivery fails after a positive answer.
    up: `
      ALTER TABLE messages ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE deliveries ADD COLUMN starts INTEGER NOT NULL DEFAULT 0;

      CREATE TABLE dedup_by_digest (
        channel TEXT NOT NULL,
        key TEXT NOT NULL,
        digest TEXT NOT NULL,
        message_id INTEGER NOT NULL,
        PRIMARY KEY (channel, key, digest)
      ) WITHOUT ROWID;
      INSERT INTO dedup_by_digest SELECT channel, key, '', message_id FROM dedup;
      DROP TABLE dedup;
      ALTER TABLE dedup_by_digest RENAME TO dedup;
      CREATE INDEX dedup_of_message ON dedup (message_id);

      CREATE TABLE answers (
        message_id INTEGER PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
        channel TEXT NOT NULL,
        due INTEGER NOT NULL,
        code TEXT
      );
      CREATE INDEX answers_due ON answers (channel, message_id) WHERE due = 1;
    `,
  },
  {
    version: 102,
    name: 'journal: large content kept as files (blobs)',
    // A content row above the threshold holds no bytes: `blob` names the file (store/blob-files.ts).
    // One blobs row per distinct file, however many contents reference it: an identical re-upload
    // is one more reference. A blob no content references any more is released at pruning.
    up: `
      CREATE TABLE blobs (
        digest TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        created_at INTEGER NOT NULL
      ) WITHOUT ROWID;
      ALTER TABLE contents ADD COLUMN blob TEXT REFERENCES blobs (digest);
      CREATE INDEX contents_by_blob ON contents (blob) WHERE blob IS NOT NULL;
    `,
  },
];

export type MessageStatus =
  'RECEIVED' | 'FILTERED' | 'TRANSFORMED' | 'SENT' | 'ERROR' | 'DUPLICATE' | 'REJECTED' | 'QUARANTINED';
export type DeliveryStatus = 'WAITING' | 'QUEUED' | 'SENT' | 'ERROR' | 'FILTERED' | 'QUARANTINED';

/** Statuses of a message whose copy is a true duplicate: it was accepted and is filed or on its way. */
const ACCEPTED: ReadonlySet<MessageStatus> = new Set(['RECEIVED', 'FILTERED', 'TRANSFORMED', 'SENT']);
export type Stage = 'raw' | 'transformed' | 'sent' | 'response';

/**
 * What stays after a message is complete. Content still needed for recovery (raw until processed,
 * transformed until delivered) is always written; the policy only decides what is kept afterwards.
 */
export type StoragePolicy = 'all' | 'production' | 'metadata';

const keptAfterCompletion: Record<StoragePolicy, ReadonlySet<Stage>> = {
  all: new Set(['raw', 'transformed', 'sent', 'response']),
  production: new Set(['raw', 'sent', 'response']),
  metadata: new Set(),
};

export interface NewMessage {
  channel: string;
  /** The bytes; empty when `blob` holds them. */
  content: Buffer;
  /** Content above the threshold: its file, already written and fsynced under its digest. */
  blob?: BlobRef;
  contentType: string;
  meta: Record<string, unknown>;
  sender: string | null;
  owner: string | null;
  dedupKey: string | null;
  /** Content digest: with the same dedupKey, the same digest is a copy, another one a reused key. */
  digest?: string;
  rejected: string | null;
  replayOf?: number;
  /** The source answers after processing (an ACK file): the journal tracks that answer until written. */
  owesAnswer?: boolean;
  /**
   * The audit row of the act that brought the message (an SFTP upload), written in its transaction:
   * durable with it, so that acknowledging it waits for one commit, not two. Its detail gets `messageId`.
   */
  audit?: AuditEvent;
  destinations: readonly string[];
  now: number;
}

export interface ReceiveResult {
  messageId: number;
  duplicateOf?: number;
  /** An earlier copy of these bytes was refused or failed: this one is processed again. */
  resendOf?: number;
  /** An earlier message reused the same key (MSH-10) with other content: processed, and flagged. */
  keyReusedFrom?: number;
  /** A copy of a quarantined message: journaled as QUARANTINED too, not processed. */
  copyOfQuarantined?: number;
}

export interface StoredMessage {
  id: number;
  channel: string;
  receivedAt: number;
  updatedAt: number;
  status: MessageStatus;
  sender: string | null;
  owner: string | null;
  contentType: string | null;
  meta: Record<string, unknown>;
  duplicateOf: number | null;
  replayOf: number | null;
  error: string | null;
  /** Times processing began on it; more than one while RECEIVED means earlier tries never finished. */
  attempts: number;
}

export interface StoredContent {
  stage: Stage;
  destination: string;
  contentType: string;
  /** The bytes; empty when `blob` holds them. */
  content: Buffer;
  /** Kept as a file (above the threshold): read it through BlobFiles. */
  blob?: BlobRef;
}

/** A blob referenced by a message still at work (received, or with deliveries to make): checked at start. */
export interface BlobInUse extends BlobRef {
  messageId: number;
}

export interface StoredDelivery {
  id: number;
  messageId: number;
  channel: string;
  destination: string;
  status: DeliveryStatus;
  attempts: number;
  nextAttemptAt: number;
  lastError: string | null;
  detail: string | null;
  sentAt: number | null;
  updatedAt: number;
  /** Attempts begun; `starts - attempts` of them ended with no journaled outcome (a crash or stall). */
  starts: number;
}

/** A `messages` row as SQLite returns it; `toMessage` is the one mapping of it. */
export interface MessageRow {
  id: number;
  channel: string;
  received_at: number;
  updated_at: number;
  status: MessageStatus;
  sender: string | null;
  owner: string | null;
  content_type: string | null;
  meta: string;
  duplicate_of: number | null;
  replay_of: number | null;
  error: string | null;
  attempts?: number;
}

interface DeliveryRow {
  id: number;
  message_id: number;
  channel: string;
  destination: string;
  status: DeliveryStatus;
  attempts: number;
  next_attempt_at: number;
  last_error: string | null;
  detail: string | null;
  sent_at: number | null;
  updated_at: number;
  starts: number;
}

export const toMessage = (r: MessageRow): StoredMessage => ({
  id: r.id,
  channel: r.channel,
  receivedAt: r.received_at,
  updatedAt: r.updated_at,
  status: r.status,
  sender: r.sender,
  owner: r.owner,
  contentType: r.content_type,
  meta: JSON.parse(r.meta) as Record<string, unknown>,
  duplicateOf: r.duplicate_of,
  replayOf: r.replay_of,
  error: r.error,
  attempts: r.attempts ?? 0,
});

interface ContentRow {
  content_type: string;
  content: Buffer;
  blob: string | null;
  blob_size: number | null;
}

const blobOf = (r: ContentRow): BlobRef | undefined =>
  r.blob === null ? undefined : { digest: r.blob, size: r.blob_size ?? 0 };

function toContent(stage: Stage, destination: string, r: ContentRow): StoredContent {
  const blob = blobOf(r);
  return { stage, destination, contentType: r.content_type, content: r.content, ...(blob ? { blob } : {}) };
}

const toDelivery = (r: DeliveryRow): StoredDelivery => ({
  id: r.id,
  messageId: r.message_id,
  channel: r.channel,
  destination: r.destination,
  status: r.status,
  attempts: r.attempts,
  nextAttemptAt: r.next_attempt_at,
  lastError: r.last_error,
  detail: r.detail,
  sentAt: r.sent_at,
  updatedAt: r.updated_at,
  starts: r.starts,
});

export interface ProcessingResult {
  messageId: number;
  status: 'FILTERED' | 'TRANSFORMED' | 'ERROR' | 'QUARANTINED';
  /**
   * `blob`: the transformed content is that blob (a large output, or a large file a step passed on
   * unchanged). `parts`: blobs the content references by digest (a report's PDF), kept with it.
   */
  transformed?: {
    content: Buffer;
    contentType: string;
    meta: Record<string, unknown>;
    blob?: BlobRef;
    parts?: Array<BlobRef & { contentType: string }>;
  };
  error?: string;
  now: number;
}

/** What a store writer's filing left to journal on its delivery: its detail, and its response. */
export type FiledPart = Pick<SentResult, 'sent' | 'response' | 'detail'>;

/** What de-duplication decided of a received message (Journal.admit). */
interface Admission {
  status: MessageStatus;
  meta: Record<string, unknown>;
  error: string | null;
  duplicateOf?: number;
  poisoned?: number;
  resendOf?: number;
  keyReusedFrom?: number;
}

/** Where a processing result sends the message's deliveries: queued, or settled with it. */
const deliveriesAfter = (status: ProcessingResult['status']): DeliveryStatus =>
  status === 'TRANSFORMED' ? 'QUEUED' : status === 'FILTERED' || status === 'QUARANTINED' ? status : 'ERROR';

const linksOf = (a: Admission): Pick<ReceiveResult, 'resendOf' | 'keyReusedFrom'> => ({
  ...(a.resendOf !== undefined ? { resendOf: a.resendOf } : {}),
  ...(a.keyReusedFrom !== undefined ? { keyReusedFrom: a.keyReusedFrom } : {}),
});

export interface SentResult {
  deliveryId: number;
  /** What the destination's steps made of the content; `blob`: kept as that file (above the threshold). */
  sent?: { content: Buffer; contentType: string; blob?: BlobRef };
  response?: { content: Buffer; contentType: string };
  detail?: string;
  policy: StoragePolicy;
  now: number;
}

export interface FailedResult {
  deliveryId: number;
  error: string;
  /** null: no retry left or not retryable; the delivery ends in ERROR. */
  retryAt: number | null;
  now: number;
  /** Ends the delivery as QUARANTINED instead of ERROR: its attempts kept crashing or stalling the engine. */
  quarantine?: boolean;
}

/** A message whose source still owes its sender an answer. */
export interface DueAnswer {
  messageId: number;
  content: Buffer;
  /** When the content is kept as a file: `content` is then empty. */
  blob?: BlobRef;
  contentType: string;
  meta: Record<string, unknown>;
  sender: string | null;
}

/**
 * Synchronous statements on the journal tables. Writes are meant to run inside GroupCommit.write so
 * that they share a transaction with other messages' writes; reads run directly.
 */
export class Journal {
  private readonly s;

  constructor(
    private readonly db: Db,
    private readonly audit: Audit | null = null,
  ) {
    this.s = {
      // Every message journaled under a key (usually none, seldom more than one): one look-up tells
      // a copy (same digest) from a reused key (another digest).
      sameKey: db.prepare<[string, string], { id: number; digest: string; status: MessageStatus | null }>(
        `SELECT d.message_id AS id, d.digest, m.status FROM dedup d LEFT JOIN messages m ON m.id = d.message_id
         WHERE d.channel = ? AND d.key = ?`,
      ),
      insertDup: db.prepare(
        'INSERT OR REPLACE INTO dedup (channel, key, digest, message_id) VALUES (?, ?, ?, ?)',
      ),
      owe: db.prepare('INSERT INTO answers (message_id, channel, due) VALUES (?, ?, 1)'),
      answered: db.prepare('UPDATE answers SET due = 0, code = ? WHERE message_id = ?'),
      // A positive answer already given becomes due again, to be rewritten negative.
      answerLate: db.prepare(`UPDATE answers SET due = 1 WHERE message_id = ? AND due = 0 AND code = 'AA'`),
      answerDue: db.prepare<[number], number>('SELECT due FROM answers WHERE message_id = ?').pluck(),
      answersDue: db
        .prepare<[string, number, number], number>(
          'SELECT message_id FROM answers WHERE channel = ? AND due = 1 AND message_id > ? ORDER BY message_id LIMIT ?',
        )
        .pluck(),
      // What the count was before: one statement, no read of the row first.
      startProcessing: db
        .prepare<[number], number>(
          'UPDATE messages SET attempts = attempts + 1 WHERE id = ? RETURNING attempts - 1',
        )
        .pluck(),
      startDelivery: db.prepare('UPDATE deliveries SET starts = starts + 1 WHERE id = ?'),
      startDeliveryUnfinished: db
        .prepare<[number], number>(
          'UPDATE deliveries SET starts = starts + 1 WHERE id = ? RETURNING starts - 1 - attempts',
        )
        .pluck(),
      unstartDelivery: db.prepare(
        'UPDATE deliveries SET starts = starts - 1 WHERE id = ? AND starts > attempts',
      ),
      queuedBefore: db.prepare<[number], number>(
        `SELECT 1 FROM deliveries q JOIN deliveries d ON d.id = ?
         WHERE q.channel = d.channel AND q.destination = d.destination AND q.status = 'QUEUED' AND q.id < d.id LIMIT 1`,
      ),
      firstError: db
        .prepare<[number], string>(
          `SELECT destination || ': ' || coalesce(last_error, status) FROM deliveries
           WHERE message_id = ? AND status IN ('ERROR', 'QUARANTINED') ORDER BY id LIMIT 1`,
        )
        .pluck(),
      insertMessage: db.prepare(`INSERT INTO messages
        (channel, received_at, updated_at, status, sender, owner, content_type, meta, dedup_key, duplicate_of, replay_of, error, attempts)
        VALUES (@channel, @now, @now, @status, @sender, @owner, @contentType, @meta, @dedupKey, @duplicateOf, @replayOf, @error, @attempts)`),
      insertContent:
        db.prepare(`INSERT OR REPLACE INTO contents (message_id, stage, destination, content_type, content, blob)
        VALUES (?, ?, ?, ?, ?, NULL)`),
      insertBlobContent:
        db.prepare(`INSERT OR REPLACE INTO contents (message_id, stage, destination, content_type, content, blob)
        VALUES (?, ?, ?, ?, X'', ?)`),
      insertBlob: db.prepare('INSERT OR IGNORE INTO blobs (digest, size, created_at) VALUES (?, ?, ?)'),
      blobKnown: db.prepare<[string], number>('SELECT 1 FROM blobs WHERE digest = ?').pluck(),
      releaseBlobs: db
        .prepare<[], string>(
          `DELETE FROM blobs WHERE NOT EXISTS (SELECT 1 FROM contents c WHERE c.blob = blobs.digest)
           RETURNING digest`,
        )
        .pluck(),
      blobsInUse: db.prepare<[], { message_id: number; digest: string; size: number }>(
        `SELECT c.message_id, b.digest, b.size FROM contents c
         JOIN blobs b ON b.digest = c.blob JOIN messages m ON m.id = c.message_id
         WHERE m.status IN ('RECEIVED', 'TRANSFORMED') ORDER BY c.message_id`,
      ),
      openToError: db.prepare(
        `UPDATE deliveries SET status = 'ERROR', last_error = ?, updated_at = ?
         WHERE message_id = ? AND status IN ('WAITING', 'QUEUED')`,
      ),
      insertDelivery:
        db.prepare(`INSERT INTO deliveries (message_id, channel, destination, status, updated_at)
        VALUES (?, ?, ?, 'WAITING', ?)`),
      // A delivery written in its end state (fused receipt): filed, or queued for its worker.
      insertDeliveryAs: db.prepare(`INSERT INTO deliveries
        (message_id, channel, destination, status, attempts, starts, detail, sent_at, updated_at)
        VALUES (@messageId, @channel, @destination, @status, @attempts, @attempts, @detail, @sentAt, @now)`),
      anyQueued: db
        .prepare<[string, string], number>(
          `SELECT 1 FROM deliveries WHERE channel = ? AND destination = ? AND status = 'QUEUED' LIMIT 1`,
        )
        .pluck(),
      backlog: db.prepare<[string, number, number], MessageRow>(
        `SELECT * FROM messages WHERE channel = ? AND status = 'RECEIVED' AND id > ? ORDER BY id LIMIT ?`,
      ),
      backlogCount: db
        .prepare<[string], number>(`SELECT count(*) FROM messages WHERE channel = ? AND status = 'RECEIVED'`)
        .pluck(),
      content: db.prepare<[number, string, string], ContentRow>(
        `SELECT c.content_type, c.content, c.blob, b.size AS blob_size FROM contents c
         LEFT JOIN blobs b ON b.digest = c.blob WHERE c.message_id = ? AND c.stage = ? AND c.destination = ?`,
      ),
      contents: db.prepare<[number], ContentRow & { stage: Stage; destination: string }>(
        `SELECT c.stage, c.destination, c.content_type, c.content, c.blob, b.size AS blob_size FROM contents c
         LEFT JOIN blobs b ON b.digest = c.blob WHERE c.message_id = ?
         ORDER BY c.destination, CASE c.stage WHEN 'raw' THEN 0 WHEN 'transformed' THEN 1 WHEN 'sent' THEN 2 ELSE 3 END`,
      ),
      setMessageStatus: db.prepare(
        'UPDATE messages SET status = ?, error = ?, meta = coalesce(?, meta), updated_at = ? WHERE id = ?',
      ),
      // Status alone: leaves meta and error untouched (a status change has nothing new for the search index).
      setStatus: db.prepare('UPDATE messages SET status = ?, updated_at = ? WHERE id = ?'),
      queueDeliveries: db.prepare(
        `UPDATE deliveries SET status = ?, updated_at = ? WHERE message_id = ? AND status = 'WAITING'`,
      ),
      queueHead: db.prepare<[string, string, number], DeliveryRow>(
        `SELECT * FROM deliveries WHERE channel = ? AND destination = ? AND status = 'QUEUED' ORDER BY id LIMIT ?`,
      ),
      queueDue: db.prepare<[string, string, number, number], DeliveryRow>(
        `SELECT * FROM deliveries WHERE channel = ? AND destination = ? AND status = 'QUEUED' AND next_attempt_at <= ?
         ORDER BY id LIMIT ?`,
      ),
      queueCount: db
        .prepare<[string, string], number>(
          `SELECT count(*) FROM deliveries WHERE channel = ? AND destination = ? AND status = 'QUEUED'`,
        )
        .pluck(),
      nextAttempt: db
        .prepare<[string, string], number | null>(
          `SELECT min(next_attempt_at) FROM deliveries WHERE channel = ? AND destination = ? AND status = 'QUEUED'`,
        )
        .pluck(),
      delivery: db.prepare<[number], DeliveryRow>('SELECT * FROM deliveries WHERE id = ?'),
      deliveriesOf: db.prepare<[number], DeliveryRow>(
        'SELECT * FROM deliveries WHERE message_id = ? ORDER BY id',
      ),
      markSent:
        db.prepare(`UPDATE deliveries SET status = 'SENT', attempts = attempts + 1, sent_at = ?, detail = ?,
        last_error = NULL, updated_at = ? WHERE id = ?`),
      markSentWaiting: db
        .prepare<[number, string | null, number, number, number], string>(
          `UPDATE deliveries SET status = 'SENT', attempts = attempts + 1, sent_at = ?, detail = ?,
           last_error = NULL, updated_at = ? WHERE id = ? AND message_id = ? AND status = 'WAITING'
           RETURNING destination`,
        )
        .pluck(),
      markFiltered: db.prepare(`UPDATE deliveries SET status = 'FILTERED', updated_at = ? WHERE id = ?`),
      markFailed: db.prepare(`UPDATE deliveries SET status = ?, attempts = attempts + 1, next_attempt_at = ?,
        last_error = ?, updated_at = ? WHERE id = ?`),
      openDeliveries: db
        .prepare<[number], number>(
          `SELECT count(*) FROM deliveries WHERE message_id = ? AND status IN ('WAITING', 'QUEUED')`,
        )
        .pluck(),
      erroredDeliveries: db
        .prepare<[number], number>(
          `SELECT count(*) FROM deliveries WHERE message_id = ? AND status IN ('ERROR', 'QUARANTINED')`,
        )
        .pluck(),
      quarantinedDeliveries: db
        .prepare<[number], number>(
          `SELECT count(*) FROM deliveries WHERE message_id = ? AND status = 'QUARANTINED'`,
        )
        .pluck(),
      message: db.prepare<[number], MessageRow>('SELECT * FROM messages WHERE id = ?'),
      dropStages: db.prepare('DELETE FROM contents WHERE message_id = ? AND stage = ?'),
      requeue:
        db.prepare(`UPDATE deliveries SET status = 'QUEUED', attempts = 0, starts = 0, next_attempt_at = 0,
        last_error = NULL, updated_at = ? WHERE id = ?`),
      pruneBatch: db
        .prepare<[number, number], number>(
          `SELECT id FROM messages WHERE received_at < ?
           AND status IN ('SENT', 'FILTERED', 'ERROR', 'DUPLICATE', 'REJECTED', 'QUARANTINED') ORDER BY id LIMIT ?`,
        )
        .pluck(),
      deleteMessage: db.prepare('DELETE FROM messages WHERE id = ?'),
      deleteDedupOf: db.prepare('DELETE FROM dedup WHERE message_id = ?'),
    };
  }

  /**
   * Journals a received message with its raw content and one WAITING delivery per destination.
   * De-duplication only suppresses true copies (same key, same digest) of an *accepted* message: a
   * copy of a refused or failed one is journaled anew and linked to it (`meta.resendOf`), and the
   * same key with other content (a control id reused) is journaled and flagged (`meta.keyReusedFrom`).
   */
  receive(m: NewMessage): ReceiveResult {
    return this.journalReceipt(m, this.admit(m));
  }

  /** What the de-duplication makes of a message: its status, links and the row's meta and error. */
  private admit(m: NewMessage): Admission {
    const digest = m.digest ?? '';
    const sameKey = m.dedupKey && !m.rejected ? this.s.sameKey.all(m.channel, m.dedupKey) : [];
    const copy = sameKey.find(
      (r): r is typeof r & { status: MessageStatus } => r.digest === digest && r.status !== null,
    );
    const duplicateOf = copy && ACCEPTED.has(copy.status) ? copy.id : undefined;
    // A copy of a quarantined message would take the engine down again: it waits with it for an admin.
    const poisoned = copy?.status === 'QUARANTINED' ? copy.id : undefined;
    const resendOf = copy && duplicateOf === undefined && poisoned === undefined ? copy.id : undefined;
    const keyReusedFrom = !copy && sameKey.length > 0 ? Math.max(...sameKey.map((r) => r.id)) : undefined;
    const meta = {
      ...m.meta,
      ...(resendOf !== undefined ? { resendOf } : {}),
      ...(keyReusedFrom !== undefined ? { keyReusedFrom } : {}),
    };
    const status: MessageStatus = duplicateOf
      ? 'DUPLICATE'
      : poisoned
        ? 'QUARANTINED'
        : m.rejected
          ? 'REJECTED'
          : 'RECEIVED';
    const error = duplicateOf
      ? `duplicate of message ${duplicateOf}`
      : poisoned
        ? renderError(new OncoError('POISON_COPY', { params: { id: poisoned } }))
        : m.rejected;
    return { status, meta, error, duplicateOf, poisoned, resendOf, keyReusedFrom };
  }

  /**
   * The message row (in the state `row` says: received, or its end state when the fused receipt
   * knows it), its audit row, raw content, owed answer and de-duplication key.
   */
  private insertMessage(
    m: NewMessage,
    a: Admission,
    row: { status: MessageStatus; meta: Record<string, unknown>; error: string | null; attempts: number },
  ): number {
    const info = this.s.insertMessage.run({
      channel: m.channel,
      now: m.now,
      status: row.status,
      sender: m.sender,
      owner: m.owner,
      contentType: m.contentType,
      meta: JSON.stringify(row.meta),
      dedupKey: m.dedupKey,
      duplicateOf: a.duplicateOf ?? a.poisoned ?? null,
      replayOf: m.replayOf ?? null,
      error: row.error,
      attempts: row.attempts,
    });
    const messageId = Number(info.lastInsertRowid);
    if (m.audit) {
      if (!this.audit) throw new Error('this journal was built without the audit trail');
      this.audit.record({ ...m.audit, detail: { ...m.audit.detail, messageId } }, m.now);
    }
    this.insertContent(messageId, 'raw', '', m.contentType, m.content, m.blob, m.now);
    if (m.owesAnswer && !m.rejected) this.s.owe.run(messageId, m.channel);
    // A rejected message is recorded (with its content, for the admin) but never deduplicated:
    // the sender's corrected resend must go through.
    if (m.dedupKey && !m.rejected && a.status !== 'DUPLICATE' && a.status !== 'QUARANTINED')
      this.s.insertDup.run(m.channel, m.dedupKey, m.digest ?? '', messageId);
    return messageId;
  }

  private journalReceipt(m: NewMessage, a: Admission): ReceiveResult {
    const messageId = this.insertMessage(m, a, { ...a, attempts: 0 });
    if (a.duplicateOf) return { messageId, duplicateOf: a.duplicateOf };
    if (a.poisoned) return { messageId, copyOfQuarantined: a.poisoned };
    if (!m.rejected)
      for (const d of m.destinations) this.s.insertDelivery.run(messageId, m.channel, d, m.now);
    return { messageId, ...linksOf(a) };
  }

  /**
   * The fused receipt's rows (issue 14): a message whose steps ran before it was journaled, each row
   * written once, in the state the classic path leaves it in after its receipt, its mark, its result
   * and its filing: the message with its end status and one attempt, its deliveries filed (SENT,
   * one attempt begun and ended) or queued for their workers. `file` files the store writers' part
   * once the message has its id and says, per destination, what was filed (null: left to the
   * worker). A copy of an accepted or quarantined message is journaled as receive does, and its
   * result dropped.
   */
  receiveProcessed(
    m: NewMessage,
    result: Omit<ProcessingResult, 'messageId'>,
    policy: StoragePolicy,
    file: (messageId: number) => ReadonlyMap<string, FiledPart>,
  ): { receipt: ReceiveResult; filed: string[] } {
    const a = this.admit(m);
    if (a.status !== 'RECEIVED') return { receipt: this.journalReceipt(m, a), filed: [] };
    // The steps saw the message before the journal linked it to an earlier one: their meta gets the links.
    const links = linksOf(a);
    const t = result.transformed;
    const meta = t ? { ...t.meta, ...links } : a.meta;
    const transformed = result.status === 'TRANSFORMED';
    // Written as complete (SENT); set back to TRANSFORMED below if a store writer did not file.
    const status = transformed ? 'SENT' : result.status;
    const messageId = this.insertMessage(m, a, { status, meta, error: result.error ?? null, attempts: 1 });
    const filed = transformed ? file(messageId) : new Map<string, FiledPart>();
    const now = result.now;
    const end = deliveriesAfter(result.status);
    for (const destination of m.destinations) {
      const f = filed.get(destination);
      this.s.insertDeliveryAs.run({
        messageId,
        channel: m.channel,
        destination,
        status: f ? 'SENT' : end,
        attempts: f ? 1 : 0,
        detail: f?.detail ?? null,
        sentAt: f ? now : null,
        now,
      });
    }
    const receipt = { messageId, ...links };
    if (!transformed) {
      this.complete(messageId, policy, now);
      return { receipt, filed: [] };
    }
    const complete = filed.size === m.destinations.length;
    if (!complete) this.s.setStatus.run('TRANSFORMED', now, messageId);
    this.keepProcessed(messageId, t, policy, complete, [...filed], now);
    return { receipt, filed: [...filed.keys()] };
  }

  /** Whether the journal holds a message of this channel with this de-duplication key and digest. */
  holdsCopy(channel: string, key: string, digest: string): boolean {
    return this.s.sameKey.all(channel, key).some((r) => r.digest === digest && r.status !== null);
  }

  /**
   * Records that processing of a message begins; returns how many earlier beginnings never reached a
   * journaled outcome (crashes or stalls). Meant for GroupCommit.mark: durable before the work starts.
   */
  startProcessing(messageId: number): number {
    return this.s.startProcessing.get(messageId) ?? 0;
  }

  /**
   * startProcessing for each message of a run, in one transaction (one mark for the run), and
   * startDelivery for the store-writer deliveries the run may file in process (see Deliveries).
   */
  startProcessingEach(messageIds: readonly number[], deliveryIds: readonly number[] = []): number[] {
    for (const id of deliveryIds) this.startDelivery(id);
    return messageIds.map((id) => this.startProcessing(id));
  }

  /** Takes back a delivery's start: the attempt it announced did not happen (nothing crashed). */
  unstartDelivery(deliveryId: number): void {
    this.s.unstartDelivery.run(deliveryId);
  }

  /** Whether an ordered queue holds an earlier delivery than this one: this one must wait its turn. */
  queuedBefore(deliveryId: number): boolean {
    return this.s.queuedBefore.get(deliveryId) !== undefined;
  }

  /** Same as startProcessing, for one delivery attempt. */
  startDelivery(deliveryId: number): number {
    return this.s.startDeliveryUnfinished.get(deliveryId) ?? 0;
  }

  /** Marks the start of a batch of delivery attempts (none of them a suspect): one commit for all. */
  startDeliveries(deliveryIds: number[]): void {
    for (const id of deliveryIds) this.s.startDelivery.run(id);
  }

  /**
   * Journals what one batch sent, in one write: each delivery SENT as `sent` would, and the
   * deliveries of the batch that were not attempted (an ordered batch stops at its first failure)
   * lose their start mark, so that they are not taken for attempts that crashed.
   */
  batchSent(r: { sent: SentResult[]; notAttempted: number[] }): void {
    for (const one of r.sent) this.sent(one);
    for (const id of r.notAttempted) this.unstartDelivery(id);
  }

  /** Records the answer a source wrote (its code: AA, AE, AR); it is no longer due. */
  answered(messageId: number, code: string): void {
    this.s.answered.run(code, messageId);
  }

  /** Whether the source owes this message's sender an answer now (never given, or to be rewritten). */
  answerDue(messageId: number): boolean {
    return this.s.answerDue.get(messageId) === 1;
  }

  /** Messages of a channel whose answer is due, oldest first, with what the answer is built from. */
  answersDue(channel: string, afterId: number, limit: number): DueAnswer[] {
    return this.s.answersDue.all(channel, afterId, limit).flatMap((id) => this.dueAnswer(id) ?? []);
  }

  /** The answer a message's source owes, if it is due. */
  dueAnswer(messageId: number): DueAnswer | undefined {
    const m = this.s.message.get(messageId);
    if (!m || !this.answerDue(messageId)) return undefined;
    const raw = this.s.content.get(messageId, 'raw', '');
    const blob = raw && blobOf(raw);
    return {
      messageId,
      content: raw?.content ?? Buffer.alloc(0),
      ...(blob ? { blob } : {}),
      contentType: raw?.content_type ?? m.content_type ?? 'application/octet-stream',
      meta: JSON.parse(m.meta) as Record<string, unknown>,
      sender: m.sender,
    };
  }

  /** Oldest messages of a channel not processed yet, for the processing stage and for recovery. */
  backlog(channel: string, afterId: number, limit: number): StoredMessage[] {
    return this.s.backlog.all(channel, afterId, limit).map(toMessage);
  }

  backlogCount(channel: string): number {
    return this.s.backlogCount.get(channel) ?? 0;
  }

  content(messageId: number, stage: Stage, destination = ''): StoredContent | undefined {
    const r = this.s.content.get(messageId, stage, destination);
    return r && toContent(stage, destination, r);
  }

  contents(messageId: number): StoredContent[] {
    return this.s.contents.all(messageId).map((r) => toContent(r.stage, r.destination, r));
  }

  /** Whether a journal row knows this blob (BlobFiles.sweep deletes the files none knows). */
  blobKnown(digest: string): boolean {
    return this.s.blobKnown.get(digest) === 1;
  }

  /**
   * Forgets the blobs no content references any more (their messages pruned, or their stages
   * dropped by the storage policy); returns their digests. Their files go at the next sweep.
   */
  releaseBlobs(): string[] {
    return this.s.releaseBlobs.all();
  }

  /** Blobs that messages still at work need: the engine checks them at start. */
  blobsInUse(): BlobInUse[] {
    return this.s.blobsInUse.all().map((r) => ({ messageId: r.message_id, digest: r.digest, size: r.size }));
  }

  /**
   * A message whose content is lost (its blob missing or altered): the message and its open
   * deliveries end in ERROR with the reason, nothing is processed or sent from bad bytes.
   */
  contentLost(r: { messageId: number; error: string; now: number }): void {
    const m = this.s.message.get(r.messageId);
    if (!m || (m.status !== 'RECEIVED' && m.status !== 'TRANSFORMED')) return;
    this.s.setMessageStatus.run('ERROR', r.error, null, r.now, r.messageId);
    this.s.openToError.run(r.error, r.now, r.messageId);
    this.s.answerLate.run(r.messageId);
  }

  /**
   * The transformed content, and each blob it references (`parts`) as a row of the same stage named
   * `part:<digest>`: held, checked at start and pruned with the message like any content.
   */
  private insertTransformed(
    messageId: number,
    t: NonNullable<ProcessingResult['transformed']>,
    now: number,
  ): void {
    this.insertContent(messageId, 'transformed', '', t.contentType, t.content, t.blob, now);
    for (const part of t.parts ?? [])
      this.insertContent(
        messageId,
        'transformed',
        `part:${part.digest}`,
        part.contentType,
        Buffer.alloc(0),
        part,
        now,
      );
  }

  private insertContent(
    messageId: number,
    stage: Stage,
    destination: string,
    contentType: string,
    content: Buffer,
    blob: BlobRef | undefined,
    now: number,
  ): void {
    if (!blob) {
      this.s.insertContent.run(messageId, stage, destination, contentType, content);
      return;
    }
    this.s.insertBlob.run(blob.digest, blob.size, now);
    this.s.insertBlobContent.run(messageId, stage, destination, contentType, blob.digest);
  }

  message(id: number): StoredMessage | undefined {
    const r = this.s.message.get(id);
    return r && toMessage(r);
  }

  deliveries(messageId: number): StoredDelivery[] {
    return this.s.deliveriesOf.all(messageId).map(toDelivery);
  }

  delivery(id: number): StoredDelivery | undefined {
    const r = this.s.delivery.get(id);
    return r && toDelivery(r);
  }

  /** Records the outcome of the processing stage and releases the deliveries to their queues. */
  processed(r: ProcessingResult, policy: StoragePolicy): void {
    const meta = r.transformed ? JSON.stringify(r.transformed.meta) : null;
    if (meta === null && r.error === undefined) this.s.setStatus.run(r.status, r.now, r.messageId);
    else this.s.setMessageStatus.run(r.status, r.error ?? null, meta, r.now, r.messageId);
    if (r.transformed) this.insertTransformed(r.messageId, r.transformed, r.now);
    this.s.queueDeliveries.run(deliveriesAfter(r.status), r.now, r.messageId);
    if (r.status !== 'TRANSFORMED') this.complete(r.messageId, policy, r.now);
  }

  /**
   * Records a processing result together with the store-writer deliveries the processing stage
   * filed in the same transaction (`filed`: what `sent` would record for each). The end state is
   * that of processed() followed by sent() for each, but each row is written once, in its end
   * state: a filed delivery goes from WAITING to SENT (not QUEUED, then SENT), and a message
   * whose deliveries were all filed goes to SENT (not TRANSFORMED, then SENT), its contents kept
   * as the storage policy keeps a complete message's (not written, then dropped).
   */
  processedAndSent(r: ProcessingResult, policy: StoragePolicy, filed: readonly SentResult[]): void {
    if (r.status !== 'TRANSFORMED' || filed.length === 0) {
      this.processed(r, policy);
      return;
    }
    const destinations = filed.map((f) => {
      const d = this.s.markSentWaiting.get(r.now, f.detail ?? null, r.now, f.deliveryId, r.messageId);
      if (d === undefined)
        throw new Error(`delivery ${f.deliveryId} is not waiting for message ${r.messageId}`);
      return d;
    });
    // Processing leaves no delivery of the message in another state than WAITING: none queued, all filed.
    const complete = this.s.queueDeliveries.run('QUEUED', r.now, r.messageId).changes === 0;
    const meta = r.transformed ? JSON.stringify(r.transformed.meta) : null;
    this.s.setMessageStatus.run(complete ? 'SENT' : 'TRANSFORMED', null, meta, r.now, r.messageId);
    this.keepProcessed(
      r.messageId,
      r.transformed,
      policy,
      complete,
      filed.map((f, i) => [destinations[i]!, f]),
      r.now,
    );
  }

  /**
   * The contents of a processed message whose store writers filed in its result's transaction: what
   * the storage policy keeps of a complete message (all filed), else everything still needed.
   */
  private keepProcessed(
    messageId: number,
    t: ProcessingResult['transformed'],
    policy: StoragePolicy,
    complete: boolean,
    filed: ReadonlyArray<readonly [string, FiledPart]>,
    now: number,
  ): void {
    const kept = (stage: Stage): boolean => !complete || keptAfterCompletion[policy].has(stage);
    if (t && kept('transformed')) this.insertTransformed(messageId, t, now);
    for (const [destination, f] of filed) {
      if (f.sent && kept('sent'))
        this.insertContent(
          messageId,
          'sent',
          destination,
          f.sent.contentType,
          f.sent.content,
          f.sent.blob,
          now,
        );
      if (f.response && kept('response')) {
        const { contentType, content } = f.response;
        this.s.insertContent.run(messageId, 'response', destination, contentType, content);
      }
    }
    if (!kept('raw')) this.s.dropStages.run(messageId, 'raw');
  }

  /** Whether a destination's queue holds a delivery: a newcomer to an ordered queue waits behind it. */
  queueHolds(channel: string, destination: string): boolean {
    return this.s.anyQueued.get(channel, destination) !== undefined;
  }

  /** Next deliveries of one destination queue, oldest first. Ordered queues pass `due = false`: the head blocks. */
  queue(channel: string, destination: string, limit: number, dueBefore: number | null): StoredDelivery[] {
    const rows =
      dueBefore === null
        ? this.s.queueHead.all(channel, destination, limit)
        : this.s.queueDue.all(channel, destination, dueBefore, limit);
    return rows.map(toDelivery);
  }

  queueCount(channel: string, destination: string): number {
    return this.s.queueCount.get(channel, destination) ?? 0;
  }

  /** When the earliest retry of a queue falls due, or null when the queue is empty. */
  nextAttemptAt(channel: string, destination: string): number | null {
    return this.s.nextAttempt.get(channel, destination) ?? null;
  }

  sent(r: SentResult): void {
    const d = this.s.delivery.get(r.deliveryId);
    if (!d) throw new Error(`delivery ${r.deliveryId} no longer exists`);
    this.s.markSent.run(r.now, r.detail ?? null, r.now, r.deliveryId);
    if (r.sent)
      this.insertContent(
        d.message_id,
        'sent',
        d.destination,
        r.sent.contentType,
        r.sent.content,
        r.sent.blob,
        r.now,
      );
    if (r.response) {
      this.s.insertContent.run(
        d.message_id,
        'response',
        d.destination,
        r.response.contentType,
        r.response.content,
      );
    }
    this.settle(d.message_id, r.policy, r.now);
  }

  filteredDelivery(deliveryId: number, policy: StoragePolicy, now: number): void {
    const d = this.s.delivery.get(deliveryId);
    if (!d) return;
    this.s.markFiltered.run(now, deliveryId);
    this.settle(d.message_id, policy, now);
  }

  failed(r: FailedResult, policy: StoragePolicy): void {
    const d = this.s.delivery.get(r.deliveryId);
    if (!d) throw new Error(`delivery ${r.deliveryId} no longer exists`);
    this.s.markFailed.run(
      r.quarantine ? 'QUARANTINED' : r.retryAt === null ? 'ERROR' : 'QUEUED',
      r.retryAt ?? 0,
      r.error,
      r.now,
      r.deliveryId,
    );
    if (r.retryAt === null || r.quarantine) this.settle(d.message_id, policy, r.now);
  }

  /** Puts a delivery back at the end of its queue with fresh attempts (the dashboard's replay). */
  requeue(deliveryId: number, now: number): StoredDelivery {
    const d = this.s.delivery.get(deliveryId);
    if (!d) throw new Error(`delivery ${deliveryId} does not exist`);
    const m = this.s.message.get(d.message_id)!;
    if (
      !this.s.content.get(d.message_id, 'transformed', '') &&
      !this.s.content.get(d.message_id, 'raw', '')
    ) {
      throw new Error(
        `message ${d.message_id} kept no content (storage policy metadata): it cannot be replayed`,
      );
    }
    this.s.requeue.run(now, deliveryId);
    if (m.status !== 'TRANSFORMED') this.s.setMessageStatus.run('TRANSFORMED', null, null, now, d.message_id);
    return toDelivery(this.s.delivery.get(deliveryId)!);
  }

  private settle(messageId: number, policy: StoragePolicy, now: number): void {
    if ((this.s.openDeliveries.get(messageId) ?? 0) > 0) return;
    const errors = this.s.erroredDeliveries.get(messageId) ?? 0;
    const m = this.s.message.get(messageId)!;
    if (m.status === 'TRANSFORMED') {
      if (errors > 0) {
        const status = (this.s.quarantinedDeliveries.get(messageId) ?? 0) > 0 ? 'QUARANTINED' : 'ERROR';
        // The failing destination's own reason: it is what the sender's late answer and the browser show.
        this.s.setMessageStatus.run(status, this.s.firstError.get(messageId) ?? null, null, now, messageId);
        this.s.answerLate.run(messageId);
      } else this.s.setStatus.run('SENT', now, messageId);
    }
    this.complete(messageId, policy, now);
  }

  private complete(messageId: number, policy: StoragePolicy, _now: number): void {
    const keep = keptAfterCompletion[policy];
    // Keep everything of a failed message: the admin needs it to understand and replay.
    const m = this.s.message.get(messageId)!;
    if (m.status === 'ERROR' || m.status === 'QUARANTINED') return;
    for (const stage of ['raw', 'transformed', 'sent', 'response'] as const) {
      if (!keep.has(stage)) this.s.dropStages.run(messageId, stage);
    }
  }

  /** Deletes up to `limit` finished messages received before `before`; returns how many went. */
  prune(before: number, limit: number): number {
    const ids = this.s.pruneBatch.all(before, limit);
    for (const id of ids) {
      this.s.deleteDedupOf.run(id);
      this.s.deleteMessage.run(id);
    }
    return ids.length;
  }
}
