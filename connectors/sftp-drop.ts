// Source `sftp-drop`: the files establishments and labs drop into one folder of the built-in SFTP
// server (`/in/identity`, `/in/pathology` or `/in/molecular`). A file is journaled before its upload
// is acknowledged; an HL7 file then gets its ACK file in `/out/ack`, a failed one a note in `/error`.
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { ackErrorOf, buildAck } from '../transformers/hl7v2-ack.ts';
import type { DueAnswer, Inbound, Outcome, Source, SourceContext, SourceSpec } from './contract.ts';
import Type, { type Static } from 'typebox';
import { Default, readOptions, type OptionsOf } from '../transformers/contract.ts';
import {
  connectionLimitOptions,
  defaultBind,
  envPort,
  leaveSharedListener,
  type SharedListenerHold,
} from './listener-setup.ts';
import { InFlight } from './poll-loop.ts';
import {
  DROP_FOLDERS,
  SftpServer,
  SftpServerError,
  defaultSftpLimits,
  type SftpServerSettings,
  type TakeResult,
  type Upload,
  uploadAudit,
} from './sftp-server.ts';
import { halfOf, SidecarPairing, type Pair } from './sftp-pairing.ts';

/**
 * Builds the ACK file of an HL7 file from the processing outcome, or null when there is nothing to
 * acknowledge. Used when processing produced no response of its own.
 */
export type AckBuilder = (content: Buffer, outcome: Outcome) => Buffer | null;

/** AA once processed (or recognised as a re-send), AE when processing failed, AR when refused. */
export const hl7AckFile: AckBuilder = (content, outcome) => {
  const failed = outcome.status === 'ERROR' || outcome.status === 'REJECTED';
  const ack = buildAck(content, {
    code: outcome.status === 'REJECTED' ? 'AR' : failed ? 'AE' : 'AA',
    ...(failed
      ? { error: ackErrorOf(outcome.error ?? `message ${outcome.messageId} ${outcome.status.toLowerCase()}`) }
      : {}),
  });
  // In enhanced mode MSH-15 may say the sender wants no accept acknowledgment.
  return ack.send ? ack.bytes : null;
};

const MiB = 1024 * 1024;
/** A policy (what a drop folder accepts), not a memory bound: large files are never held in memory. */
const DEFAULT_MAX_FILE_BYTES = 50 * MiB;
const MAX_FILE_BYTES = 16 * 1024 * MiB;
/** Enough of a file to tell HL7 from other content and to build its ACK (MSH comes first). */
const HEAD_BYTES = 64 * 1024;
const SHARED_KEY = 'sftp-server';

const CONTENT_TYPES: Record<string, string> = {
  '.hl7': 'application/hl7-v2',
  '.xml': 'application/xml',
  '.pdf': 'application/pdf',
  '.json': 'application/json',
};

const schema = Type.Object({
  folder: Type.Enum(DROP_FOLDERS, { description: 'the drop folder this channel takes: /in/<folder>' }),
  port: Type.Optional(
    Type.Integer({
      minimum: 0,
      maximum: 65535,
      description: 'SFTP port, shared by every sftp-drop source (default ONCO_SFTP_PORT or 2222)',
    }),
  ),
  bind: Type.Optional(Type.String({ description: 'address to listen on (default ONCO_BIND or 127.0.0.1)' })),
  maxFileBytes: Default(
    Type.Integer({
      minimum: 1,
      maximum: MAX_FILE_BYTES,
      description:
        'larger uploads are refused as they pass it (a policy: large files are streamed to disk, never held in memory)',
    }),
    DEFAULT_MAX_FILE_BYTES,
  ),
  hostKeyFile: Default(
    Type.String({
      description:
        'private host key, created on first start; relative to the data directory (default ssh_host_ed25519_key)',
    }),
    'ssh_host_ed25519_key',
  ),
  pairSidecars: Default(
    Type.Boolean({
      description:
        'a PDF and its sidecar of the same base name (NAME.pdf with NAME.json, or NAME.hl7 sent after the PDF) make one message: the PDF, with the sidecar in meta.sidecar',
    }),
    false,
  ),
  pairWaitMs: Default(
    Type.Integer({
      minimum: 1000,
      description: 'a PDF or JSON sidecar whose partner has not arrived after this long goes to /error',
    }),
    600_000,
  ),
  // Of the shared SFTP server: the first sftp-drop source to start sets them.
  ...connectionLimitOptions,
  authTimeoutMs: Default(
    Type.Integer({
      minimum: 1,
      description: 'a connection not authenticated this long after it opened is closed',
    }),
    defaultSftpLimits.authTimeoutMs,
  ),
});

