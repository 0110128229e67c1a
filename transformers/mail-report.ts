// Step `mail-report`: recognises the delivery status notifications (DSN, RFC 3464: delivered,
// failed with the relay's diagnostic, delayed, relayed) and disposition notifications (MDN,
// RFC 8098: displayed, processed, deleted, an MSSanté `processed/error` with its reason) among the
// mail of a replies mailbox, and reads which mail they are about (Original-Message-ID; for a DSN,
// the Message-ID of the returned headers). Any other mail is filtered out.
import Type from 'typebox';
import { StepError, type StepInput, type StepSpec } from './contract.ts';

export const MAIL_REPORT_JSON = 'application/vnd.onco-relay.mail-report+json';

export type ReportStatus =
  | 'delivered'
  | 'failed'
  | 'delayed'
  | 'relayed'
  | 'expanded'
  | 'displayed'
  | 'processed'
  | 'deleted'
  | 'dispatched'
  | 'error';

export interface MailReport {
  kind: 'dsn' | 'mdn';
  /** Message-ID of the report mail itself (without angle brackets). */
  reportMessageId: string | null;
  /** Message-ID of the mail it reports on. */
  originalMessageId: string;
  entries: Array<{ recipient: string | null; status: ReportStatus; reason: string | null }>;
}

interface Part {
  headers: Map<string, string>;
  body: string;
}

/** Header fields of a block (RFC 5322 style, folded lines joined), names in lower case; first wins. */
function fields(block: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of block.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    if (!out.has(name)) out.set(name, line.slice(colon + 1).trim());
  }
  return out;
}

function split(raw: string): Part {
  const end = raw.search(/\r?\n\r?\n/);
  if (end < 0) return { headers: fields(raw), body: '' };
  return { headers: fields(raw.slice(0, end)), body: raw.slice(end).replace(/^\r?\n\r?\n/, '') };
}

const param = (value: string, name: string): string | null =>
  new RegExp(`(?:^|;)\\s*${name}\\s*=\\s*(?:"([^"]*)"|([^;\\s]*))`, 'i')
    .exec(value)
    ?.slice(1)
    .find((v) => v !== undefined) ?? null;

/** The parts of a multipart body, one level down into nested multiparts. */
function partsOf(part: Part, depth = 0): Part[] {
  const type = part.headers.get('content-type') ?? '';
  const boundary = /^multipart\//i.test(type) ? param(type, 'boundary') : null;
  if (!boundary || depth > 2) return [part];
  const pieces = part.body.split(
    new RegExp(`\\r?\\n?--${boundary.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?:--)?[ \\t]*\\r?\\n?`),
  );
  return pieces
    .slice(1)
    .filter((p) => p.trim() !== '')
    .flatMap((p) => partsOf(split(p), depth + 1));
}

const bare = (id: string | undefined | null): string | null => {
  const v = id?.match(/<([^<>\s]+)>/)?.[1] ?? id?.trim().split(/\s/)[0];
  return v ? v : null;
};

const typeOf = (p: Part): string =>
  (p.headers.get('content-type') ?? 'text/plain').split(';')[0]!.trim().toLowerCase();

/** Groups of fields separated by blank lines (per-message, then per-recipient). */
const groups = (body: string): Array<Map<string, string>> =>
  body
    .split(/\r?\n[ \t]*\r?\n/)
    .filter((g) => g.trim() !== '')
    .map(fields);

const address = (value: string | undefined): string | null => value?.replace(/^[^;]*;\s*/, '').trim() || null;

const DSN_ACTIONS = new Set<ReportStatus>(['delivered', 'failed', 'delayed', 'relayed', 'expanded']);
const MDN_TYPES = new Set<ReportStatus>(['displayed', 'processed', 'deleted', 'dispatched']);

export function readMailReport(raw: Buffer): MailReport | null {
  const mail = split(raw.toString('latin1'));
  const type = mail.headers.get('content-type') ?? '';
  if (!/^multipart\/report/i.test(type)) return null;
  const parts = partsOf(mail);
  const reportMessageId = bare(mail.headers.get('message-id'));
  const status = parts.find(
    (p) => typeOf(p) === 'message/delivery-status' || typeOf(p) === 'message/global-delivery-status',
  );
  const disposition = parts.find((p) => typeOf(p) === 'message/disposition-notification');
  if (status) {
    const [, ...recipients] = groups(status.body);
    const returned = parts.find((p) =>
      ['text/rfc822-headers', 'message/rfc822', 'message/rfc822-headers'].includes(typeOf(p)),
    );
    const original =
      (returned ? bare(fields(returned.body).get('message-id')) : null) ??
      bare(mail.headers.get('x-original-message-id')) ??
      bare(mail.headers.get('in-reply-to'));
    if (!original) throw unmatchable('DSN');
    return {
      kind: 'dsn',
      reportMessageId,
      originalMessageId: original,
      entries: recipients.map((r) => {
        const action = (r.get('action') ?? '').toLowerCase() as ReportStatus;
        return {
          recipient: address(r.get('final-recipient') ?? r.get('original-recipient')),
          status: DSN_ACTIONS.has(action) ? action : 'failed',
          reason: action === 'delivered' ? null : (r.get('diagnostic-code') ?? r.get('status') ?? null),
        };
      }),
    };
  }
  if (disposition) {
    const f = fields(disposition.body);
    const original = bare(f.get('original-message-id')) ?? bare(mail.headers.get('in-reply-to'));
    if (!original) throw unmatchable('MDN');
    // `automatic-action/MDN-sent-automatically; processed/error` (+ `Error: 902^…`), or `…; displayed`.
    const [kindPart = '', modifier = ''] =
      (f.get('disposition') ?? '').split(';')[1]?.trim().split('/') ?? [];
    const kind = kindPart.trim().toLowerCase() as ReportStatus;
    const failed = /^error/i.test(modifier.trim());
    return {
      kind: 'mdn',
      reportMessageId,
      originalMessageId: original,
      entries: [
        {
          recipient: address(f.get('final-recipient') ?? f.get('original-recipient')),
          status: failed ? 'error' : MDN_TYPES.has(kind) ? kind : 'processed',
          reason: failed
            ? (f.get('error') ?? modifier.replace(/^error:?\s*/i, '') ?? null) || 'error'
            : (f.get('failure') ?? f.get('warning') ?? null),
        },
      ],
    };
  }
  return null;
}

function unmatchable(kind: string): StepError {
  return new StepError('MAIL_REPORT_UNMATCHABLE', `a ${kind} that names no original Message-ID`, {
    hint: 'nothing to match it to: it stays in the journal for a person to read',
  });
}

export const mailReportStep: StepSpec<Record<string, never>> = {
  kind: 'step',
  type: 'mail-report',
  summary:
    'Recognises DSN (RFC 3464) and MDN (RFC 8098) reports and reads the mail they are about (Original-Message-ID) and, per recipient, delivered/failed/delayed/displayed/processed/error with the reason; other mail is filtered out. For the mss-tracking destination.',
  schema: Type.Object({}),
  create: () => (input: StepInput) => {
    const report = readMailReport(input.content);
    if (!report) return null;
    return {
      content: Buffer.from(JSON.stringify(report)),
      contentType: MAIL_REPORT_JSON,
      meta: { ...input.meta, reportKind: report.kind, originalMessageId: report.originalMessageId },
    };
  },
};
