// Source `smtp-inbox`: one mailbox of the built-in SMTP server (the DCC's MSSanté inbox). The mail is
// journaled as received (RFC 5322 bytes, `message/rfc822`) before the server answers 250; reading its
// attachments is a step's work (`mail-attachments`), not this connector's.
import Type, { type Static } from 'typebox';
import { Default, readOptions, type OptionsOf } from '../transformers/contract.ts';
import type { Directory, Source, SourceContext, SourceSpec } from './contract.ts';
import {
  connectionLimitOptions,
  defaultBind,
  envPort,
  leaveSharedListener,
  readTlsFiles,
  tlsServerOption,
  type SharedListenerHold,
} from './listener-setup.ts';
import { mailInbound } from './mail-inbound.ts';
import { InFlight } from './poll-loop.ts';
import {
  normalAddress,
  SmtpError,
  SmtpInboxServer,
  type IncomingMail,
  type SmtpServerSettings,
} from './smtp-server.ts';

const SHARED_KEY = 'smtp-server';
const MiB = 1024 * 1024;

const schema = Type.Object({
  mailbox: Type.String({
    pattern: '^[^@\\s]+@[^@\\s]+$',
    description:
      'the address this channel takes, e.g. pathology@dcc-demo.mssante.fr; mail to any other is refused at RCPT TO',
  }),
  allowFrom: Default(
    Type.Union([Type.Enum(['anyone', 'directory', 'labs']), Type.Array(Type.String({ minLength: 3 }))], {
      description:
        'envelope senders accepted for this mailbox: anyone, the MSSanté addresses of the directory (`mssante` of each establishment) or of its labs only, or a list of addresses',
    }),
    'anyone',
  ),
  // Of the shared SMTP server: the first smtp-inbox source to start sets them, the others must agree.
  port: Type.Optional(
    Type.Integer({
      minimum: 0,
      maximum: 65535,
      description: 'SMTP port, shared by every smtp-inbox source (default ONCO_SMTP_PORT or 2525)',
    }),
  ),
  bind: Type.Optional(Type.String({ description: 'address to listen on (default ONCO_BIND or 127.0.0.1)' })),
  hostname: Default(Type.String({ minLength: 1, description: 'server name in the greeting' }), 'onco-relay'),
  maxMessageBytes: Default(
    Type.Integer({
      minimum: 1024,
      maximum: 1024 * MiB,
      description:
        'larger mail is answered 552 as it passes the limit; a mail streams to a file while it arrives, so this is a policy, not a memory bound (the default takes a 50 MB attachment, base64 included)',
    }),
    100 * MiB,
  ),
  auth: Default(
    Type.Enum(['off', 'optional', 'required'], {
      description:
        'AUTH (PLAIN, LOGIN) against the appliance accounts of role establishment or lab, over TLS only; required: no MAIL FROM before it',
    }),
    'off',
  ),
  tls: Type.Optional(
    tlsServerOption('offer STARTTLS with this certificate', {
      ca: Type.Optional(Type.String({ description: 'PEM CA bundle that client certificates must chain to' })),
    }),
  ),
  clientCertificate: Default(
    Type.Enum(['off', 'request', 'require'], {
      description:
        'client certificates at STARTTLS, checked against tls.ca: require refuses a client without a valid one',
    }),
    'off',
  ),
  requireTls: Default(Type.Boolean({ description: 'refuse MAIL FROM before STARTTLS' }), false),
  ...connectionLimitOptions,
});

export type SmtpInboxOptions = OptionsOf<typeof schema>;

/** Server settings from the options, environment overrides and defaults (CONTRACT.md: ONCO_SMTP_PORT). */
export function smtpSettings(options: SmtpInboxOptions, dataDir: string): SmtpServerSettings {
  const tls = options.tls ? readTlsFiles(dataDir, options.tls) : null;
  return {
    port: options.port ?? envPort('ONCO_SMTP_PORT', 2525),
    bind: options.bind ?? defaultBind(),
    hostname: options.hostname,
    maxMessageBytes: options.maxMessageBytes,
    auth: options.auth,
    tls,
    clientCertificate: options.clientCertificate,
    requireTls: options.requireTls,
  };
}

