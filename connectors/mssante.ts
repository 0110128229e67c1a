// Destination `mssante`: sends a document set as RFC 5322 mail (nodemailer) through the MSSanté
// operator's relay, or, with no relay configured, writes it as an `.eml` file under data/outbox/ so a
// demonstration shows what would leave. The Message-ID comes from the delivery's idempotency key:
// a retry or a replay sends the same Message-ID, which is how a receiver recognises it. The detail
// journaled with the delivery starts `Message-ID <…>`: DSN/MDN tracking (store/mail-tracking.ts)
// matches reports to the delivery by it.
import path from 'node:path';
import nodemailer, { type Transporter } from 'nodemailer';
import type SMTPTransport from 'nodemailer/lib/smtp-transport/index.js';
import type Mail from 'nodemailer/lib/mailer/index.js';
import Type, { type Static } from 'typebox';
import { Default, readOptions, type OptionsOf } from '../transformers/contract.ts';
import { MAIL_JSON, readMailJson, type OutboundMail } from '../transformers/mss-mail.ts';
import {
  SendError,
  type Destination,
  type DestinationContext,
  type DestinationSpec,
  type Outbound,
  type SendResult,
} from './contract.ts';
import { FileWriter } from './file-writer.ts';
import { readTlsFiles, tlsClientOption } from './listener-setup.ts';
import { OncoError } from '../config/errors.ts';

const address = (description: string) => Type.String({ pattern: '^[^@\\s<>]+@[^@\\s<>]+$', description });

const schema = Type.Object({
  from: address('the DCC mailbox the mail comes from'),
  to: Default(
    Type.Array(address('recipient'), {
      description: 'recipients when neither the content (mail JSON `to`) nor meta.to names any',
    }),
    [],
  ),
  subject: Default(Type.String({ description: 'subject when the content gives none' }), 'Documents du DCC'),
  text: Default(
    Type.String({ description: 'body text when the content gives none' }),
    'Documents joints (IHE_XDM.ZIP).',
  ),
  dispositionNotificationTo: Type.Optional(
    address(
      'asks the receiver for an MDN (RFC 8098): the address it goes to, a mailbox an smtp-inbox with a mail-report step reads',
    ),
  ),
  relay: Type.Optional(
    Type.Object(
      {
        host: Type.String({ minLength: 1, description: "the MSSanté operator's SMTP relay" }),
        port: Default(Type.Integer({ minimum: 1, maximum: 65535, description: 'SMTP port' }), 587),
        secure: Default(
          Type.Boolean({ description: 'TLS from the first byte (port 465); false: STARTTLS' }),
          false,
        ),
        requireTls: Default(
          Type.Boolean({ description: 'refuse to send unless STARTTLS succeeds (MSSanté: always)' }),
          true,
        ),
        tls: Type.Optional(tlsClientOption()),
        user: Type.Optional(Type.String({ description: 'AUTH login' })),
        password: Type.Optional(Type.String({ description: 'AUTH password (write it as ${NAME})' })),
        timeoutMs: Default(
          Type.Integer({ minimum: 100, description: 'connection, greeting and socket timeout' }),
          30_000,
        ),
      },
      { additionalProperties: false, description: 'without it, mail is written to `outbox` as .eml files' },
    ),
  ),
  outbox: Default(
    Type.String({
      description: 'folder of the .eml files when no relay is set (relative to the data directory)',
    }),
    'outbox',
  ),
  domain: Type.Optional(
    Type.String({ description: "right-hand side of Message-IDs (default: the from address's domain)" }),
  ),
});

export type MssanteOptions = OptionsOf<typeof schema>;

/** What an SMTP refusal means for the delivery: 4xx and lost connections may pass later, 5xx will not. */
function sendFailure(error: unknown, relay: string): SendError {
  const e = error as { responseCode?: number; response?: string; code?: string; message?: string };
  const code = e.responseCode;
  if (code !== undefined && code >= 500) {
    return new SendError('MSS_REFUSED', `${relay} refused the mail: ${e.response ?? e.message}`, {
      retryable: false,
      cause: error,
      hint: new OncoError('MSS_REFUSED').hint,
    });
  }
  return new SendError('MSS_RELAY_UNAVAILABLE', `${relay}: ${e.response ?? e.message ?? String(error)}`, {
    retryable: true,
    cause: error,
  });
}

export class MssanteDestination implements Destination {
  private readonly transport: Transporter;
  private readonly files: FileWriter | null;
  private readonly domain: string;
  private readonly where: string;

