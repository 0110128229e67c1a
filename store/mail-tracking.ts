// Delivery tracking of outbound MSSanté mail: the delivery status notifications (DSN, RFC 3464) and
// disposition notifications (MDN, RFC 8098) that come back, matched to the delivery that sent the
// mail they are about. An `mssante` delivery sends under Message-ID `<CHANNEL-MESSAGEID-DESTINATION@domain>`
// (its idempotency key) and journals `Message-ID <…>` as its detail: the match reads both, so no
// write is needed before the send. Migrations 700-709.
import type { Db, Migration } from './db.ts';
import type { Filed } from './filing.ts';

export const mailTrackingMigrations: Migration[] = [
  {
    version: 700,
    name: 'mail tracking: DSN/MDN reports about outbound mail',
    // A report is kept even when no delivery of ours sent its original (a report about a mail of
    // another system, or one already pruned): it stays readable in the journal's report message too.
    up: `
      CREATE TABLE mail_reports (
        id INTEGER PRIMARY KEY,
        report_key TEXT NOT NULL UNIQUE,
        original_message_id TEXT NOT NULL,
        delivery_id INTEGER REFERENCES deliveries (id) ON DELETE SET NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        recipient TEXT,
        reason TEXT,
        reported_by_message INTEGER,
        received_at INTEGER NOT NULL
      );
      CREATE INDEX mail_reports_by_delivery ON mail_reports (delivery_id);
    `,
  },
];

export type ReportKind = 'dsn' | 'mdn';

/** One entry of a DSN or MDN, as the tracking destination files it. */
export interface NewReport {
  /** Unique per report and recipient (the report mail's id and the recipient): a re-read changes nothing. */
  reportKey: string;
  originalMessageId: string;
  kind: ReportKind;
  /** DSN action (delivered, failed, delayed…) or MDN disposition (displayed, processed, error…). */
  status: string;
  recipient: string | null;
  /** Diagnostic of a failure, or the MDN's error text (`902^Identifiant de patient inconnu^…`). */
  reason: string | null;
  /** The journal message that carried the report. */
  reportedByMessage: number | null;
  now: number;
}

export interface MailReport {
  id: number;
  kind: ReportKind;
  status: string;
  recipient: string | null;
  reason: string | null;
  reportedByMessage: number | null;
  receivedAt: number;
}

/** The mail a delivery sent, as the message browser and the API show it. */
export interface DeliveryMail {
  messageId: string;
  reports: MailReport[];
}

/** What an mssante delivery journals as its detail: `Message-ID <id> …`. */
const SENT_DETAIL = /^Message-ID <([^<>\s]+)>/;

interface ReportRow {
  id: number;
  kind: ReportKind;
  status: string;
  recipient: string | null;
  reason: string | null;
  reported_by_message: number | null;
  received_at: number;
}

export class MailTracking {
  private readonly s;

  constructor(db: Db) {
    this.s = {
      delivery: db.prepare<[number, string, string], { id: number; detail: string | null }>(
        'SELECT id, detail FROM deliveries WHERE message_id = ? AND channel = ? AND destination = ?',
      ),
      insert: db.prepare(
        `INSERT INTO mail_reports (report_key, original_message_id, delivery_id, kind, status, recipient, reason,
                                   reported_by_message, received_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (report_key) DO NOTHING`,
      ),
      reports: db.prepare<[number], ReportRow>(
        `SELECT id, kind, status, recipient, reason, reported_by_message, received_at FROM mail_reports
         WHERE delivery_id = ? ORDER BY id`,
      ),
    };
  }

  /**
   * The delivery that sent this Message-ID: its left part is CHANNEL-MESSAGEID-DESTINATION, where
   * channel and destination names may hold hyphens and digits, so every split at a numeric part is
   * tried, and only a delivery whose journaled detail names this very Message-ID counts.
   */
  deliveryOf(messageId: string): number | null {
    const key = messageId.slice(0, messageId.lastIndexOf('@'));
    const parts = key.split('-');
    for (let i = 1; i < parts.length - 1; i++) {
      if (!/^\d+$/.test(parts[i]!)) continue;
      const row = this.s.delivery.get(
        Number(parts[i]),
        parts.slice(0, i).join('-'),
        parts.slice(i + 1).join('-'),
      );
      if (row && SENT_DETAIL.exec(row.detail ?? '')?.[1] === messageId) return row.id;
    }
    return null;
  }

  /**
   * Files the entries of one DSN or MDN (the mss-tracking destination's filing): each recorded once,
   * matched to the delivery that sent the original when it was ours.
   */
  report(entries: NewReport[]): Filed {
    let added = 0;
    const deliveries = new Set<number>();
    for (const r of entries) {
      const delivery = this.deliveryOf(r.originalMessageId);
      if (delivery !== null) deliveries.add(delivery);
      added += this.s.insert.run(
        r.reportKey,
        r.originalMessageId,
        delivery,
        r.kind,
        r.status,
        r.recipient,
        r.reason,
        r.reportedByMessage,
        r.now,
      ).changes;
    }
    const what = entries.map(
      (e) => `${e.kind.toUpperCase()} ${e.status}${e.recipient ? ` (${e.recipient})` : ''}`,
    );
    const matched = [...deliveries];
    return {
      response: { added, deliveries: matched },
      detail:
        matched.length === 0
          ? `${what.join(', ')} about <${entries[0]?.originalMessageId ?? '?'}>: no mail of this DCC has that Message-ID (kept)`
          : `${what.join(', ')} recorded on delivery ${matched.join(', ')}${added < entries.length ? ' (already known)' : ''}`,
    };
  }

  /** The mail each delivery given sent (those that sent none are absent), with its reports, oldest first. */
  mailOf(deliveries: ReadonlyArray<{ id: number; detail: string | null }>): Map<number, DeliveryMail> {
    const out = new Map<number, DeliveryMail>();
    for (const d of deliveries) {
      const messageId = SENT_DETAIL.exec(d.detail ?? '')?.[1];
      if (!messageId) continue;
      out.set(d.id, {
        messageId,
        reports: this.s.reports.all(d.id).map((row) => ({
          id: row.id,
          kind: row.kind,
          status: row.status,
          recipient: row.recipient,
          reason: row.reason,
          reportedByMessage: row.reported_by_message,
          receivedAt: row.received_at,
        })),
      });
    }
    return out;
  }
}
