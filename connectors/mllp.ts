// HL7 v2 over MLLP, both ways.
//
// Listener: frames of one connection are handled strictly one after the other and the socket is
// not read while one is being journaled, so a slow journal slows the sender down instead of filling
// memory. Each message is answered by exactly one ACK, in order, and only after ctx.receive() has
// resolved, that is after the commit: an AA means "durably stored" (on a channel that receives,
// processes and files in one write, the fused receipt, that commit also holds the outcome, and the
// ACK says it). A resend of a message already accepted (same authenticated sender, same MSH-4 and
// MSH-10, same bytes: the sender never saw our ACK because we crashed) is journaled as a duplicate
// and answered AA, so the sender moves on. The
// sender is who the listener can vouch for (its bound establishment, or the remote address): MSH-4
// is self-declared and only narrows the key.
//
// Sender: one message at a time on a kept-alive connection; the ACK decides the outcome.
// | ACK / event          | outcome                  | why                                                   |
// |----------------------|--------------------------|-------------------------------------------------------|
// | AA, CA               | success                  |                                                       |
// | AE                   | SendError, not retryable | the receiver found an error in this content           |
// | CR                   | SendError, not retryable | message type, version or processing id refused        |
// | AR, CE               | SendError, retryable     | HL7 v2.5 §2.9: refused for reasons unrelated to the   |
// |                      |                          | content (receiver down, internal error)               |
// | timeout, socket error, unreadable ACK, ACK for       | SendError, retryable | the message may or may not   |
// | another control id                                   |                      | have arrived: resending is   |
// |                                                      |                      | what at-least-once means     |
// The retry limit of the channel bounds how long a permanently refusing peer (an AR for bad syntax)
// is retried before the delivery goes to ERROR.
import net from 'node:net';
import tls from 'node:tls';
import Type, { type Static } from 'typebox';
import {
  SendError,
  type ConnectorContext,
  type Destination,
  type DestinationSpec,
  type Outbound,
  type Outcome,
  type SendResult,
  type Source,
  type SourceContext,
  type SourceSpec,
} from './contract.ts';
import { ackErrorOf, buildAck, parseAck, type AckCode, type AckError } from '../transformers/hl7v2-ack.ts';
import { OncoError, renderError } from '../config/errors.ts';
import { Default, readOptions, type OptionsOf } from '../transformers/contract.ts';
import { Hl7Error, get, parse, summarize, type Hl7Charset, type Hl7Message } from '../transformers/hl7v2.ts';
import {
  defaultBind,
  connectionLimitOptions,
  envPort,
  listen,
  readTlsFiles,
  tlsClientOption,
  tlsServerOption,
} from './listener-setup.ts';
import { DEFAULT_MAX_FRAME_BYTES, FrameBudget, MllpFramer, frame, type FramerEvent } from './mllp-framer.ts';

export const DEFAULT_MAX_BUFFERED_BYTES = 100 * 1024 * 1024;

const charsets = ['UNICODE UTF-8', '8859/1', '8859/15', 'ASCII'] as const;
/**
 * A map to FINESS numbers. Written as JSON Schema `additionalProperties` (not a TypeBox Record, which
 * would give `patternProperties`) so that `onco-relay schema` still offers `${NAME}` for each value.
 */
const finessMap = (description: string) =>
  Type.Unsafe<Record<string, string>>({
    type: 'object',
    additionalProperties: { type: 'string', pattern: '^\\d{9}$' },
    description,
  });

