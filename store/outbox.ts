// The store's outbox: messages born in the store (a validated RCP form, a PPS, a molecular order),
// written by the very transaction of the change that causes them, and read by the `store-outbox`
// source of their channel (DESIGN.md, rule 10). A row is taken into the journal by one writer
// method that journals the message and marks the row taken together, so across a crash a row is
// either still waiting or journaled exactly once: never lost, never journaled twice.
import type { Db, Migration } from './db.ts';
import type { Journal, NewMessage, ReceiveResult } from './journal.ts';

// Version 690-699: the last tens of the RCP/PPS range (600-699), whose first user the outbox is; it
// serves any channel (documents-out, molecular-orders).
export const outboxMigrations: Migration[] = [
  {
    version: 690,
    name: 'outbox',
    // content is emptied once taken: the journal holds it from then on; the row stays as the link
    // from the change that caused it to the message that carries it.
    up: `
      CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        channel TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        content_type TEXT NOT NULL,
        content BLOB NOT NULL,
        meta TEXT NOT NULL DEFAULT '{}',
        owner TEXT,
        message_id INTEGER,
        taken_at INTEGER
      );
      CREATE INDEX outbox_waiting ON outbox (channel, id) WHERE message_id IS NULL;
    `,
  },
];

/** What a store module puts in the outbox for a channel. */
export interface OutboxItem {
  channel: string;
  content: Uint8Array | string;
  contentType: string;
  /** Shown in the message browser, and how the message is found back from what caused it. */
  meta?: Record<string, string | number | boolean | null>;
  /** FINESS owning the message (what an establishment's account may see), when there is one. */
  owner?: string | null;
  now: number;
}

export interface OutboxRow {
  id: number;
  channel: string;
  createdAt: number;
  contentType: string;
  content: Buffer;
  meta: Record<string, string | number | boolean | null>;
  owner: string | null;
  /** The journal message it was taken into; null while it waits. */
  messageId: number | null;
}

interface Row {
  id: number;
  channel: string;
  created_at: number;
  content_type: string;
  content: Buffer;
  meta: string;
  owner: string | null;
  message_id: number | null;
}

const toRow = (r: Row): OutboxRow => ({
  id: r.id,
  channel: r.channel,
  createdAt: r.created_at,
  contentType: r.content_type,
  content: r.content,
  meta: JSON.parse(r.meta) as OutboxRow['meta'],
  owner: r.owner,
  messageId: r.message_id,
});

export class Outbox {
  private readonly s;

  constructor(
    db: Db,
    private readonly journal: Journal,
  ) {
    this.s = {
      insert: db.prepare(
        `INSERT INTO outbox (channel, created_at, content_type, content, meta, owner)
         VALUES (?, ?, ?, ?, ?, ?)`,
      ),
      row: db.prepare<[number], Row>('SELECT * FROM outbox WHERE id = ?'),
      waiting: db.prepare<[string, number, number], Row>(
        'SELECT * FROM outbox WHERE channel = ? AND message_id IS NULL AND id > ? ORDER BY id LIMIT ?',
      ),
      waitingCount: db
        .prepare<[string], number>('SELECT count(*) FROM outbox WHERE channel = ? AND message_id IS NULL')
        .pluck(),
      take: db.prepare(
        `UPDATE outbox SET message_id = ?, taken_at = ?, content = X'' WHERE id = ? AND message_id IS NULL`,
      ),
    };
  }

  /** Adds a row; meant to be called by another module's write method, inside its transaction. */
  add(item: OutboxItem): number {
    const content = typeof item.content === 'string' ? Buffer.from(item.content) : Buffer.from(item.content);
    const info = this.s.insert.run(
      item.channel,
      item.now,
      item.contentType,
      content,
      JSON.stringify(item.meta ?? {}),
      item.owner ?? null,
    );
    return Number(info.lastInsertRowid);
  }

  /** Rows of a channel still waiting to be taken, oldest first. */
  waiting(channel: string, afterId: number, limit: number): OutboxRow[] {
    return this.s.waiting.all(channel, afterId, limit).map(toRow);
  }

  waitingCount(channel: string): number {
    return this.s.waitingCount.get(channel) ?? 0;
  }

  row(id: number): OutboxRow | undefined {
    const r = this.s.row.get(id);
    return r ? toRow(r) : undefined;
  }

  /**
   * Journals the message carrying row `id` and marks the row taken, in one transaction. A row taken
   * already (a source that read it before a crash and offers it again) journals nothing and answers
   * with the message that carries it.
   */
  receive(id: number, message: NewMessage): ReceiveResult & { alreadyTaken?: boolean } {
    const row = this.s.row.get(id);
    if (!row) throw new Error(`outbox row ${id} does not exist`);
    if (row.channel !== message.channel)
      throw new Error(`outbox row ${id} belongs to channel ${row.channel}, not ${message.channel}`);
    if (row.message_id !== null) return { messageId: row.message_id, alreadyTaken: true };
    const receipt = this.journal.receive({
      ...message,
      content: Buffer.from(message.content),
      meta: { ...message.meta, outboxId: id },
    });
    this.s.take.run(receipt.messageId, message.now, id);
    return receipt;
  }
}
