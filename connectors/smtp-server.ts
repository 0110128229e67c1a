// The built-in SMTP server (smtp-server): the appliance's MSSanté inbox, one per engine, shared by the
// channels that each take one mailbox of it (`smtp-inbox`). It refuses unknown recipients at RCPT TO,
// enforces the sender allow-list of a mailbox, authenticates through the engine's accounts, caps the
// size while the DATA stream flows, and answers 250 only once every recipient's channel journaled it.
import fs from 'node:fs/promises';
import { PassThrough, type Readable } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { SMTPServer } from 'smtp-server';
import type {
  SMTPServerAddress,
  SMTPServerAuthentication,
  SMTPServerAuthenticationResponse,
  SMTPServerDataStream,
  SMTPServerOptions,
  SMTPServerSession,
} from 'smtp-server';
import { OncoError, type OncoErrorOptions } from '../config/errors.ts';
import type { Account, Accounts, Logger, SharedService, StageFrom, StagedContent } from './contract.ts';
import { listen, type ConnectionLimits, type TlsMaterial } from './listener-setup.ts';
import { stageMail, type StagedMail } from './mail-inbound.ts';

/** A refusal answered with its SMTP reply code (from the error catalogue), smtp-server's `responseCode`. */
export class SmtpError extends OncoError {
  readonly responseCode: number;
  constructor(code: string, options: OncoErrorOptions = {}) {
    super(code, options);
    this.responseCode = this.protocol.smtp ?? 451;
  }
}

/** A complete mail for one mailbox, handed to the channel that takes it. */
export interface IncomingMail {
  /** The message as the client sent it (RFC 5322 bytes), staged: a file when large, never held whole. */
  mail: StagedMail;
  /** Envelope sender (MAIL FROM), lower case; empty for the null sender of a DSN. */
  mailFrom: string;
  /** The mailbox it was accepted for, lower case. */
  recipient: string;
  remoteAddress: string;
  /** The account that authenticated with AUTH, if any. */
  account: Account | null;
  tls: boolean;
  /** Subject of the client certificate checked against the configured CA, if any. */
  clientCertificate: string | null;
}

export interface Mailbox {
  /** Envelope senders allowed (lower case); null: anyone. */
  allowFrom: ReadonlySet<string> | null;
  /** Where the DATA stream is written while it flows (the channel's `SourceContext.stage`). */
  stage(from: StageFrom): Promise<StagedContent>;
  /** Resolves once the mail is journaled; a rejection answers 451 (the sender tries again later). */
  take(mail: IncomingMail): Promise<void>;
}

export interface SmtpServerSettings {
  port: number;
  bind: string;
  /** Name in the greeting and EHLO answer. */
  hostname: string;
  /** Largest message accepted, in bytes (advertised with SIZE, enforced while streaming). */
  maxMessageBytes: number;
  /** `required`: MAIL FROM only after AUTH; `optional`: offered; `off`: not offered. AUTH needs TLS. */
  auth: 'off' | 'optional' | 'required';
  /** Certificate and key for STARTTLS; `ca` to check client certificates. */
  tls: TlsMaterial | null;
  /** `require`: a client without a certificate issued by `ca` is refused at STARTTLS; `request`: asked, not required. */
  clientCertificate: 'off' | 'request' | 'require';
  /** Refuse MAIL FROM before STARTTLS (the MSSanté space only speaks TLS). */
  requireTls: boolean;
}

export interface SmtpServerOptions {
  settings: SmtpServerSettings;
  limits: ConnectionLimits;
  accounts: Accounts;
  log: Logger;
}

/** Roles that may send mail with AUTH: the same as those that drop files on SFTP. */
const SMTP_ROLES: ReadonlyArray<Account['role']> = ['establishment', 'lab'];
/** Envelope addresses are compared without case (the local part is case-insensitive in practice). */
export const normalAddress = (address: string): string => address.trim().toLowerCase();

interface SessionState {
  account: Account | null;
  clientCertificate: string | null;
}

export class SmtpInboxServer implements SharedService {
  readonly settings: SmtpServerSettings;
  private readonly limits: ConnectionLimits;
  private readonly accounts: Accounts;
  private readonly log: Logger;
  private readonly mailboxes = new Map<string, Mailbox>();
  private readonly states = new Map<string, SessionState>();
  private server: SMTPServer | null = null;
  private port = 0;

  constructor(options: SmtpServerOptions) {
    this.settings = options.settings;
    this.limits = options.limits;
    this.accounts = options.accounts;
    this.log = options.log;
  }