const listenerSchema = Type.Object(
  {
    port: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 65535, description: 'default ONCO_MLLP_PORT, else 2575' }),
    ),
    bind: Type.Optional(Type.String({ description: 'address to bind; default ONCO_BIND or 127.0.0.1' })),
    maxFrameBytes: Default(
      Type.Integer({ minimum: 1, description: 'A larger message is refused and its connection closed.' }),
      DEFAULT_MAX_FRAME_BYTES,
    ),
    ...connectionLimitOptions,
    maxBufferedBytes: Default(
      Type.Integer({
        minimum: 1,
        description:
          'bytes of unfinished frames held across all connections; the connection that would pass it is closed',
      }),
      DEFAULT_MAX_BUFFERED_BYTES,
    ),
    respond: Default(
      Type.Enum(['on-commit', 'on-outcome'] as const, {
        description:
          'on-commit: AA once journaled; on-outcome: the ACK waits for the steps and the store writers, so a refused message gets AE/AR with the reason. On a channel that files in one write (steps in process, store writers only: the fused receipt), both answer after that write with the outcome.',
      }),
      'on-commit',
    ),
    establishment: Type.Optional(
      Type.String({
        pattern: '^\\d{9}$',
        description: 'FINESS of the one establishment this listener serves: it owns every message',
      }),
    ),
    sendingFacilities: Type.Optional(
      finessMap(
        'MSH-4 → FINESS: the owner of a message by its sending facility; an unlisted MSH-4 is refused (AR)',
      ),
    ),
    defaultCharset: Type.Optional(
      Type.Enum(charsets, { description: 'charset of messages with an empty MSH-18' }),
    ),
    tls: Type.Optional(
      tlsServerOption('Serve MLLP over TLS with this certificate and key.', {
        ca: Type.Optional(Type.String({ description: 'PEM CA bundle client certificates must chain to' })),
        clients: Type.Optional(
          finessMap(
            'client certificate (SHA-256 fingerprint AB:CD:…, or CN=name with ca) → FINESS it binds the connection to',
          ),
        ),
      }),
    ),
  },
  { additionalProperties: false },
);

/**
 * port: default ONCO_MLLP_PORT, else 2575. bind: default ONCO_BIND, else loopback. tls.clients binds
 * each connection to an establishment by its client certificate (a connection without a listed one has
 * its messages refused, AR). sendingFacilities: MSH-4 → FINESS, an unlisted MSH-4 or one naming another
 * establishment than the connection's is refused (AR). respond: `on-commit` ACKs once journaled,
 * `on-outcome` once processed (AE when processing failed, or the ACK the processing produced).
 */
export type MllpListenerOptions = OptionsOf<typeof listenerSchema>;

export interface MllpListener extends Source {
  /** The bound port, once started (useful when the option is 0). */
  readonly port: number;
}

export function createMllpListener(given: Static<typeof listenerSchema>, ctx: SourceContext): MllpListener {
  const options = readOptions(listenerSchema, given);
  // Port and bind come from the environment when the options give none.
  const port = options.port ?? envPort('ONCO_MLLP_PORT', 2575);
  const bind = options.bind ?? defaultBind();
  const { maxFrameBytes } = options;
  const answer: AnswerOptions = {
    respond: options.respond,
    defaultCharset: options.defaultCharset,
    sendingFacilities: options.sendingFacilities,
  };
  const connections = new Set<Connection>();
  const limits = { maxConnections: options.maxConnections, idleTimeoutMs: options.idleTimeoutMs };
  const budget = new FrameBudget(options.maxBufferedBytes);
  let boundPort = 0;

  const accept = (socket: net.Socket): void => {
    const binding = bindingOf(socket, options);
    const framer = new MllpFramer({ maxFrameBytes, budget });
    const connection = new Connection(
      socket,
      framer,
      (payload, remote) => answerFrame(payload, remote, binding, ctx, answer),
      ctx,
    );
    connection.closeWhenIdle(limits.idleTimeoutMs);
    connections.add(connection);
    socket.on('close', () => {
      framer.release();
      connections.delete(connection);
    });
  };
  // Half-open: a sender may send its last message and shut its side; its ACK is still owed. Not with
  // TLS: there, a peer leaving during the handshake would leave a half-open socket that blocks stop().
  const server = options.tls
    ? tls.createServer(
        {
          ...readTlsFiles(ctx.dataDir, options.tls),
          // Client certificates are asked for when they bind connections; a listed fingerprint is
          // enough (pinning), so an unverifiable chain is not refused at the handshake.
          ...(options.tls.clients ? { requestCert: true, rejectUnauthorized: false } : {}),
        },
        accept,
      )
    : net.createServer({ allowHalfOpen: true }, accept);
  server.on('tlsClientError', (err: Error, socket: tls.TLSSocket) => {
    ctx.log.warn({ err, remote: socket.remoteAddress ?? null }, 'MLLP TLS handshake failed');
    // With a listener for this event Node leaves the socket open: without this, stop() would hang.
    socket.destroy();
  });
  // Beyond the cap the kernel's accepted socket is closed at once: descriptors stay for the others (and health).
  server.maxConnections = limits.maxConnections;
  server.on('drop', (d?: { remoteAddress?: string }) =>
    ctx.log.warn(
      { remote: d?.remoteAddress ?? null, maxConnections: limits.maxConnections },
      'MLLP connection refused: the listener has maxConnections open',
    ),
  );

  return {
    get port() {
      return boundPort;
    },
    async start() {
      boundPort = await listen(server, port, bind, `MLLP listener of channel ${ctx.channelId}`);
      ctx.report({ connected: true, detail: `listening on ${bind}:${boundPort}` });
    },
    async stop() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      await Promise.all([...connections].map((c) => c.finish()));
      await closed;
      ctx.report({ connected: false, detail: 'stopped' });
    },
  };
}

