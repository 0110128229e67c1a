// Delivery tracking of outbound MSSanté mail: the Message-ID each delivery sent under, and the
// delivery status notifications (DSN, RFC 3464) and disposition notifications (MDN, RFC 8098) that
// came back, matched to it by Original-Message-ID. Migrations 700-709.
import type { Db, Migration } from './db.ts';

export const mailTrackingMigrations: Migration[] = [
  {
    version: 700,
    name: 'mail tracking: outbound Message-IDs and the DSN/MDN reports about them',
    // mail_sent goes with its delivery (pruned with the message); a report is kept even when nothing
    // here sent its original (a report about a mail of another system, or one already pruned).
    up: `
      CREATE TABLE mail_sent (
        message_id_header TEXT PRIMARY KEY,
        delivery_id INTEGER NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
        recipients TEXT NOT NULL,
        first_sent_at INTEGER NOT NULL
      );
      CREATE INDEX mail_sent_by_delivery ON mail_sent (delivery_id);

      CREATE TABLE mail_reports (
        id INTEGER PRIMARY KEY,
        report_key TEXT NOT NULL UNIQUE,
        original_message_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        recipient TEXT,
        reason TEXT,
        reported_by_message INTEGER,
        received_at INTEGER NOT NULL
      );
      CREATE INDEX mail_reports_by_original ON mail_reports (original_message_id);
    `,
  },
];

export type ReportKind = 'dsn' | 'mdn';
/** DSN actions (delivered, failed, delayed…) and MDN dispositions (displayed, processed, error…), lower case. */
export type ReportStatus = string;

export interface SentMail {
  messageIdHeader: string;
  deliveryId: number;
  recipients: string[];
  now: number;
}

export interface NewReport {
  /** Unique per report and recipient (the report mail's id and the recipient): a re-read changes nothing. */
  reportKey: string;
  originalMessageId: string;
  kind: ReportKind;
  status: ReportStatus;
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
  status: ReportStatus;
  recipient: string | null;
  reason: string | null;
  reportedByMessage: number | null;
  receivedAt: number;
}

export interface RecordedReport {
  /** The delivery that sent the original, when it was ours. */
  deliveryId: number | null;
  /** False when the same report had been recorded already. */
  added: boolean;
}

/** The mail a delivery sent, as the message browser and the API show it. */
export interface DeliveryMail {
  messageId: string;
  recipients: string;
  reports: MailReport[];
}

interface MailRow {
  delivery_id: number;
  message_id_header: string;
  recipients: string;
  id: number | null;
  kind: ReportKind | null;
  status: ReportStatus | null;
  recipient: string | null;
  reason: string | null;
  reported_by_message: number | null;
  received_at: number | null;
}

export class MailTracking {
  private readonly s;

  constructor(private readonly db: Db) {
    this.s = {
      sent: db.prepare(
        `INSERT INTO mail_sent (message_id_header, delivery_id, recipients, first_sent_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (message_id_header) DO UPDATE SET recipients = excluded.recipients`,
      ),
      report: db.prepare(
        `INSERT INTO mail_reports (report_key, original_message_id, kind, status, recipient, reason, reported_by_message, received_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (report_key) DO NOTHING`,
      ),
      deliveryOf: db
        .prepare<[string], number>('SELECT delivery_id FROM mail_sent WHERE message_id_header = ?')
        .pluck(),
    };
  }

  /** Before each attempt: the Message-ID a delivery sends under (the same on every retry). */
  sent(m: SentMail): void {
    this.s.sent.run(m.messageIdHeader, m.deliveryId, m.recipients.join(', '), m.now);
  }

  /** The entries of a DSN or MDN: each recorded once, and matched to the delivery that sent its original, if ours. */
  report(reports: NewReport[]): RecordedReport[] {
    return reports.map((r) => this.reportOne(r));
  }

  private reportOne(r: NewReport): RecordedReport {
    const added = this.s.report.run(
      r.reportKey,
      r.originalMessageId,
      r.kind,
      r.status,
      r.recipient,
      r.reason,
      r.reportedByMessage,
      r.now,
    ).changes;
    return { deliveryId: this.s.deliveryOf.get(r.originalMessageId) ?? null, added: added > 0 };
  }

  /** The mail each delivery given sent (those that sent none are absent), with its reports, oldest first. */
  mailOf(deliveryIds: readonly number[]): Map<number, DeliveryMail> {
    const out = new Map<number, DeliveryMail>();
    if (deliveryIds.length === 0) return out;
    const rows = this.db
      .prepare<number[], MailRow>(
        `SELECT s.delivery_id, s.message_id_header, s.recipients, r.id, r.kind, r.status, r.recipient, r.reason,
                r.reported_by_message, r.received_at
         FROM mail_sent s LEFT JOIN mail_reports r ON r.original_message_id = s.message_id_header
         WHERE s.delivery_id IN (${deliveryIds.map(() => '?').join(', ')}) ORDER BY s.delivery_id, r.id`,
      )
      .all(...deliveryIds);
    for (const row of rows) {
      let mail = out.get(row.delivery_id);
      if (!mail) {
        mail = { messageId: row.message_id_header, recipients: row.recipients, reports: [] };
        out.set(row.delivery_id, mail);
      }
      if (row.id === null) continue;
      mail.reports.push({
        id: row.id,
        kind: row.kind!,
        status: row.status!,
        recipient: row.recipient,
        reason: row.reason,
        reportedByMessage: row.reported_by_message,
        receivedAt: row.received_at!,
      });
    }
    return out;
  }
}