  constructor(
    private readonly o: MssanteOptions,
    ctx: DestinationContext,
  ) {
    this.domain = o.domain ?? o.from.split('@')[1]!;
    if (o.relay) {
      const r = o.relay;
      const tls = r.tls ? readTlsFiles(ctx.dataDir, r.tls) : {};
      const options: SMTPTransport.Options = {
        host: r.host,
        port: r.port,
        secure: r.secure,
        requireTLS: r.requireTls && !r.secure,
        connectionTimeout: r.timeoutMs,
        greetingTimeout: r.timeoutMs,
        socketTimeout: r.timeoutMs,
        tls: { ...tls, rejectUnauthorized: r.tls?.rejectUnauthorized ?? true },
        ...(r.user ? { auth: { user: r.user, pass: r.password ?? '' } } : {}),
      };
      this.transport = nodemailer.createTransport(options);
      this.files = null;
      this.where = `smtp://${r.host}:${r.port}`;
    } else {
      this.transport = nodemailer.createTransport({
        streamTransport: true,
        buffer: true,
        newline: 'windows',
      });
      this.files = new FileWriter({ path: o.outbox, fileName: '{key}.eml', fsync: true }, ctx.dataDir);
      this.where = path.resolve(ctx.dataDir, o.outbox);
    }
  }

  async start(): Promise<void> {
    await this.files?.start();
  }

  async stop(): Promise<void> {
    this.transport.close();
  }

  async send(msg: Outbound): Promise<SendResult> {
    const mail = this.mailOf(msg);
    const messageId = `${msg.idempotencyKey}@${this.domain}`;
    const message: Mail.Options = {
      from: this.o.from,
      to: mail.to,
      subject: mail.subject ?? this.o.subject,
      text: mail.text ?? this.o.text,
      messageId: `<${messageId}>`,
      headers: {
        ...mail.headers,
        ...(this.o.dispositionNotificationTo
          ? { 'Disposition-Notification-To': this.o.dispositionNotificationTo }
          : {}),
      },
      attachments: mail.attachments.map((a) => ({
        filename: a.fileName,
        content: a.content,
        contentType: a.contentType,
      })),
    };
    if (this.files) {
      const info = (await this.transport.sendMail(message)) as { message: Buffer };
      const { detail } = await this.files.send({ ...msg, content: info.message });
      return { detail: `Message-ID <${messageId}> written to ${detail}` };
    }
    let info: SMTPTransport.SentMessageInfo;
    try {
      info = (await this.transport.sendMail(message)) as SMTPTransport.SentMessageInfo;
    } catch (error) {
      throw sendFailure(error, this.where);
    }
    const rejected = (info.rejected ?? []).map(String);
    if (rejected.length > 0) {
      throw new SendError('MSS_RECIPIENT_REFUSED', `${this.where} refused ${rejected.join(', ')}`, {
        retryable: false,
      });
    }
    return {
      response: Buffer.from(info.response ?? ''),
      responseType: 'text/plain',
      detail: `Message-ID <${messageId}> to ${mail.to.join(', ')} via ${this.where}: ${info.response ?? ''}`,
    };
  }

  /** The mail from a step's mail JSON, or a bare document (the XDM zip) made into one. */
  private mailOf(msg: Outbound): OutboundMail {
    const fromMeta = typeof msg.meta.to === 'string' ? msg.meta.to.split(/[,;\s]+/).filter(Boolean) : [];
    let mail: OutboundMail;
    try {
      mail =
        msg.contentType === MAIL_JSON
          ? readMailJson(msg.content)
          : {
              to: [],
              attachments: [
                {
                  fileName:
                    msg.contentType === 'application/zip'
                      ? 'IHE_XDM.ZIP'
                      : typeof msg.meta.fileName === 'string'
                        ? msg.meta.fileName
                        : 'document',
                  contentType: msg.contentType,
                  content: msg.content,
                },
              ],
            };
    } catch (error) {
      throw new SendError('MSS_MAIL_INVALID', (error as Error).message, { retryable: false, cause: error });
    }
    const to = mail.to.length ? mail.to : fromMeta.length ? fromMeta : [...this.o.to];
    if (to.length === 0) {
      throw new SendError('MSS_NO_RECIPIENT', `message ${msg.messageId} names no recipient`, {
        retryable: false,
        hint: new OncoError('MSS_NO_RECIPIENT').hint,
      });
    }
    const subject = mail.subject ?? (typeof msg.meta.subject === 'string' ? msg.meta.subject : undefined);
    return { ...mail, to, ...(subject === undefined ? {} : { subject }) };
  }
}

export const mssanteSpec: DestinationSpec<Static<typeof schema>> = {
  kind: 'destination',
  type: 'mssante',
  summary:
    "Sends the document set as MSSanté mail (IHE_XDM.ZIP and the PDF attached, Message-ID stable across retries, Disposition-Notification-To when set) through the operator's relay (STARTTLS, client certificate, AUTH); without a relay, writes .eml files to data/outbox/.",
  schema,
  create: (input, ctx) => new MssanteDestination(readOptions(schema, input), ctx),
};