/**
 * One peer: framer events are queued and handled one at a time; the socket is paused while the queue
 * is not empty, which is the back-pressure a sender feels (TCP window) when the journal is slow.
 */
class Connection {
  private readonly queue: FramerEvent[] = [];
  private draining: Promise<void> | null = null;
  private stopping = false;
  private readonly remote: string;

  constructor(
    private readonly socket: net.Socket,
    private readonly framer: MllpFramer,
    /** The ACK to send, or null when the sender asked for none (enhanced mode, MSH-15 NE/ER/SU). */
    private readonly onFrame: (payload: Buffer, remote: string) => Promise<Buffer | null>,
    private readonly ctx: SourceContext,
  ) {
    this.remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.take(this.framer.push(chunk)));
    socket.on('end', () => {
      this.take(this.framer.end());
      void this.idle().then(() => socket.end());
    });
    socket.on('error', (err) => this.ctx.log.warn({ err, remote: this.remote }, 'MLLP connection failed'));
  }

  /** Closes the connection after `ms` without a byte either way, unless a message is being journaled. */
  closeWhenIdle(ms: number): void {
    this.socket.setTimeout(ms, () => {
      if (this.draining) return;
      this.ctx.log.info({ remote: this.remote, idleTimeoutMs: ms }, 'MLLP connection closed: idle');
      this.stop();
    });
  }

  /** Stop reading; the message being journaled still gets its ACK, queued ones will be resent by the peer. */
  async finish(): Promise<void> {
    this.stopping = true;
    this.socket.pause();
    this.queue.length = 0;
    await this.idle();
    // Once the last ACK is flushed, close both ways: a sender that keeps its side open must not hold stop().
    this.socket.end(() => this.socket.destroy());
  }

  private async idle(): Promise<void> {
    while (this.draining) await this.draining;
  }

  private take(events: FramerEvent[]): void {
    if (this.stopping) return;
    this.queue.push(...events);
    this.kick();
  }

  private kick(): void {
    if (this.draining || this.queue.length === 0) return;
    this.socket.pause();
    this.draining = this.drain()
      .catch((err: unknown) => {
        // No ACK was sent for the frame at hand: closing makes the sender resend it.
        this.ctx.log.error(
          { err, remote: this.remote },
          'MLLP listener failed on a message; connection closed',
        );
        this.stop();
      })
      .finally(() => {
        this.draining = null;
        if (this.stopping || this.socket.destroyed) return;
        if (this.queue.length > 0) this.kick();
        else this.socket.resume();
      });
  }

  private stop(): void {
    this.stopping = true;
    this.queue.length = 0;
    this.socket.destroy();
  }

  private async drain(): Promise<void> {
    for (let event = this.queue.shift(); event; event = this.queue.shift()) {
      if (event.type === 'frame') {
        const ack = await this.onFrame(event.payload, this.remote);
        if (!this.socket.writable) return;
        if (ack) this.socket.write(frame(ack));
      } else if (event.type === 'stray') {
        this.reportStray(event.reason, event.bytes);
      } else {
        this.ctx.log.warn(
          { err: event.error, remote: this.remote, hint: event.error.hint },
          event.error.message,
        );
        this.ctx.report({ lastError: `${this.remote}: ${renderError(event.error)}` });
        this.stop();
        return;
      }
    }
  }

  private reportStray(reason: 'outside-frame' | 'unterminated-frame', bytes: Buffer): void {
    // Line ends between frames are a common sender habit, not an incident.
    const harmless = reason === 'outside-frame' && /^[\r\n\s]*$/.test(bytes.toString('latin1'));
    // Only sizes are logged: the bytes may be part of a message about a patient.
    const entry = { remote: this.remote, reason, bytes: bytes.length };
    if (harmless) this.ctx.log.debug(entry, 'MLLP bytes outside any frame ignored');
    else
      this.ctx.log.warn(
        entry,
        reason === 'outside-frame'
          ? 'MLLP bytes outside any frame ignored: the sender does not frame with VT ... FS CR'
          : 'MLLP frame left unterminated: it was not acknowledged, the sender must resend it',
      );
  }
}

