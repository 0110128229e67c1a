// The contract between the engine (channels/) and the connectors: a connector only moves bytes.
// The engine owns journaling, acknowledgement timing, retry, metrics and shutdown (Benthos' split),
// so a connector never retries on its own and never decides whether a message is durable.
import type { Filing } from '../store/filing.ts';
import type { Role } from '../store/accounts.ts';
import type { DueAnswer } from '../store/journal.ts';
import type { StageFrom, StagedContent } from '../store/blob-files.ts';
import type { OutboxRow } from '../store/outbox.ts';
import { OncoError } from '../config/errors.ts';

/** A message whose answer its source still owes: after a crash, or once a delivery failed late. */
export type { DueAnswer };
/** A store writer's filing: a writer module method and its plain arguments. */
export type { Filing };

import type { ContentFile, JsonSchema, MetaValue } from '../transformers/contract.ts';
import type { TObject } from 'typebox';

export type { ContentFile, JsonSchema, MetaValue } from '../transformers/contract.ts';
export type { StageFrom, StagedContent } from '../store/blob-files.ts';
export type Meta = Record<string, MetaValue>;

/** What a source hands to the engine: `content`, or `staged` (SourceContext.stage) for a file or a stream. */
export interface Inbound {
  content?: Buffer;
  /** Content made ready by `SourceContext.stage`: large content is then never held in memory. */
  staged?: StagedContent;
  /** MIME type as far as the source knows it (`application/hl7-v2`, `application/xml`, …). */
  contentType?: string;
  /** Free metadata shown in the message browser (file name, remote address, account, MSH-10 …). */
  meta?: Meta;
  /** Who sent it: an account login, a remote address or a mailbox. Scopes de-duplication and access. */
  sender?: string;
  /** Establishment or lab FINESS owning the message, used to scope what an account may see. */
  owner?: string;
  /** Stable key for duplicate detection (sender + MSH-10 for HL7, content digest for files). */
  dedupKey?: string;
  /** Set when the source already knows the input is unusable: journaled as ERROR, never processed. */
  rejected?: string;
  /**
   * The source answers after processing (an ACK file): the journal keeps that answer due until the
   * source calls `answered`, so that it is written after a crash and rewritten after a late failure.
   */
  owesAnswer?: boolean;
  /**
   * The store outbox row this message carries (`store-outbox`): the journal takes the row in the
   * transaction that stores the message, so a row is journaled exactly once across a crash.
   */
  outboxId?: number;
  /**
   * The act that brought the message, for the audit trail: recorded in the commit that journals the
   * message, so that the sender's acknowledgement waits for one commit rather than two.
   */
  audit?: ConnectorAct;
  /**
   * The source answers with the message's outcome when the receipt carries one (`Receipt.outcome`):
   * the channel may then run the steps and file before journaling, the receipt, the result and the
   * filing in one commit (the fused receipt, issue 14).
   */
  takesOutcome?: boolean;
}

export interface Receipt {
  messageId: number;
  /** Present when a copy (same dedupKey, same content) was already accepted: recorded, not filed again. */
  duplicateOf?: number;
  /** An earlier copy was refused or failed: this one is processed again, linked to it. */
  resendOf?: number;
  /** An earlier message had the same dedupKey with other content (a reused MSH-10): processed, flagged. */
  keyReusedFrom?: number;
  /**
   * The message's final outcome, committed with the receipt (fused receipt, `Inbound.takesOutcome`):
   * the source answers with it whatever its mode. Absent: the outcome is still to come (`outcome()`).
   */
  outcome?: Outcome;
}

/** Processing outcome of a message, for sources that answer after the transform stage (ACK files). */
export interface Outcome {
  messageId: number;
  status: 'FILTERED' | 'TRANSFORMED' | 'ERROR' | 'DUPLICATE' | 'REJECTED';
  error?: string;
  /** Response produced by processing (an HL7 ACK, for instance), if any. */
  response?: Buffer;
}

export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface Account {
  login: string;
  role: Role;
  finess: string | null;
}

/** The remote end of an authentication attempt: throttling and the audit trail are per address. */
export interface Peer {
  /** Remote IP address, without port. */
  address: string;
  protocol: 'sftp' | 'http-listener' | 'smtp' | 'actx';
  /** Only accounts of these roles may log in this way (SFTP: establishment and lab). */
  roles?: ReadonlyArray<Account['role']>;
}

/** An act a connector reports to the audit trail (an SFTP upload): who, what, from where. */
export interface ConnectorAct {
  actor: string;
  action: string;
  object?: string;
  source?: string;
  establishment?: string | null;
  outcome?: 'ok' | 'refused' | 'failed';
  detail?: Record<string, unknown>;
}

