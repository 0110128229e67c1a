// Source `imap-poll`: polls a mailbox of the DCC's MSSanté operator account (imapflow) and takes each
// new mail. The mail is journaled first; only then is it moved to the processed folder (or flagged),
// so a crash or a lost connection in between leaves it to be taken again — and the journal's
// de-duplication (Message-ID + digest, mail-inbound.ts) records that second take as a DUPLICATE.
// That is also why a UIDVALIDITY change (the mailbox rebuilt or restored) cannot re-file anything:
// no UID is trusted across sessions, only what the journal already holds.
import { ImapFlow, type ImapFlowOptions } from 'imapflow';
import Type, { type Static } from 'typebox';
import { Default, readOptions, type OptionsOf } from '../transformers/contract.ts';
import type { Source, SourceContext, SourceSpec } from './contract.ts';
import { readTlsFiles, tlsClientOption } from './listener-setup.ts';
import { mailInbound, stageMail } from './mail-inbound.ts';
import { reconnectDelay, Sleeper } from './poll-loop.ts';

const schema = Type.Object(
  {
    host: Type.String({ minLength: 1, description: "the MSSanté operator's IMAP server" }),
    port: Default(Type.Integer({ minimum: 1, maximum: 65535, description: 'IMAP port' }), 993),
    secure: Default(
      Type.Boolean({
        description: 'TLS from the first byte (port 993); false: STARTTLS, required unless allowPlain',
      }),
      true,
    ),
    allowPlain: Default(
      Type.Boolean({
        description: 'allow a connection without TLS when the server offers no STARTTLS: tests only',
      }),
      false,
    ),
    tls: Type.Optional(tlsClientOption()),
    user: Type.String({ minLength: 1, description: 'login of the mailbox' }),
    password: Type.String({ description: 'its password (write it as ${NAME})' }),
    mailbox: Default(Type.String({ minLength: 1, description: 'folder polled' }), 'INBOX'),
    afterRead: Default(
      Type.Enum(['move', 'flag'], {
        description:
          'once journaled, a mail is moved to `moveTo`, or marked with the keyword `flag` and left',
      }),
      'move',
    ),
    moveTo: Default(
      Type.String({ minLength: 1, description: 'folder of taken mail (created if missing)' }),
      'Processed',
    ),
    flag: Default(
      Type.String({
        pattern: '^[A-Za-z$][A-Za-z0-9_$-]*$',
        description: 'keyword of taken mail (afterRead: flag)',
      }),
      '$OncoRelayTaken',
    ),
    pollMs: Default(Type.Integer({ minimum: 100, description: 'time between two looks' }), 30_000),
    maxMessageBytes: Default(
      Type.Integer({
        minimum: 1024,
        description:
          'larger mail is left in the mailbox and reported; a mail streams to a file, so this is a policy (the default takes a 50 MB attachment, base64 included)',
      }),
      100 * 1024 * 1024,
    ),
    reconnectMinMs: Default(
      Type.Integer({ minimum: 10, description: 'first wait before reconnecting after a failure' }),
      1000,
    ),
    reconnectMaxMs: Default(
      Type.Integer({
        minimum: 10,
        description: 'longest wait between reconnection attempts (doubling up to it)',
      }),
      300_000,
    ),
  },
  { additionalProperties: false },
);

export type ImapPollOptions = OptionsOf<typeof schema>;

/** The journal refused: the connection is fine, the mail stays for the next poll. */
class JournalFailure extends Error {}

const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error));

export class ImapPoller implements Source {
  private client: ImapFlow | undefined;
  private loop: Promise<void> | undefined;
  private stopped = false;
  private readonly sleeper = new Sleeper();
  private failures = 0;
  private uidValidity: bigint | null = null;
  private readonly where: string;
  private readonly sender: string;

  constructor(
    private readonly o: ImapPollOptions,
    private readonly ctx: SourceContext,
  ) {
    this.where = `imap${o.secure ? 's' : ''}://${o.user}@${o.host}:${o.port}/${o.mailbox}`;
    this.sender = `imap://${o.user}@${o.host}`;
  }

