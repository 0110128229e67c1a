// The mail an `mssante` destination sends, as a step hands it over (content type
// `application/vnd.onco-relay.mail+json`): recipients, subject, extra headers and the attachments
// (`IHE_XDM.ZIP` from xdm-package, the PDF beside it). Steps build it with `mailJson`; the
// destination reads it with `readMailJson`. Only the transport is the destination's business.
import { StepError } from './contract.ts';

export const MAIL_JSON = 'application/vnd.onco-relay.mail+json';

export interface MailAttachment {
  fileName: string;
  contentType: string;
  content: Buffer;
}

export interface OutboundMail {
  /** MSSanté addresses; a patient's Mon espace santé is `<INS>@patient.mssante.fr`. */
  to: string[];
  /** STANDARDS.md: `XDM/1.0/DDM+<label> <NAME> <given> <birth date>` to feed practice software. */
  subject?: string;
  text?: string;
  /** `X-MSS-*` headers and the like; never From, To, Message-ID (the destination sets those). */
  headers?: Record<string, string>;
  attachments: MailAttachment[];
}

interface MailJson extends Omit<OutboundMail, 'attachments'> {
  attachments: Array<{ fileName: string; contentType: string; base64: string }>;
}

export function mailJson(mail: OutboundMail): Buffer {
  const json: MailJson = {
    ...mail,
    attachments: mail.attachments.map((a) => ({
      fileName: a.fileName,
      contentType: a.contentType,
      base64: a.content.toString('base64'),
    })),
  };
  return Buffer.from(JSON.stringify(json));
}

const RESERVED = new Set(['from', 'to', 'cc', 'bcc', 'message-id', 'date', 'subject', 'content-type']);

export function readMailJson(content: Buffer): OutboundMail {
  let json: Partial<MailJson>;
  try {
    json = JSON.parse(content.toString('utf8')) as Partial<MailJson>;
  } catch (cause) {
    throw new StepError('MSS_MAIL_INVALID', 'the mail to send is not valid JSON', { cause });
  }
  const strings = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');
  if (!strings(json.to) || !Array.isArray(json.attachments)) {
    throw new StepError('MSS_MAIL_INVALID', 'the mail to send needs `to` (addresses) and `attachments`');
  }
  const headers = Object.fromEntries(
    Object.entries(json.headers ?? {}).filter(
      ([k, v]) =>
        typeof v === 'string' && !RESERVED.has(k.toLowerCase()) && /^[\x21-\x39\x3b-\x7e]+$/.test(k),
    ),
  );
  return {
    to: json.to,
    ...(typeof json.subject === 'string' ? { subject: json.subject } : {}),
    ...(typeof json.text === 'string' ? { text: json.text } : {}),
    headers,
    attachments: json.attachments.map((a, i) => {
      if (typeof a?.fileName !== 'string' || typeof a.base64 !== 'string') {
        throw new StepError('MSS_MAIL_INVALID', `attachment ${i + 1} needs fileName and base64`);
      }
      return {
        fileName: a.fileName,
        contentType: typeof a.contentType === 'string' ? a.contentType : 'application/octet-stream',
        content: Buffer.from(a.base64, 'base64'),
      };
    }),
  };
}
