// Searching the message journal for the message browser, fast at millions of rows: every query
// walks an index in id order (newest first) and stops at the page size; pages are keyset-based
// (`after` = the last id shown), never OFFSET. Free text goes through a contentless FTS5 index
// filled in the background from the journal (channels/message-index.ts) past a durable high-water
// mark, so that receiving a message writes nothing that only serves search; the few messages past
// the mark are matched by reading them, so a search never misses what was just received.
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
  {
    version: 351,
    name: 'message index filled in the background from the journal',
    // The receive path no longer writes the index; everything is indexed again with the terms of
    // the content (MSH-10, PID-3), which the triggers could not read. Pruning still deletes rows.
    up: `
      DROP TRIGGER message_text_insert;
      DROP TRIGGER message_text_update;
      INSERT INTO message_text (message_text) VALUES ('delete-all');
      CREATE TABLE message_index_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        high_water INTEGER NOT NULL
      );
      INSERT INTO message_index_state (id, high_water) VALUES (1, 0);
    `,
  },
];

/** What the indexer reads of a message to find its search terms. */
export interface IndexSource {
  id: number;
  sender: string | null;
  owner: string | null;
  error: string | null;
  meta: Record<string, unknown>;
  contentType: string | null;
  /** The raw content's first bytes (terms sit in the headers), or null once the storage policy dropped it. */
  content: Buffer | null;
}

/** Content read for terms: a header and the PID of every message of a large batch file fit. */
const INDEXED_CONTENT_BYTES = 1024 * 1024;
/** Messages past the high-water mark read at query time: the indexer's lag, not the journal. */
const TAIL_LIMIT = 2000;

/** Lowercase words without diacritics, split as FTS5's unicode61 tokenizer splits them. */
export function searchWords(text: string): string[] {
  return text
    .normalize('NFD')
    .replace(/\p{M}+/gu, '')
    .toLowerCase()
    .split(/[^\p{L}\p{N}]+/u)
    .filter(Boolean);
}

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
  /** Messages the identity decisions or the filed documents link to this patient, or to a patient merged into it. */
  patient?: number;
}

/** A message as the browser lists it: the journal's own view of a row. */
export type MessageSummary = StoredMessage;

/** Receive times come from the writers' clocks a little before their commit: ids and times may disagree by this much. */
const CLOCK_MARGIN_MS = 1000;

/**
 * The words of a query, grouped as typed: `API-IPP-3 adt` → [["api", "ipp", "3"], ["adt"]]. A group
 * is a phrase (its words side by side, as in the identifier it was cut from), so that an IPP or a
 * file name finds itself and not every message holding its pieces somewhere.
 */
export function queryPhrases(text: string): string[][] {
  return text
    .split(/\s+/)
    .map(searchWords)
    .filter((words) => words.length > 0);
}

/**
 * `ADT_A28 chu-demo` → `"adt a28" "chu demo" *`: phrases of whole words, the last word as typed so far (a
 * prefix). Only the last word is a prefix because FTS5 materialises a prefix's whole doclist, while a
 * plain word is walked lazily newest first: a common first word then costs nothing. Quotes
 * neutralise FTS syntax.
 */
export function ftsQuery(text: string): string | null {
  const phrases = queryPhrases(text);
  return phrases.length
    ? phrases.map((p, i) => `"${p.join(' ')}"${i === phrases.length - 1 ? ' *' : ''}`).join(' ')
    : null;
}