export type SftpDropOptions = OptionsOf<typeof schema>;

export function sftpDropSpec(
  deps: { buildAck: AckBuilder } = { buildAck: hl7AckFile },
): SourceSpec<Static<typeof schema>> {
  return {
    kind: 'source',
    type: 'sftp-drop',
    summary: 'Files dropped by establishments and labs into a folder of the built-in SFTP server',
    schema,
    // Read here too, so that a source built without the registry (tests) gets the same defaults.
    create: (input, ctx) => new SftpDropSource(readOptions(schema, input), ctx, deps.buildAck),
  };
}

/** Server settings from the options, environment overrides and defaults (CONTRACT.md). */
export function serverSettings(options: SftpDropOptions, dataDir: string): SftpServerSettings {
  return {
    port: options.port ?? envPort('ONCO_SFTP_PORT', 2222),
    bind: options.bind ?? defaultBind(),
    hostKeyFile: path.resolve(dataDir, options.hostKeyFile),
  };
}

class SftpDropSource implements Source {
  private readonly options: SftpDropOptions;
  private readonly ctx: SourceContext;
  private readonly buildAck: AckBuilder;
  private readonly inFlight = new InFlight();
  private readonly hold: SharedListenerHold = { unroute: null, release: null };
  private server: SftpServer | null = null;
  /** The answer being written per message: a later one (a late failure) waits for it, then rewrites. */
  private readonly answering = new Map<number, Promise<void>>();
  private pairing: SidecarPairing | null = null;
  private sweeper: NodeJS.Timeout | null = null;

  constructor(options: SftpDropOptions, ctx: SourceContext, buildAck: AckBuilder) {
    this.options = options;
    this.ctx = ctx;
    this.buildAck = buildAck;
  }

  async start(): Promise<void> {
    const { ctx, options } = this;
    const settings = serverSettings(options, ctx.dataDir);
    const handle = await ctx.shared(
      SHARED_KEY,
      () =>
        new SftpServer({
          ...settings,
          dataDir: ctx.dataDir,
          accounts: ctx.accounts,
          log: ctx.log,
          limits: {
            maxConnections: options.maxConnections,
            idleTimeoutMs: options.idleTimeoutMs,
            authTimeoutMs: options.authTimeoutMs,
          },
        }),
    );
    this.hold.release = () => handle.release();
    const server = handle.service;
    this.server = server;
    try {
      const clash = (['port', 'bind', 'hostKeyFile'] as const).find(
        (k) => server.settings[k] !== settings[k],
      );
      if (clash) {
        throw new SftpServerError(
          'SFTP_SETTINGS_CLASH',
          `channel ${ctx.channelId}: sftp-drop ${clash} ${settings[clash]} differs from the running SFTP server's ${server.settings[clash]}`,
          {
            hint: 'every sftp-drop source shares one SFTP server: give them the same port, bind and hostKeyFile',
          },
        );
      }
      this.hold.unroute = server.route(options.folder, {
        maxFileBytes: options.maxFileBytes,
        take: (upload) => this.inFlight.track(this.take(upload)),
      });
    } catch (err) {
      await this.stop();
      throw err;
    }
    if (options.pairSidecars) this.startPairing(server);
    const { port, bind } = server.address();
    ctx.report({ connected: true, lastError: null, detail: `sftp://${bind}:${port}/in/${options.folder}` });
    // Answers are not awaited by stop(): one still due then stays due in the journal for the next start.
    void this.answerOwed();
  }

