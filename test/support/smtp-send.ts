// Sending into the MSSanté inbox from tests: nodemailer over loopback, the envelope given apart from
// the message, so that a test says exactly who claims to send what to whom.
import nodemailer, { type Transporter } from 'nodemailer';
import type SMTPTransport from 'nodemailer/lib/smtp-transport/index.js';

export type SmtpTransporter = Transporter<SMTPTransport.SentMessageInfo, SMTPTransport.Options>;

export const LAB_SENDER = 'labo@labo.mssante.test';

/** A transport to a loopback SMTP port, in clear unless `extra` asks for TLS. */
export function plainTransport(port: number, extra: SMTPTransport.Options = {}): SmtpTransporter {
  return nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true, ...extra });
}

/** Sends `raw` with the envelope `from` → `to`; resolves on the 250 with nodemailer's answer. */
export function sendMail(
  transport: SmtpTransporter,
  to: string,
  raw: string | Buffer,
  from = LAB_SENDER,
): Promise<SMTPTransport.SentMessageInfo> {
  return transport.sendMail({ envelope: { from, to }, raw });
}

/** A plain-text RFC 5322 mail of a lab, with its Message-ID. */
export function labMail(to: string, messageId: string, body = 'Compte rendu joint.'): string {
  return [
    'From: Labo Démo <labo@labo.mssante.test>',
    `To: ${to}`,
    `Message-ID: <${messageId}>`,
    'Subject: CR',
    'Date: Mon, 30 Nov 2026 03:00:00 +0000',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    body,
    '',
  ].join('\r\n');
}