interface AnswerOptions {
  respond: MllpListenerOptions['respond'];
  defaultCharset: Hl7Charset | undefined;
  sendingFacilities: Readonly<Record<string, string>> | undefined;
}

/** What the listener can vouch for about one connection, before any message is read. */
interface Binding {
  /** FINESS of the establishment the connection belongs to (listener option or client certificate). */
  owner: string | null;
  /** Why every message of this connection is refused (a client certificate that binds to nobody). */
  refusal: OncoError | null;
}

function bindingOf(socket: net.Socket, options: MllpListenerOptions): Binding {
  const clients = options.tls?.clients;
  if (!clients || !(socket instanceof tls.TLSSocket))
    return { owner: options.establishment ?? null, refusal: null };
  const cert = socket.getPeerCertificate();
  if (!cert || !cert.fingerprint256)
    return { owner: null, refusal: new OncoError('MLLP_NO_CLIENT_CERTIFICATE') };
  const bySubject = socket.authorized && cert.subject?.CN ? clients[`CN=${cert.subject.CN}`] : undefined;
  const owner = clients[cert.fingerprint256] ?? bySubject ?? null;
  if (owner) return { owner, refusal: null };
  const fingerprint = cert.fingerprint256;
  return {
    owner: null,
    refusal: new OncoError('MLLP_UNKNOWN_CLIENT_CERTIFICATE', { params: { fingerprint } }),
  };
}

/** What a sender is told, on any negative answer, about the two ways out. */
const WAYS_OUT =
  'correct the message and send it again (a copy of a refused message is processed anew), or ask the DCC to replay it once the cause is fixed';

/**
 * Journals one frame and returns its ACK. Rejects only when, in `on-outcome` mode, the outcome cannot
 * be had: the connection is then closed unanswered and the sender resends (a duplicate, answered AA).
 */
async function answerFrame(
  payload: Buffer,
  remote: string,
  binding: Binding,
  ctx: SourceContext,
  options: AnswerOptions,
): Promise<Buffer | null> {
  const charset = options.defaultCharset ? { defaultCharset: options.defaultCharset } : {};
  const respond = (original: Hl7Message | Buffer, code: AckCode, error?: AckError): Buffer | null => {
    const ack = buildAck(original, { ...charset, code, ...(error ? { error } : {}) });
    return ack.send ? ack.bytes : null;
  };
  const address = remote.slice(0, remote.lastIndexOf(':'));
  // The sender as authenticated: the bound establishment, else the remote address.
  const sender = binding.owner ?? address;
  const read = readMessage(payload, charset);
  const header = read instanceof Hl7Error ? null : summarize(read);
  const facilityOwner = header ? options.sendingFacilities?.[header.sendingFacility] : undefined;
  const refusal =
    read instanceof Hl7Error
      ? read
      : (binding.refusal ??
        (header && options.sendingFacilities
          ? facilityRefusal(header.sendingFacility, facilityOwner, binding.owner)
          : null));
  if (refusal !== null) {
    const reason = renderError(refusal);
    try {
      await ctx.receive({
        content: payload,
        contentType: 'application/hl7-v2',
        meta: { remote },
        sender,
        ...(binding.owner ? { owner: binding.owner } : {}),
        rejected: reason,
      });
    } catch (err) {
      ctx.log.error({ err, remote }, 'MLLP listener could not journal a rejected message');
    }
    ctx.log.warn({ remote, code: reason.split(':')[0] }, 'MLLP message rejected (AR)');
    return respond(read instanceof Hl7Error ? payload : read, 'AR', ackErrorOf(refusal));
  }
  const message = read as Hl7Message;
  const { controlId, sendingFacility, messageType } = header!;
  const owner = binding.owner ?? facilityOwner ?? null;
  // Enhanced mode has its own code for "could not take it now" (CE); AR is its original-mode twin.
  const enhanced = get(message, 'MSH-15') !== '' || get(message, 'MSH-16') !== '';
  let messageId: number;
  try {
    const receipt = await ctx.receive({
      content: payload,
      contentType: 'application/hl7-v2',
      meta: { remote, controlId, messageType, sendingFacility },
      sender,
      ...(owner ? { owner } : {}),
      // What a resend after our crash carries unchanged; the journal adds the content's digest.
      dedupKey: `${sender}|${sendingFacility}|${controlId}`,
      takesOutcome: true,
    });
    if (receipt.duplicateOf !== undefined) return respond(message, 'AA');
    // A fused receipt committed the outcome with the message: the answer says it, in either mode.
    if (receipt.outcome) return answerOutcome(message, receipt.outcome, respond);
    if (options.respond === 'on-commit') return respond(message, 'AA');
    messageId = receipt.messageId;
  } catch (err) {
    ctx.log.error({ err, remote, controlId }, 'MLLP listener could not journal a message');
    return respond(message, enhanced ? 'AE' : 'AR', {
      code: '207',
      text: 'the message could not be stored and is not accepted: send it again later',
    });
  }
  return respondOnOutcome(message, messageId, ctx, respond);
}