  /** Writes the answers an earlier run owed (it died before writing them) or a late failure made due. */
  answerDue(due: DueAnswer): void {
    void this.answer(due);
  }

  private async answerOwed(): Promise<void> {
    try {
      for (let page = await this.ctx.answersDue(0); page.length > 0;) {
        await Promise.all(page.map((due) => this.answer(due)));
        page = await this.ctx.answersDue(page[page.length - 1]!.messageId);
      }
    } catch (err) {
      this.ctx.log.error(
        { err },
        'sftp-drop could not read the answers it owes; they are written on its next start',
      );
    }
  }

  /** Parked halves survive a restart: the sweep finds them on disk, pairing goes on where it stopped. */
  private startPairing(server: SftpServer): void {
    const { options, ctx } = this;
    const pairing = new SidecarPairing(path.join(ctx.dataDir, 'sftp', '.pairing'), options.folder);
    this.pairing = pairing;
    const sweep = (): void => {
      void this.inFlight
        .track(pairing.expire(options.pairWaitMs, Date.now(), (login) => server.accountTree(login)))
        .catch((err: unknown) => ctx.log.warn({ err }, 'sftp-drop could not sweep unpaired files'));
    };
    this.sweeper = setInterval(sweep, Math.min(options.pairWaitMs / 2, 60_000));
    this.sweeper.unref();
  }

  async stop(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
    await leaveSharedListener(this.hold, this.inFlight, this.ctx);
  }

  private async take(upload: Upload): Promise<TakeResult> {
    if (this.pairing !== null && halfOf(upload.name) !== null && upload.size > 0) {
      const paired = await this.pairing.offer(upload.account.login, upload.name, await upload.file());
      if (paired === null) return;
      if (paired !== 'alone') return this.takePair(upload, paired);
    }
    // The upload's file moves to the journal's side (hashed on the way) when it is large: never read whole.
    const staged = await this.ctx.stage(
      upload.content ? { buffer: upload.content } : { file: await upload.file(), move: true },
    );
    const head = staged.content ?? (await readHead(staged.file!));
    return this.journal(upload, upload.name, { staged }, { head, size: staged.size, digest: staged.digest });
  }

  private async takePair(upload: Upload, pair: Pair): Promise<TakeResult> {
    // The PDF is staged like any upload: the upload's own file moves; a parked half is copied, as it
    // must survive a crash until the pair is journaled (then `done` removes it).
    const staged = await this.ctx.stage({
      file: pair.pdf.file,
      move: pair.pdf.file === (await upload.file()),
    });
    const digest = createHash('sha256').update(staged.digest).update(pair.sidecar.content);
    const head = staged.content ?? (await readHead(staged.file!));
    const result = await this.journal(
      upload,
      pair.pdf.name,
      { staged },
      { head, size: staged.size, digest: digest.digest('hex') },
      { sidecar: pair.sidecar.content.toString('utf8'), sidecarName: pair.sidecar.name },
    );
    await this.pairing!.done(pair);
    return result;
  }

