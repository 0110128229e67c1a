// Destination `mss-tracking`: files the DSN and MDN reports read by the `mail-report` step against
// the outbound mail they are about (store/mail-tracking.ts), where the message browser and the API
// show them on that mail's delivery. Each entry is keyed by the report's Message-ID and recipient,
// so a retry, or the same report read again, records nothing twice.
import Type from 'typebox';
import { MAIL_REPORT_JSON, type MailReport } from '../transformers/mail-report.ts';
import {
  SendError,
  type Destination,
  type DestinationContext,
  type DestinationSpec,
  type Outbound,
  type SendResult,
} from './contract.ts';

export class MssTracking implements Destination {
  constructor(private readonly ctx: DestinationContext) {}

  async send(msg: Outbound): Promise<SendResult> {
    if (msg.contentType !== MAIL_REPORT_JSON) {
      throw new SendError('MAIL_REPORT_EXPECTED', `message ${msg.messageId} is ${msg.contentType}`, {
        retryable: false,
        hint: 'put a mail-report step before the mss-tracking destination',
      });
    }
    const report = JSON.parse(msg.content.toString('utf8')) as MailReport;
    const reportId = report.reportMessageId ?? `message-${msg.messageId}`;
    const now = Date.now();
    const recorded = await this.ctx.store.write.mailTracking.report(
      report.entries.map((e, i) => ({
        reportKey: `${reportId}#${i}:${e.recipient ?? ''}`,
        originalMessageId: report.originalMessageId,
        kind: report.kind,
        status: e.status,
        recipient: e.recipient,
        reason: e.reason,
        reportedByMessage: msg.messageId,
        now,
      })),
    );
    const delivery = recorded.find((r) => r.deliveryId !== null)?.deliveryId ?? null;
    const what = report.entries.map((e) => `${e.status}${e.recipient ? ` (${e.recipient})` : ''}`).join(', ');
    return {
      detail:
        delivery === null
          ? `${report.kind.toUpperCase()} ${what} about <${report.originalMessageId}>: no mail of this DCC has that Message-ID (kept)`
          : `${report.kind.toUpperCase()} ${what} recorded on delivery ${delivery}`,
    };
  }
}

export const mssTrackingSpec: DestinationSpec<Record<string, never>> = {
  kind: 'destination',
  type: 'mss-tracking',
  summary:
    'Records DSN/MDN reports (from the mail-report step) on the outbound mail they are about, matched by Original-Message-ID; shown on its delivery in the message browser and /api/messages/{id}.',
  schema: Type.Object({}),
  create: (_o, ctx) => new MssTracking(ctx),
};
