// Destination `mss-tracking`, a store writer: files the DSN and MDN reports read by the `mail-report`
// step against the outbound mail they are about (store/mail-tracking.ts), in the transaction that
// marks its delivery SENT; the message browser and the API show them on that mail's delivery. Each
// entry is keyed by the report's Message-ID and recipient: the same report read again adds nothing.
import Type from 'typebox';
import { MAIL_REPORT_JSON, type MailReport } from '../transformers/mail-report.ts';
import type { NewReport } from '../store/mail-tracking.ts';
import { SendError, type Destination, type DestinationSpec, type Filing, type Outbound } from './contract.ts';

export class MssTracking implements Destination {
  filing(msg: Outbound): Filing {
    if (msg.contentType !== MAIL_REPORT_JSON) {
      throw new SendError('MAIL_REPORT_EXPECTED', `message ${msg.messageId} is ${msg.contentType}`, {
        retryable: false,
        hint: 'put a mail-report step before the mss-tracking destination',
      });
    }
    const report = JSON.parse(msg.content.toString('utf8')) as MailReport;
    const reportId = report.reportMessageId ?? `message-${msg.messageId}`;
    const now = Date.now();
    const entries: NewReport[] = report.entries.map((e, i) => ({
      reportKey: `${reportId}#${i}:${e.recipient ?? ''}`,
      originalMessageId: report.originalMessageId,
      kind: report.kind,
      status: e.status,
      recipient: e.recipient,
      reason: e.reason,
      reportedByMessage: msg.messageId,
      now,
    }));
    return { module: 'mailTracking', method: 'report', args: [entries] };
  }
}

export const mssTrackingSpec: DestinationSpec<Record<string, never>> = {
  kind: 'destination',
  type: 'mss-tracking',
  summary:
    'Records DSN/MDN reports (from the mail-report step) on the outbound mail they are about, matched by Original-Message-ID; shown on its delivery in the message browser and /api/messages/{id}.',
  schema: Type.Object({}),
  create: () => new MssTracking(),
};