/** Why an MSH-4 is refused on a listener with a `sendingFacilities` map, or null when it is fine. */
function facilityRefusal(
  facility: string,
  owner: string | undefined,
  bound: string | null,
): OncoError | null {
  if (owner === undefined) return new OncoError('MLLP_UNKNOWN_SENDING_FACILITY', { params: { facility } });
  if (bound !== null && owner !== bound)
    return new OncoError('MLLP_SENDING_FACILITY_NOT_YOURS', { params: { facility, owner, bound } });
  return null;
}

type Respond = (original: Hl7Message, code: AckCode, error?: AckError) => Buffer | null;

async function respondOnOutcome(
  read: Hl7Message,
  messageId: number,
  ctx: SourceContext,
  respond: Respond,
): Promise<Buffer | null> {
  return answerOutcome(read, await ctx.outcome(messageId), respond);
}

/** The ACK of a processed message: the processing's own response, AE with the reason, or AA. */
function answerOutcome(read: Hl7Message, outcome: Outcome, respond: Respond): Buffer | null {
  const { messageId } = outcome;
  if (outcome.response) return outcome.response;
  if (outcome.status === 'ERROR' || outcome.status === 'REJECTED') {
    const error = outcome.error
      ? ackErrorOf(outcome.error)
      : { code: '207' as const, text: 'processing failed' };
    return respond(read, 'AE', { ...error, text: `message ${messageId}: ${error.text}; ${WAYS_OUT}` });
  }
  return respond(read, 'AA');
}

/** The parsed message, or why it cannot be taken. A message without MSH-10 cannot be acknowledged. */
function readMessage(payload: Buffer, options: { defaultCharset?: Hl7Charset }): Hl7Message | Hl7Error {
  let message: Hl7Message;
  try {
    message = parse(payload, options);
  } catch (err) {
    if (err instanceof Hl7Error) return err;
    return new Hl7Error('HL7_UNREADABLE', 'the message cannot be read', { cause: err, hl7Code: '100' });
  }
  if (get(message, 'MSH-10') === '') {
    return new Hl7Error('HL7_NO_CONTROL_ID', 'MSH-10 (message control id) is empty', {
      hint: 'give every message a unique MSH-10: it is how its ACK and a resend are recognised',
      location: 'MSH-10',
      hl7Code: '101',
    });
  }
  return message;
}

