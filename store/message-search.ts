// Searching the message journal for the message browser, fast at millions of rows: every query
// walks an index in id order (newest first) and stops at the page size; pages are keyset-based
// (`after` = the last id shown), never OFFSET. Free text goes through a contentless FTS5 index of
// each message's sender, owner, error and metadata values (file name, MSH-10, IPP …), kept current
// by triggers so that the journal's writers need not know it exists.
import type { Db, Migration } from './db.ts';
import { toMessage, type MessageRow, type MessageStatus, type StoredMessage } from './journal.ts';

const indexedText = (
  row: 'new',
) => `coalesce(${row}.sender, '') || ' ' || coalesce(${row}.owner, '') || ' ' ||
  coalesce(${row}.error, '') || ' ' ||
  coalesce((SELECT group_concat(value, ' ') FROM json_tree(${row}.meta) WHERE type IN ('text', 'integer')), '')`;

export const messageSearchMigrations: Migration[] = [
  {
    version: 350,
    name: 'message browser full-text index',
    up: `
      CREATE VIRTUAL TABLE message_text USING fts5 (
        text, content = '', contentless_delete = 1, tokenize = 'unicode61 remove_diacritics 2', prefix = '3'
      );
      INSERT INTO message_text (rowid, text) SELECT new.id, ${indexedText('new')} FROM messages AS new;
      CREATE TRIGGER message_text_insert AFTER INSERT ON messages
        BEGIN INSERT INTO message_text (rowid, text) VALUES (new.id, ${indexedText('new')}); END;
      CREATE TRIGGER message_text_update AFTER UPDATE OF meta, error ON messages
        WHEN new.meta IS NOT old.meta OR new.error IS NOT old.error
        BEGIN
          DELETE FROM message_text WHERE rowid = old.id;
          INSERT INTO message_text (rowid, text) VALUES (new.id, ${indexedText('new')});
        END;
      CREATE TRIGGER message_text_delete AFTER DELETE ON messages
        BEGIN DELETE FROM message_text WHERE rowid = old.id; END;
    `,
  },
];

export interface MessageFilter {
  channel?: string;
  status?: MessageStatus;
  /** Received at or after (ms since epoch). */
  from?: number;
  /** Received before (ms since epoch). */
  to?: number;
  /** Words to find in the sender, owner, error or metadata (prefix match, accents ignored). */
  text?: string;
  /** FINESS of the account the search is scoped to (establishment and lab accounts). */
  owner?: string;
}

/** A message as the browser lists it: the journal's own view of a row. */
export type MessageSummary = StoredMessage;

/** Receive times come from the writers' clocks a little before their commit: ids and times may disagree by this much. */
const CLOCK_MARGIN_MS = 1000;

/**
 * `Dupont ADT_A28` → `"dupont" "adt" "a28"*`: whole words, the last one as typed so far (a prefix).
 * Only the last word is a prefix because FTS5 materialises a prefix's whole doclist, while a plain
 * word is walked lazily newest first: a common first word then costs nothing. Quotes neutralise FTS syntax.
 */
export function ftsQuery(text: string): string | null {
  const words = text.split(/[^\p{L}\p{N}]+/u).filter(Boolean);
  return words.length ? words.map((w, i) => `"${w}"${i === words.length - 1 ? '*' : ''}`).join(' ') : null;
}

export class MessageSearch {
  private readonly s;
  private readonly cache = new Map<string, ReturnType<Db['prepare']>>();

  constructor(private readonly db: Db) {
    this.s = {
      idAfterTime: db
        .prepare<[number], number>(
          'SELECT id FROM messages WHERE received_at > ? ORDER BY received_at LIMIT 1',
        )
        .pluck(),
      idBeforeTime: db
        .prepare<[number], number>(
          'SELECT id FROM messages WHERE received_at < ? ORDER BY received_at DESC LIMIT 1',
        )
        .pluck(),
    };
  }

  /** One page of messages, newest first. `after` is the `next` of the previous page. */
  search(
    filter: MessageFilter,
    page: { limit?: number; after?: number | null } = {},
  ): { items: MessageSummary[]; next: number | null } {
    const limit = Math.min(Math.max(page.limit ?? 50, 1), 500);
    const params: Record<string, unknown> = { limit: limit + 1 };
    const where: string[] = [];
    let upper = page.after ?? Number.MAX_SAFE_INTEGER;
    let lower = 0;
    // Time bounds become id bounds through the time index, so the walk in id order starts and stops near them.
    if (filter.to !== undefined) {
      upper = Math.min(upper, this.s.idAfterTime.get(filter.to + CLOCK_MARGIN_MS) ?? upper);
      where.push('+m.received_at < @to');
      params.to = filter.to;
    }
    if (filter.from !== undefined) {
      lower = this.s.idBeforeTime.get(filter.from - CLOCK_MARGIN_MS) ?? 0;
      where.push('+m.received_at >= @from');
      params.from = filter.from;
    }
    for (const key of ['channel', 'status', 'owner'] as const) {
      if (filter[key] === undefined) continue;
      where.push(`m.${key} = @${key}`);
      params[key] = filter[key];
    }
    params.upper = upper;
    params.lower = lower;
    const match = filter.text ? ftsQuery(filter.text) : null;
    let sql: string;
    if (match) {
      params.match = match;
      // CROSS JOIN fixes the order: walk the text index newest first, look each hit up by id.
      sql = `SELECT m.* FROM message_text t CROSS JOIN messages m ON m.id = t.rowid
        WHERE message_text MATCH @match AND t.rowid < @upper AND t.rowid > @lower
        ${where.map((w) => `AND ${w}`).join(' ')} ORDER BY t.rowid DESC LIMIT @limit`;
    } else {
      sql = `SELECT m.* FROM messages m WHERE m.id < @upper AND m.id > @lower
        ${where.map((w) => `AND ${w}`).join(' ')} ORDER BY m.id DESC LIMIT @limit`;
    }
    const rows = this.statement(sql).all(params) as MessageRow[];
    const items = rows.slice(0, limit).map(toMessage);
    return { items, next: rows.length > limit ? items.at(-1)!.id : null };
  }

  /** Query shapes are few (one per filter combination): prepare each once. */
  private statement(sql: string): ReturnType<Db['prepare']> {
    let st = this.cache.get(sql);
    if (!st) {
      st = this.db.prepare(sql);
      this.cache.set(sql, st);
    }
    return st;
  }
}