  /**
   * Journals one file: its bytes or its staged file (`body`), told apart as HL7 or not by its `head`
   * (which the ACK file is built from, too); `digest` makes a copy a copy.
   */
  private async journal(
    upload: Upload,
    name: string,
    body: Pick<Inbound, 'content' | 'staged'>,
    { head, size, digest }: { head: Buffer; size: number; digest: string },
    meta: Record<string, string> = {},
  ): Promise<TakeResult> {
    const rejected = size === 0 ? 'file refused: it is empty; send it again with its content' : undefined;
    const hl7 = isHl7(name, head);
    const inbound: Inbound = {
      ...body,
      contentType: hl7 ? 'application/hl7-v2' : contentTypeOf(name),
      meta: {
        fileName: name,
        account: upload.account.login,
        folder: upload.folder,
        size,
        ...meta,
      },
      sender: upload.account.login,
      // The account is the authenticated sender; the digest of the content makes a copy a copy.
      dedupKey: `sftp:${upload.account.login}:${digest}`,
      ...(upload.account.finess ? { owner: upload.account.finess } : {}),
      ...(rejected ? { rejected } : { owesAnswer: true }),
      audit: uploadAudit(upload.audit, rejected),
    };
    const receipt = await this.ctx.receive(inbound);
    if (rejected) return { rejected, audited: true };
    // Answered later, once processed: the upload is acknowledged now that the message is journaled.
    void this.answer({
      messageId: receipt.messageId,
      content: head,
      contentType: inbound.contentType!,
      meta: inbound.meta!,
      sender: upload.account.login,
    });
    return { audited: true };
  }

  /** One answer at a time per message: a late failure's rewrite comes after the first answer. */
  private answer(due: DueAnswer): Promise<void> {
    const before = this.answering.get(due.messageId) ?? Promise.resolve();
    const now = before.then(() => this.writeAnswer(due));
    this.answering.set(due.messageId, now);
    void now.then(() => {
      if (this.answering.get(due.messageId) === now) this.answering.delete(due.messageId);
    });
    return now;
  }

  /**
   * The ACK file for an HL7 file, a note in `/error` for any file whose processing or filing failed,
   * written from the journal's outcome and recorded as given. Written again (same names) when it
   * was due at a crash: one file per file, rewritten when a delivery failed after an AA.
   */
  private async writeAnswer(due: DueAnswer): Promise<void> {
    const { messageId, meta } = due;
    const login = typeof meta['account'] === 'string' ? meta['account'] : due.sender;
    const name = typeof meta['fileName'] === 'string' ? meta['fileName'] : null;
    try {
      if (!login || !name || !this.server) throw new Error('the message names no account or file');
      const tree = await this.server.accountTree(login);
      const outcome = await this.ctx.outcome(messageId);
      const failed = outcome.status === 'ERROR' || outcome.status === 'REJECTED';
      const hl7 = due.contentType === 'application/hl7-v2';
      const ack = hl7 ? (outcome.response ?? this.buildAck(due.content, outcome)) : null;
      if (ack) await tree.place('out/ack', `${name}.ack.hl7`, ack);
      if (failed) {
        const why = outcome.error ?? outcome.status.toLowerCase();
        await tree.reject(
          name,
          null,
          `message ${messageId} failed: ${why}\n` +
            'Its content is kept in the journal. Either correct the file and send it again (a copy of a ' +
            `refused file is processed anew), or, if the cause was on the DCC's side, ask the DCC to replay message ${messageId}.`,
        );
      }
      await this.ctx.answered(messageId, outcome.status === 'REJECTED' ? 'AR' : failed ? 'AE' : 'AA');
    } catch (err) {
      // Still due in the journal: written on the next start.
      this.ctx.log.warn({ err, messageId, login }, 'sftp-drop could not answer an upload');
    }
  }
}

/** The first bytes of a file: what the type check and the ACK need of a large one. */
async function readHead(file: string): Promise<Buffer> {
  const handle = await fs.open(file, 'r');
  try {
    const buf = Buffer.alloc(HEAD_BYTES);
    const { bytesRead } = await handle.read(buf, 0, HEAD_BYTES, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** HL7 v2 by name or by its first segment (a UTF-8 BOM allowed); batches start with FHS or BHS. */
function isHl7(name: string, content: Buffer): boolean {
  const start = content
    .subarray(0, 7)
    .toString('latin1')
    .replace(/^\xEF\xBB\xBF/, '');
  return path.extname(name).toLowerCase() === '.hl7' || /^(MSH|FHS|BHS)\|/.test(start);
}

function contentTypeOf(name: string): string {
  return CONTENT_TYPES[path.extname(name).toLowerCase()] ?? 'application/octet-stream';
}