const senderSchema = Type.Object(
  {
    host: Type.String({ minLength: 1, description: 'Name or address of the receiving system.' }),
    port: Type.Integer({ minimum: 1, maximum: 65535, description: 'Its MLLP port.' }),
    ackTimeoutMs: Default(
      Type.Integer({
        minimum: 1,
        description: 'No ACK within this many milliseconds is a failed attempt (retried).',
      }),
      30_000,
    ),
    maxFrameBytes: Default(
      Type.Integer({ minimum: 1, description: 'Largest ACK accepted from the peer.' }),
      1024 * 1024,
    ),
    tls: Type.Optional(
      tlsClientOption({
        servername: Type.Optional(
          Type.String({ description: 'name expected in the peer certificate (SNI)' }),
        ),
      }),
    ),
  },
  { additionalProperties: false },
);

/** `tls`: `ca` trusts a private authority, `cert`/`key` authenticate us (mutual TLS). */
export type MllpSenderOptions = OptionsOf<typeof senderSchema>;

export interface MllpSender extends Destination {
  send(msg: Outbound): Promise<SendResult>;
  stop(): Promise<void>;
}

export function createMllpSender(given: Static<typeof senderSchema>, ctx: ConnectorContext): MllpSender {
  const options = readOptions(senderSchema, given);
  const where = `${options.host}:${options.port}`;
  const { ackTimeoutMs } = options;
  const tlsOptions = options.tls
    ? {
        ...readTlsFiles(ctx.dataDir, options.tls),
        rejectUnauthorized: options.tls.rejectUnauthorized,
        ...(options.tls.servername ? { servername: options.tls.servername } : {}),
      }
    : null;
  let link: Link | null = null;
  // Sends are serialised: MLLP has no correlation but order, one ACK answers the message before it.
  let tail: Promise<unknown> = Promise.resolve();

  async function exchange(msg: Outbound): Promise<SendResult> {
    const expectedId = controlIdOf(msg.content);
    const deadline = new Deadline(ackTimeoutMs);
    try {
      // The peer may have closed the idle connection since the last send.
      if (!link?.usable) link = new Link(options, tlsOptions, options.maxFrameBytes, ctx);
      const ack = await deadline.race(link.request(msg.content));
      ctx.report({ connected: true, lastError: null });
      return judge(ack, expectedId, where);
    } catch (err) {
      const failure = toSendError(err, where, ackTimeoutMs);
      const refused = REFUSALS.has(failure.code);
      // A refusal leaves the stream in step. After a timeout or an unexpected reply it is not: a late
      // ACK would be taken for the next message's, and a fresh connection is the only safe state.
      if (!refused) {
        link?.close();
        link = null;
      }
      ctx.report({ connected: refused, lastError: failure.message });
      throw failure;
    } finally {
      deadline.clear();
    }
  }

  return {
    send(msg) {
      const result = tail.then(() => exchange(msg));
      tail = result.catch(() => undefined);
      return result;
    },
    async stop() {
      await tail;
      link?.close();
      link = null;
    },
  };
}

/** Codes of a negative ACK: the peer answered in step, the connection stays usable. */
const REFUSALS = new Set(['MLLP_ACK_AE', 'MLLP_ACK_AR', 'MLLP_ACK_CE', 'MLLP_ACK_CR']);

/** MSH-10 of what we send, to check the ACK's MSA-2 against; null when the content is not parseable HL7. */
function controlIdOf(content: Buffer): string | null {
  try {
    return get(parse(content), 'MSH-10');
  } catch {
    return null;
  }
}

/** The peer's ACK decides: success, or a SendError coded MLLP_ACK_<code> (see the table at the top). */
function judge(bytes: Buffer, expectedId: string | null, where: string): SendResult {
  let ack: ReturnType<typeof parseAck>;
  try {
    ack = parseAck(bytes);
  } catch (cause) {
    const why = cause instanceof Error ? cause.message : String(cause);
    throw new SendError('MLLP_BAD_ACK', `the answer of ${where} is not a readable ACK: ${why}`, {
      retryable: true,
      cause,
    });
  }
  if (expectedId !== null && ack.controlId !== expectedId) {
    throw new SendError(
      'MLLP_WRONG_ACK',
      `${where} acknowledged control id "${ack.controlId}" while "${expectedId}" was sent`,
      { retryable: true },
    );
  }
  const said = ack.text ? `: ${ack.text}` : '';
  if (ack.accepted)
    return { response: bytes, responseType: 'application/hl7-v2', detail: `${ack.code}${said}` };
  throw new SendError(`MLLP_ACK_${ack.code}`, `${where} answered ${ack.code}${said}`, {
    retryable: ack.code === 'AR' || ack.code === 'CE',
  });
}