  async start(): Promise<void> {
    this.stopped = false;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.sleeper.wake();
    await this.loop;
    await this.disconnect();
    this.ctx.report({ connected: false });
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      let delay = this.o.pollMs;
      try {
        await this.poll(await this.connected());
        this.failures = 0;
      } catch (error) {
        if (error instanceof JournalFailure) this.ctx.report({ lastError: error.message });
        else delay = await this.failed(error);
      }
      if (!this.stopped) await this.sleeper.sleep(delay);
    }
  }

  private async connected(): Promise<ImapFlow> {
    if (this.client?.usable) return this.client;
    await this.disconnect();
    const o = this.o;
    const options: ImapFlowOptions = {
      host: o.host,
      port: o.port,
      secure: o.secure,
      doSTARTTLS: o.secure ? undefined : !o.allowPlain,
      auth: { user: o.user, pass: o.password },
      tls: {
        ...(o.tls ? readTlsFiles(this.ctx.dataDir, o.tls) : {}),
        rejectUnauthorized: o.tls?.rejectUnauthorized ?? true,
      },
      logger: false,
      disableAutoIdle: true,
      connectionTimeout: 30_000,
      greetingTimeout: 30_000,
      socketTimeout: 120_000,
    };
    const client = new ImapFlow(options);
    // Errors also reject the pending command; the listener keeps them from being unhandled.
    client.on('error', (err: Error) =>
      this.ctx.log.debug({ err, where: this.where }, 'imap connection error'),
    );
    await client.connect();
    this.client = client;
    if (o.afterRead === 'move') {
      const list = await client.list();
      if (!list.some((m) => m.path === o.moveTo)) await client.mailboxCreate(o.moveTo);
    }
    this.ctx.report({ connected: true, lastError: null, detail: this.where });
    return client;
  }

  private async disconnect(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (!client) return;
    await client.logout().catch(() => client.close());
  }

  /** Drops the connection after a failure; returns the backoff delay before the next attempt. */
  private async failed(error: unknown): Promise<number> {
    await this.disconnect();
    this.failures++;
    const lastError = errorText(error);
    this.ctx.report({ connected: false, lastError, detail: this.where });
    this.ctx.log.warn({ channelId: this.ctx.channelId, where: this.where, lastError }, 'imap poll failed');
    return reconnectDelay(this.failures, this.o.reconnectMinMs, this.o.reconnectMaxMs);
  }

  /** One look at the mailbox: every mail not yet taken, oldest first. */
  private async poll(client: ImapFlow): Promise<void> {
    const box = await client.mailboxOpen(this.o.mailbox);
    if (this.uidValidity !== null && box.uidValidity !== this.uidValidity) {
      // Nothing to forget: UIDs are never kept; what was journaled is recognised by its content.
      this.ctx.log.info(
        {
          channelId: this.ctx.channelId,
          where: this.where,
          before: String(this.uidValidity),
          now: String(box.uidValidity),
        },
        'imap UIDVALIDITY changed: mail already journaled will be recorded as duplicates',
      );
    }
    this.uidValidity = box.uidValidity;
    const query = this.o.afterRead === 'flag' ? { unKeyword: this.o.flag } : { all: true };
    const uids = (await client.search(query, { uid: true })) || [];
    for (const uid of uids.sort((a, b) => a - b)) {
      if (this.stopped) return;
      await this.take(client, uid);
    }
  }

  private async take(client: ImapFlow, uid: number): Promise<void> {
    const head = await client.fetchOne(String(uid), { size: true }, { uid: true });
    if (!head) return;
    if ((head.size ?? 0) > this.o.maxMessageBytes) {
      this.ctx.report({
        lastError: `${this.where} UID ${uid} is ${head.size} bytes, over maxMessageBytes (${this.o.maxMessageBytes}): left in the mailbox`,
      });
      return;
    }
    // Downloaded as a stream into a staged file: a large mail is never held whole in memory.
    const download = await client.download(String(uid), undefined, { uid: true });
    if (!download.content) return;
    const mail = await stageMail((from) => this.ctx.stage(from), download.content);
    let receipt;
    try {
      receipt = await this.ctx.receive(
        mailInbound(mail, {
          mailbox: this.where,
          sender: this.sender,
          meta: { via: 'imap', uid, uidValidity: String(this.uidValidity) },
        }),
      );
    } catch (cause) {
      throw new JournalFailure(
        `${this.where} UID ${uid} was not journaled, it stays in the mailbox: ${errorText(cause)}`,
        {
          cause,
        },
      );
    }
    // Journaled: moving or flagging it is the acknowledgement.
    if (this.o.afterRead === 'move') await client.messageMove(String(uid), this.o.moveTo, { uid: true });
    else await client.messageFlagsAdd(String(uid), [this.o.flag], { uid: true });
    this.ctx.log.debug(
      { channelId: this.ctx.channelId, messageId: receipt.messageId, duplicateOf: receipt.duplicateOf },
      'imap mail taken',
    );
  }
}

export const imapPollSpec: SourceSpec<Static<typeof schema>> = {
  kind: 'source',
  type: 'imap-poll',
  summary:
    "Polls a mailbox of the MSSanté operator account over IMAP (TLS or STARTTLS, client certificate): each mail is journaled, then moved to `moveTo` or flagged. Reconnects with backoff; a UIDVALIDITY change re-reads the mailbox and the journal's de-duplication (Message-ID + digest) keeps anything from being filed twice.",
  schema,
  create: (input, ctx) => new ImapPoller(readOptions(schema, input), ctx),
};