/** The MSSanté addresses an allow-list names, from the directory when it says so. */
export function allowedSenders(
  allowFrom: SmtpInboxOptions['allowFrom'],
  directory: Directory | undefined,
): ReadonlySet<string> | null {
  if (allowFrom === 'anyone') return null;
  if (Array.isArray(allowFrom)) return new Set(allowFrom.map(normalAddress));
  const entries = (directory?.establishments ?? []).filter(
    (e) => allowFrom === 'directory' || e.kind.endsWith('-lab'),
  );
  return new Set(entries.flatMap((e) => e.mssante ?? []).map(normalAddress));
}

const COMPARED = [
  'port',
  'bind',
  'hostname',
  'maxMessageBytes',
  'auth',
  'clientCertificate',
  'requireTls',
] as const;

class SmtpInboxSource implements Source {
  private readonly inFlight = new InFlight();
  private readonly hold: SharedListenerHold = { unroute: null, release: null };

  constructor(
    private readonly options: SmtpInboxOptions,
    private readonly ctx: SourceContext,
  ) {}

  async start(): Promise<void> {
    const { ctx, options } = this;
    const settings = smtpSettings(options, ctx.dataDir);
    const handle = await ctx.shared(
      SHARED_KEY,
      () =>
        new SmtpInboxServer({
          settings,
          limits: { maxConnections: options.maxConnections, idleTimeoutMs: options.idleTimeoutMs },
          accounts: ctx.accounts,
          log: ctx.log,
        }),
    );
    this.hold.release = () => handle.release();
    const server = handle.service;
    try {
      const clash = COMPARED.find((k) => server.settings[k] !== settings[k]);
      const tlsClash = !clash && (server.settings.tls === null) !== (settings.tls === null);
      if (clash || tlsClash) {
        const what = clash ?? 'tls';
        throw new SmtpError('SMTP_SETTINGS_CLASH', {
          params: { channel: ctx.channelId, option: what },
        });
      }
      this.hold.unroute = server.route(options.mailbox, {
        allowFrom: allowedSenders(options.allowFrom, ctx.directory),
        stage: (from) => ctx.stage(from),
        take: (mail) => this.inFlight.track(this.take(mail)),
      });
    } catch (err) {
      await this.stop();
      throw err;
    }
    const { port, bind } = server.address();
    ctx.report({ connected: true, lastError: null, detail: `smtp://${bind}:${port} ${options.mailbox}` });
  }

  async stop(): Promise<void> {
    await leaveSharedListener(this.hold, this.inFlight, this.ctx);
  }

  private async take(mail: IncomingMail): Promise<void> {
    const receipt = await this.ctx.receive(
      mailInbound(mail.mail, {
        mailbox: mail.recipient,
        // An account that authenticated is the sender; otherwise the envelope says who claims to be.
        sender: mail.account?.login ?? (mail.mailFrom || `smtp:${mail.remoteAddress}`),
        owner: mail.account?.finess ?? null,
        meta: {
          via: 'smtp',
          mailFrom: mail.mailFrom,
          remote: mail.remoteAddress,
          tls: mail.tls,
          account: mail.account?.login ?? null,
          clientCertificate: mail.clientCertificate,
        },
      }),
    );
    this.ctx.log.debug(
      { channelId: this.ctx.channelId, messageId: receipt.messageId, duplicateOf: receipt.duplicateOf },
      'mail journaled',
    );
  }
}

export const smtpInboxSpec: SourceSpec<Static<typeof schema>> = {
  kind: 'source',
  type: 'smtp-inbox',
  summary:
    'One mailbox of the built-in SMTP server (MSSanté inbox, port ONCO_SMTP_PORT): unknown recipients refused at RCPT TO, optional sender allow-list, STARTTLS with optional client certificates, AUTH through the appliance accounts, 552 past the size limit, 250 only once journaled.',
  schema,
  // Read here too, so that a source built without the registry (tests) gets the same defaults.
  create: (input, ctx) => new SmtpInboxSource(readOptions(schema, input), ctx),
};