  /** Registers the channel taking a mailbox; returns the function that unregisters it. */
  route(address: string, mailbox: Mailbox): () => void {
    const key = normalAddress(address);
    if (this.mailboxes.has(key)) {
      throw new SmtpError('SMTP_MAILBOX_TAKEN', { params: { mailbox: key } });
    }
    this.mailboxes.set(key, mailbox);
    return () => {
      if (this.mailboxes.get(key) === mailbox) this.mailboxes.delete(key);
    };
  }

  address(): { port: number; bind: string } {
    return { port: this.port, bind: this.settings.bind };
  }

  async start(): Promise<void> {
    const s = this.settings;
    const tls = s.tls;
    const disabled = [...(tls ? [] : ['STARTTLS']), ...(s.auth === 'off' ? ['AUTH'] : [])];
    const options: SMTPServerOptions = {
      name: s.hostname,
      banner: 'Onco-Relay MSSanté inbox',
      size: s.maxMessageBytes,
      authMethods: ['PLAIN', 'LOGIN'],
      authOptional: s.auth !== 'required',
      disabledCommands: disabled,
      disableReverseLookup: true,
      hideENHANCEDSTATUSCODES: false,
      maxClients: this.limits.maxConnections,
      socketTimeout: this.limits.idleTimeoutMs,
      closeTimeout: 5_000,
      logger: false,
      ...(tls ? { key: tls.key, cert: tls.cert, ...(tls.ca ? { ca: tls.ca } : {}) } : {}),
      ...(tls && s.clientCertificate !== 'off'
        ? { requestCert: true, rejectUnauthorized: s.clientCertificate === 'require' }
        : {}),
      onConnect: (session, callback) => {
        this.states.set(session.id, { account: null, clientCertificate: null });
        callback();
      },
      onClose: (session) => {
        this.states.delete(session.id);
      },
      onSecure: (socket, session, callback) => callback(this.secured(socket as TLSSocket, session)),
      onAuth: (auth, session, callback) => {
        this.authenticate(auth, session).then(
          (response) => callback(null, response),
          (err: unknown) => callback(err as Error),
        );
      },
      onMailFrom: (_address, session, callback) => callback(this.mayStart(session)),
      onRcptTo: (address, session, callback) => callback(this.accepts(address, session)),
      onData: (stream, session, callback) => {
        this.receive(stream, session).then(
          (reply) => callback(null, reply),
          (err: unknown) => callback(err as Error),
        );
      },
    };
    const server = new SMTPServer(options);
    server.on('error', (err: Error) => this.log.debug({ err }, 'smtp connection error'));
    this.port = await listen(server.server, s.port, s.bind, 'SMTP server');
    this.server = server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private state(session: SMTPServerSession): SessionState {
    let state = this.states.get(session.id);
    if (!state) {
      state = { account: null, clientCertificate: null };
      this.states.set(session.id, state);
    }
    return state;
  }

  /** After the TLS handshake: with `require`, TLS itself refused a certificate the CA did not issue. */
  private secured(socket: TLSSocket, session: SMTPServerSession): Error | null {
    // smtp-server forgets an AUTH given before STARTTLS: so do we.
    this.state(session).account = null;
    if (this.settings.clientCertificate === 'off') return null;
    const cert = socket.getPeerCertificate?.();
    const present = cert && Object.keys(cert).length > 0;
    if (present && socket.authorized) {
      this.state(session).clientCertificate = [cert.subject?.CN ?? JSON.stringify(cert.subject)]
        .flat()
        .join(', ');
      return null;
    }
    if (this.settings.clientCertificate === 'require') {
      return new SmtpError('SMTP_CLIENT_CERTIFICATE', {
        params: { reason: present ? String(socket.authorizationError) : 'none presented' },
      });
    }
    return null;
  }

  private async authenticate(
    auth: SMTPServerAuthentication,
    session: SMTPServerSession,
  ): Promise<SMTPServerAuthenticationResponse> {
    const login = auth.username ?? '';
    const account = await this.accounts.verifyPassword(login, auth.password ?? '', {
      address: session.remoteAddress,
      protocol: 'smtp',
      roles: SMTP_ROLES,
    });
    if (!account) throw new SmtpError('SMTP_AUTH_FAILED');
    this.state(session).account = account;
    return { user: account.login };
  }

  private mayStart(session: SMTPServerSession): Error | null {
    if (this.settings.requireTls && !session.secure) return new SmtpError('SMTP_TLS_REQUIRED');
    if (this.settings.auth === 'required' && !this.state(session).account) {
      return new SmtpError('SMTP_AUTH_REQUIRED');
    }
    return null;
  }

  private accepts(address: SMTPServerAddress, session: SMTPServerSession): Error | null {
    const recipient = normalAddress(address.address);
    const mailbox = this.mailboxes.get(recipient);
    if (!mailbox) return new SmtpError('SMTP_UNKNOWN_MAILBOX', { params: { mailbox: recipient } });
    const from = session.envelope.mailFrom ? normalAddress(session.envelope.mailFrom.address) : '';
    if (mailbox.allowFrom && !mailbox.allowFrom.has(from)) {
      return new SmtpError('SMTP_SENDER_REFUSED', { params: { sender: from || '<>', mailbox: recipient } });
    }
    return null;
  }

  /**
   * Streams DATA into a staged file while it flows (never the whole mail in memory), and reads the
   * stream to its end whatever the answer (smtp-server needs it consumed): past the limit the
   * staging stops, its file is dropped and the rest is discarded, answered 552.
   */
  private async receive(stream: SMTPServerDataStream, session: SMTPServerSession): Promise<string> {
    const limit = this.settings.maxMessageBytes;
    const recipients = [...new Set(session.envelope.rcptTo.map((r) => normalAddress(r.address)))];
    const body = capped(stream, limit);
    let mail: StagedMail;
    try {
      const mailboxes = recipients.map((recipient) => this.mailboxOf(recipient));
      // Every mailbox stages into the same store: the first one's stage serves them all.
      mail = await stageMail((from) => mailboxes[0]!.stage(from), body.chunks);
      await body.ended;
    } catch (cause) {
      body.chunks.destroy();
      await body.ended;
      if (stream.sizeExceeded || body.size() > limit)
        throw new SmtpError('SMTP_TOO_BIG', { params: { limit } });
      throw this.notStored(cause, session);
    }
    const state = this.state(session);
    const mailFrom = session.envelope.mailFrom ? normalAddress(session.envelope.mailFrom.address) : '';
    let takers: Mailbox[];
    try {
      // Checked for every recipient before any takes it: a mail is journaled for all or for none.
      takers = recipients.map((recipient) => this.mailboxOf(recipient));
    } catch (gone) {
      // A mailbox closed while the mail streamed in. Nothing references its staged file: it goes
      // now rather than at the next start's sweep (a sender retrying a large mail would pile them up).
      if (mail.staged.file !== undefined) await fs.rm(mail.staged.file, { force: true });
      throw gone;
    }
    try {
      await Promise.all(
        takers.map((mailbox, i) =>
          mailbox.take({
            mail,
            mailFrom,
            recipient: recipients[i]!,
            remoteAddress: session.remoteAddress,
            account: state.account,
            tls: session.secure,
            clientCertificate: state.clientCertificate,
          }),
        ),
      );
    } catch (cause) {
      throw this.notStored(cause, session);
    }
    return `OK: stored for ${recipients.length} mailbox(es)`;
  }

  /** The mailbox routed for `recipient`; SMTP_MAILBOX_GONE once its channel stopped after RCPT TO. */
  private mailboxOf(recipient: string): Mailbox {
    const mailbox = this.mailboxes.get(recipient);
    if (!mailbox) throw new SmtpError('SMTP_MAILBOX_GONE', { params: { mailbox: recipient } });
    return mailbox;
  }

  private notStored(cause: unknown, session: SMTPServerSession): SmtpError {
    if (cause instanceof SmtpError) return cause;
    this.log.warn({ err: cause, session: session.id }, 'smtp mail not journaled: answered 451');
    return new SmtpError('SMTP_NOT_STORED', { cause });
  }
}

/**
 * The DATA stream as chunks for staging, cut off with an error as soon as it passes `limit`; the
 * source stream itself is read to its end either way (`ended`), the bytes past the cut discarded.
 */
function capped(
  stream: Readable,
  limit: number,
): { chunks: PassThrough; ended: Promise<void>; size: () => number } {
  const chunks = new PassThrough();
  let size = 0;
  // Once the stager stops reading (cut off, or it failed), whatever is left only needs draining.
  chunks.once('close', () => stream.resume());
  stream.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (chunks.destroyed) return;
    if (size > limit) {
      chunks.destroy(new SmtpError('SMTP_TOO_BIG', { params: { limit } }));
      return;
    }
    if (!chunks.write(chunk)) {
      stream.pause();
      chunks.once('drain', () => stream.resume());
    }
  });
  const ended = new Promise<void>((resolve) => {
    stream.once('end', () => {
      chunks.end();
      resolve();
    });
    // A broken connection ends the transaction: nothing more to read, nothing answered.
    stream.once('error', (error) => {
      chunks.destroy(error);
      resolve();
    });
  });
  return { chunks, ended, size: () => size };
}