/**
 * Authentication provided by the engine's one authentication service: failures counted, throttled
 * per address and audited whatever the protocol. Connectors never read the users table.
 */
export interface Accounts {
  verifyPassword(login: string, password: string, peer: Peer): Promise<Account | null>;
  /**
   * `key` is the OpenSSH wire form of the offered public key (algorithm + blob). `proof`: `query`
   * when the client only asks whether the key would do, else whether its signature verified.
   */
  verifyPublicKey(
    login: string,
    algorithm: string,
    key: Buffer,
    peer: Peer,
    proof: 'query' | 'signed' | 'bad-signature',
  ): Promise<Account | null>;
  /** Login of the account without checking credentials, for key-based flows that verify a signature later. */
  find(login: string): Promise<Account | null>;
  /** The enabled establishment accounts of a FINESS: whose SFTP `/out/` a document for it goes to. */
  ofEstablishment?(finess: string): Promise<Account[]>;
  /** Records an act in the audit trail; resolves once it is committed. */
  audit?(act: ConnectorAct): Promise<void>;
}

export interface ConnectorState {
  connected?: boolean;
  lastError?: string | null;
  detail?: string;
}

/** An establishment or lab of the region's directory (`config/directory.yaml`), as connectors see it. */
export interface DirectoryEntry {
  finess: string;
  kind: string;
  /** Establishments whose patients it may report on besides its own: `all` of the directory, or a list. */
  reportsFor?: 'all' | readonly string[];
  /** Its MSSanté addresses: the senders an inbox's allow-list takes from the directory. */
  mssante?: readonly string[];
  /** How it takes the documents the DCC sends it (validated FRCP, PPS); default: pickup in its `/out/`. */
  documents?: DocumentRoute;
}

/** An establishment's preferred way and format for outbound documents (`directory.yaml`). */
export interface DocumentRoute {
  /** `sftp-push` to its server, `pickup` in its own `/out/` of the built-in SFTP server, `mllp` to its record system, `mssante` to its mailbox. */
  way: 'sftp-push' | 'pickup' | 'mllp' | 'mssante';
  /** The channel that carries this way for it (its server's address lives there); default per way. */
  channel?: string;
  /** Its MSSanté mailbox (way `mssante`). */
  mailbox?: string;
  /** What it reads: the CDA with its PDF, an XDM zip, or HL7 v2 MDM (ways sftp-push and pickup). */
  format?: 'cda' | 'xdm' | 'hl7v2';
  /** MSH-5 of the HL7 v2 it is sent (its record system's application). */
  application?: string;
}

/** A professional of the directory, as the document routing sees them. */
export interface DirectoryProfessional {
  rpps: string;
  /** MSSanté mailbox: the documents of the patients they care for go there. */
  mssante?: string;
  finess?: string;
}

export interface Directory {
  readonly establishments: readonly DirectoryEntry[];
  readonly professionals?: readonly DirectoryProfessional[];
}

/** Everything a connector may use. Nothing else of the engine is visible to it. */
export interface ConnectorContext {
  channelId: string;
  /** Absolute data directory of the appliance; relative paths in options resolve against it. */
  dataDir: string;
  log: Logger;
  accounts: Accounts;
  /** Report connection state for /api/health and the dashboard. */
  report(state: ConnectorState): void;
  /**
   * One instance per key for the whole engine (the built-in SFTP server, the SMTP server), started
   * on first use and closed when its last user releases it.
   */
  shared<T extends SharedService>(key: string, create: () => T): Promise<SharedHandle<T>>;
  /** The region's directory; the engine always gives it (optional for connector tests without one). */
  directory?: Directory;
}