/** One kept-alive connection to the peer, carrying one request at a time. */
class Link {
  private readonly socket: net.Socket;
  private readonly connected: Promise<void>;
  private readonly framer: MllpFramer;
  private waiter: { resolve: (ack: Buffer) => void; reject: (err: Error) => void } | null = null;
  private failure: Error | null = null;

  constructor(
    options: MllpSenderOptions,
    tlsOptions: tls.ConnectionOptions | null,
    maxFrameBytes: number,
    private readonly ctx: ConnectorContext,
  ) {
    this.framer = new MllpFramer({ maxFrameBytes });
    const target = { host: options.host, port: options.port };
    this.socket = tlsOptions ? tls.connect({ ...target, ...tlsOptions }) : net.connect(target);
    this.socket.setNoDelay(true);
    this.socket.setKeepAlive(true, 60_000);
    this.connected = new Promise((resolve, reject) => {
      this.socket.once(tlsOptions ? 'secureConnect' : 'connect', resolve);
      this.socket.once('error', reject);
    });
    // An unhandled rejection if nobody sends before a connection error; the error is kept in `failure`.
    this.connected.catch(() => undefined);
    this.socket.on('data', (chunk: Buffer) => this.take(this.framer.push(chunk)));
    this.socket.on('error', (err) => this.fail(err));
    this.socket.on('close', () => this.fail(new LinkClosed()));
  }

  get usable(): boolean {
    return this.failure === null;
  }

  async request(payload: Buffer): Promise<Buffer> {
    if (this.failure) throw this.failure;
    await this.connected;
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      this.socket.write(frame(payload));
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private take(events: FramerEvent[]): void {
    for (const event of events) {
      if (event.type === 'frame') {
        const waiter = this.waiter;
        this.waiter = null;
        if (waiter) waiter.resolve(event.payload);
        else this.fail(new UnexpectedReply());
      } else if (event.type === 'error') {
        this.fail(event.error);
      } else {
        this.ctx.log.warn(
          { reason: event.reason, bytes: event.bytes.length },
          'MLLP peer sent bytes outside a frame',
        );
      }
    }
  }

  private fail(err: Error): void {
    this.failure ??= err;
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.reject(err);
    this.socket.destroy();
  }
}

class LinkClosed extends Error {
  constructor() {
    super('connection closed by the peer before its ACK');
  }
}

class UnexpectedReply extends Error {
  constructor() {
    super('the peer sent a frame nobody asked for');
  }
}

class AckTimeout extends Error {}

class Deadline {
  private timer: NodeJS.Timeout | undefined;
  private readonly expired: Promise<never>;
  constructor(ms: number) {
    this.expired = new Promise((_, reject) => {
      this.timer = setTimeout(() => reject(new AckTimeout()), ms);
    });
    this.expired.catch(() => undefined);
  }
  race<T>(work: Promise<T>): Promise<T> {
    return Promise.race([work, this.expired]);
  }
  clear(): void {
    clearTimeout(this.timer);
  }
}

function toSendError(err: unknown, where: string, ackTimeoutMs: number): SendError {
  if (err instanceof SendError) return err;
  if (err instanceof AckTimeout) {
    return new SendError('MLLP_ACK_TIMEOUT', `no ACK from ${where} within ${ackTimeoutMs} ms`, {
      retryable: true,
    });
  }
  const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  return new SendError('MLLP_CONNECTION_FAILED', `MLLP exchange with ${where} failed: ${reason}`, {
    retryable: true,
    cause: err,
  });
}

export const mllpListenerSpec: SourceSpec<Static<typeof listenerSchema>> = {
  kind: 'source',
  type: 'mllp-listener',
  summary: 'Receives HL7 v2 messages over MLLP; each ACK is sent once the message is journaled.',
  schema: listenerSchema,
  create: createMllpListener,
};

export const mllpSenderSpec: DestinationSpec<Static<typeof senderSchema>> = {
  kind: 'destination',
  type: 'mllp-sender',
  summary: 'Sends HL7 v2 messages over MLLP on a kept-alive connection; only an AA/CA counts as delivered.',
  schema: senderSchema,
  create: createMllpSender,
};