export class MessageSearch {
  private readonly s;
  private readonly cache = new Map<string, ReturnType<Db['prepare']>>();
  private readonly tailWords = new Map<number, string[]>();

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
      highWater: db.prepare<[], number>('SELECT high_water FROM message_index_state').pluck(),
      setHighWater: db.prepare<[number]>('UPDATE message_index_state SET high_water = ?'),
      unindexed: db.prepare<[number, number, number], IndexRow>(
        `SELECT m.id, m.sender, m.owner, m.error, m.meta, m.content_type AS contentType,
           substr(c.content, 1, ${INDEXED_CONTENT_BYTES}) AS content
         FROM messages m LEFT JOIN contents c ON c.message_id = m.id AND c.stage = 'raw' AND c.destination = ''
         WHERE m.id > ? AND m.id < ? ORDER BY m.id LIMIT ?`,
      ),
      message: db.prepare<[number], MessageRow>('SELECT * FROM messages WHERE id = ?'),
      insertText: db.prepare<[number, string]>('INSERT INTO message_text (rowid, text) VALUES (?, ?)'),
    };
  }

  /** Every message up to this id has its row in the text index. */
  highWater(): number {
    return this.s.highWater.get() ?? 0;
  }

  /** The next messages to index, oldest first. */
  unindexed(limit: number): IndexSource[] {
    return this.s.unindexed.all(this.highWater(), Number.MAX_SAFE_INTEGER, limit).map(toSource);
  }

  /**
   * Writes a batch of index rows and moves the mark past them, in one transaction (run it through
   * the store's writer): after a crash the indexer resumes at the mark, with no row written twice.
   */
  record(rows: Array<{ id: number; text: string }>, highWater: number): void {
    for (const r of rows) this.s.insertText.run(r.id, r.text);
    this.s.setHighWater.run(highWater);
  }

  /**
   * One page of messages, newest first. `after` is the `next` of the previous page. `termsOf`
   * gives the search terms of a message not indexed yet (the indexer's own function); without it
   * free text only finds indexed messages.
   */
  search(
    filter: MessageFilter,
    page: { limit?: number; after?: number | null } = {},
    termsOf?: (m: IndexSource) => string,
  ): { items: MessageSummary[]; next: number | null } {
    const limit = Math.min(Math.max(page.limit ?? 50, 1), 500);
    const params: Record<string, unknown> = {};
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
    let cte = '';
    if (filter.patient !== undefined) {
      // A merged patient's messages concern its survivor: follow merged_into back from the survivor.
      cte = `WITH RECURSIVE family (id) AS (SELECT @patient UNION SELECT p.id FROM patients p JOIN family f ON p.merged_into = f.id)`;
      where.push(
        `(m.id IN (SELECT d.message_id FROM identity_decisions d WHERE d.message_id IS NOT NULL
          AND (d.patient_id IN family OR d.other_patient_id IN family))
         OR m.id IN (SELECT v.message_id FROM document_versions v JOIN documents doc ON doc.id = v.document_id
          WHERE v.message_id IS NOT NULL AND doc.patient_id IN family))`,
      );
      params.patient = filter.patient;
    }
    const and = where.map((w) => `AND ${w}`).join(' ');
    const phrases = filter.text ? queryPhrases(filter.text) : [];
    const match = filter.text ? ftsQuery(filter.text) : null;
    if (!match) {
      const sql = `${cte} SELECT m.* FROM messages m WHERE m.id < @upper AND m.id > @lower ${and}
        ORDER BY m.id DESC LIMIT @limit`;
      const rows = this.statement(sql).all({ ...params, upper, lower, limit: limit + 1 }) as MessageRow[];
      return pageOf(rows, limit);
    }
    const found: MessageRow[] = [];
    const mark = this.highWater();
    if (termsOf && upper > mark + 1) {
      // Past the mark: read the newest unindexed messages that pass the other filters, match in memory.
      // Ids first: a row is read whole only to find its words once, or to be shown.
      const tail = this.statement(
        `${cte} SELECT m.id FROM messages m WHERE m.id < @upper AND m.id > @lower ${and}
         ORDER BY m.id DESC LIMIT ${TAIL_LIMIT}`,
      )
        .pluck()
        .all({ ...params, upper, lower: Math.max(lower, mark) }) as number[];
      for (const id of tail) {
        if (!matches(this.tailWordsOf(id, mark, termsOf), phrases)) continue;
        const row = this.s.message.get(id);
        if (row) found.push(row);
        if (found.length > limit) return pageOf(found, limit);
      }
    }
    // CROSS JOIN fixes the order: walk the text index newest first, look each hit up by id.
    const sql = `${cte} SELECT m.* FROM message_text t CROSS JOIN messages m ON m.id = t.rowid
      WHERE message_text MATCH @match AND t.rowid < @upper AND t.rowid > @lower ${and}
      ORDER BY t.rowid DESC LIMIT @limit`;
    const indexed = this.statement(sql).all({
      ...params,
      match,
      upper: Math.min(upper, mark + 1),
      lower,
      limit: limit + 1 - found.length,
    }) as MessageRow[];
    return pageOf([...found, ...indexed], limit);
  }

  /**
   * The words of an unindexed message, remembered until the indexer passes it: a search typed
   * letter by letter would otherwise read and parse the same tail each time.
   */
  private tailWordsOf(id: number, mark: number, termsOf: (m: IndexSource) => string): string[] {
    let words = this.tailWords.get(id);
    if (!words) {
      const [row] = this.s.unindexed.all(id - 1, id + 1, 1);
      words = row ? searchWords(termsOf(toSource(row))) : [];
      if (this.tailWords.size >= 2 * TAIL_LIMIT)
        for (const id of this.tailWords.keys()) if (id <= mark) this.tailWords.delete(id);
      if (this.tailWords.size >= 2 * TAIL_LIMIT) this.tailWords.clear();
      this.tailWords.set(id, words);
    }
    return words;
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

interface IndexRow {
  id: number;
  sender: string | null;
  owner: string | null;
  error: string | null;
  meta: string;
  contentType: string | null;
  content: Buffer | null;
}

const toSource = (r: IndexRow): IndexSource => ({
  id: r.id,
  sender: r.sender,
  owner: r.owner,
  error: r.error,
  meta: JSON.parse(r.meta) as Record<string, unknown>,
  contentType: r.contentType,
  content: r.content,
});

/** FTS semantics: every phrase present as consecutive words, the very last word as a prefix. */
function matches(words: string[], phrases: string[][]): boolean {
  return phrases.every((phrase, p) => {
    const prefix = p === phrases.length - 1;
    for (let start = 0; start + phrase.length <= words.length; start++) {
      const ok = phrase.every((w, i) =>
        prefix && i === phrase.length - 1 ? words[start + i]!.startsWith(w) : words[start + i] === w,
      );
      if (ok) return true;
    }
    return false;
  });
}

function pageOf(rows: MessageRow[], limit: number): { items: MessageSummary[]; next: number | null } {
  const items = rows.slice(0, limit).map(toMessage);
  return { items, next: rows.length > limit ? items.at(-1)!.id : null };
}