export interface SharedService {
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface SharedHandle<T> {
  service: T;
  release(): Promise<void>;
}

export interface SourceContext extends ConnectorContext {
  /**
   * Makes content ready to be journaled without holding it in memory: a finished file (`move`: the
   * source is done with it) or a stream is written to a file beside the journal when it is above
   * the engine's threshold, hashed on the way; smaller content comes back as bytes. Pass the result
   * as `Inbound.staged`; its `digest` (SHA-256, hex) may serve in a de-duplication key.
   */
  stage(from: StageFrom): Promise<StagedContent>;
  /**
   * Journal the message durably. Resolves only after the commit (group commit: other messages may
   * share the fsync), so the caller may acknowledge to its peer exactly then. Waits while the
   * channel's queue is above its bound: that wait is the back-pressure a source passes on.
   */
  receive(msg: Inbound): Promise<Receipt>;
  /**
   * Resolves once the message has left the processing stage (filtered, transformed or failed) and
   * its store writers (destinations with `apply`) have settled or made their first attempt: an
   * answer given then says whether the message is filed or refused, not only whether it parsed.
   * `peerWaits: false`: no peer holds a connection open for this answer (an ACK file written later),
   * so the processing result shares a later commit instead of opening one of its own.
   */
  outcome(messageId: number, options?: { peerWaits?: boolean }): Promise<Outcome>;
  /** Messages received with `owesAnswer` whose answer is due (after a crash or a late failure), a page at a time. */
  answersDue(afterId?: number): Promise<DueAnswer[]>;
  /** Records the answer given (AA, AE, AR): durable, so that it is not given twice. */
  answered(messageId: number, code: string): Promise<void>;
  /** The store's outbox, for store-fed sources (`store-outbox`): the engine always gives it. */
  outbox?: OutboxAccess;
}

/** The core store's outbox as the source that reads it sees it. */
export interface OutboxAccess {
  /** Rows of a channel still waiting to be taken, oldest first. */
  waiting(channel: string, afterId: number, limit: number): OutboxRow[];
  /** Calls `listener` after each store commit, with the module written; returns the unsubscribe. */
  onCommit(listener: (module: string) => void): () => void;
}

export interface Source {
  start(): Promise<void>;
  /** A message's answer became due while the source runs (a delivery failed after an AA). */
  answerDue?(answer: DueAnswer): void;
  /** Stop taking new input; resolve once every receive() already begun has settled. */
  stop(): Promise<void>;
}

/** What the engine hands to a destination for one delivery attempt. */
export interface Outbound {
  messageId: number;
  deliveryId: number;
  /** Stable across retries and replays: use it as file name, Message-ID or MSH-10 so resends are harmless. */
  idempotencyKey: string;
  /** The bytes. For content kept as a file (`file`), reading this loads the file whole, once. */
  content: Buffer;
  /** Content above the engine's threshold: a destination streams it from here instead. */
  file?: ContentFile;
  contentType: string;
  meta: Meta;
  /** FINESS of the authenticated sender (Inbound `owner`); null when the source knows none. */
  owner?: string | null;
  attempt: number;
}

export interface SendResult {
  response?: Buffer;
  responseType?: string;
  /** Shown in the message browser (remote file name, relay's queue id …). */
  detail?: string;
}

/** What became of one message of a batch: sent, failed (alone), or not attempted. */
export type BatchOutcome = { result: SendResult } | { error: unknown } | { notAttempted: true };

export interface Destination {
  start?(): Promise<void>;
  /** Sends outside the appliance: at-least-once, made harmless by `idempotencyKey`. */
  send?(msg: Outbound): Promise<SendResult>;
  /**
   * Sends several queued messages at once, sharing what can be shared (a file writer fsyncs its
   * folder once for the batch). One outcome per message, in order; a failure concerns its message
   * alone. `ordered`: the batch stops at its first failure, and the messages after it are
   * `notAttempted`, so that an ordered queue stays ordered. Destinations without it get `send`.
   */
  sendBatch?(msgs: Outbound[], options: { ordered: boolean }): Promise<BatchOutcome[]>;
  /**
   * Files into the core store instead of sending: names the store's filing of this message (a
   * writer module method with plain arguments), which the store's writer runs inside the very
   * transaction that marks the delivery SENT: store filing is exactly-once (DESIGN.md, rule 4).
   * Content it refuses before any write: throw a SendError.
   */
  filing?(msg: Outbound): Filing;
  stop?(): Promise<void>;
}

export interface DestinationContext extends ConnectorContext {
  /** Hands a message to another deployed channel, as its source would (the channel writer). */
  dispatch(channelId: string, msg: Inbound): Promise<Receipt>;
  /** As `SourceContext.stage`: content for `dispatch` made ready without holding it in memory. */
  stage(from: StageFrom): Promise<StagedContent>;
}

/**
 * A failed send. `retryable: false` means retrying cannot help (the peer refused the content):
 * the delivery goes straight to ERROR instead of burning its retries.
 */
export class SendError extends OncoError {
  readonly retryable: boolean;
  constructor(
    code: string,
    message: string,
    options: { retryable: boolean; cause?: unknown; hint?: string },
  ) {
    const { retryable, ...rest } = options;
    super(code, { message, ...rest, protocol: { retryable } });
    this.retryable = retryable;
  }
}

export interface SourceSpec<O = Record<string, unknown>> {
  kind: 'source';
  type: string;
  summary: string;
  schema: JsonSchema | TObject;
  create(options: O, ctx: SourceContext): Source;
}

export interface DestinationSpec<O = Record<string, unknown>> {
  kind: 'destination';
  type: string;
  summary: string;
  schema: JsonSchema | TObject;
  create(options: O, ctx: DestinationContext): Destination;
}
