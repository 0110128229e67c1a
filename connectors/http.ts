// Generic HTTP data port: a listener whose POST bodies become messages, and a sender that POSTs a
// message to a URL. Plain node:http because this is a data path, not the dashboard: a body is
// acknowledged (200) only once the engine has journaled it, and a 2xx from the peer is the only success.
import http from 'node:http';
import https from 'node:https';
import Type, { type Static } from 'typebox';
import {
  SendError,
  type ConnectorContext,
  type Destination,
  type DestinationSpec,
  type Outbound,
  type SendResult,
  type Source,
  type SourceContext,
  type SourceSpec,
  type Account,
} from './contract.ts';
import {
  defaultBind,
  connectionLimitOptions,
  listen,
  readTlsFiles,
  tlsClientOption,
  tlsServerOption,
} from './listener-setup.ts';
import { OncoError } from '../config/errors.ts';
import { Default, readOptions, type OptionsOf } from '../transformers/contract.ts';

const MB = 1024 * 1024;

const listenerSchema = Type.Object(
  {
    port: Type.Integer({
      minimum: 0,
      maximum: 65535,
      description: 'Port to listen on (its own: not the dashboard port).',
    }),
    bind: Type.Optional(Type.String({ description: 'address to bind; default ONCO_BIND or 127.0.0.1' })),
    path: Default(Type.String({ pattern: '^/', description: 'URL path that takes the POSTs.' }), '/'),
    maxBodyBytes: Default(
      Type.Integer({ minimum: 1, description: 'Larger bodies are refused with 413.' }),
      10 * MB,
    ),
    auth: Default(
      Type.Enum(['none', 'basic'] as const, {
        description: 'basic: HTTP Basic against the accounts; the message is owned by the account’s FINESS.',
      }),
      'none',
    ),
    tls: Type.Optional(tlsServerOption('Serve HTTPS with this certificate and key.')),
    ...connectionLimitOptions,
  },
  { additionalProperties: false },
);

/** bind: default ONCO_BIND, else loopback. auth `basic`: the appliance account becomes the sender. */
export type HttpListenerOptions = OptionsOf<typeof listenerSchema>;

export interface HttpListener extends Source {
  /** The bound port, once started (useful when the option is 0). */
  readonly port: number;
}

class RequestRefused extends OncoError {
  declare readonly hint: string;
  constructor(
    readonly status: number,
    code: string,
    message: string,
    hint: string,
  ) {
    super(code, { message, hint, protocol: { http: status } });
  }
}

export function createHttpListener(given: Static<typeof listenerSchema>, ctx: SourceContext): HttpListener {
  const options = readOptions(listenerSchema, given);
  const { path: route, maxBodyBytes } = options;
  // The bind address comes from the environment when the options give none.
  const bind = options.bind ?? defaultBind();
  const inFlight = new Set<Promise<void>>();
  let boundPort = 0;

  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const done = handle(req, res).catch((err: unknown) => {
      ctx.log.error({ err, channelId: ctx.channelId }, 'http listener failed to answer a request');
      if (!res.headersSent) reply(res, 500, { error: 'INTERNAL', message: 'internal error' });
    });
    inFlight.add(done);
    void done.finally(() => inFlight.delete(done));
  };

  const server = options.tls
    ? https.createServer(readTlsFiles(ctx.dataDir, options.tls), handler)
    : http.createServer(handler);
  server.maxConnections = options.maxConnections;
  // Without a 'timeout' listener Node destroys the idle socket; a body still being sent is activity.
  server.setTimeout(options.idleTimeoutMs);
  server.requestTimeout = Math.max(options.idleTimeoutMs, server.requestTimeout);

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const remote = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`;
    let account: Account | null = null;
    let body: Buffer;
    try {
      checkRoute(req, route);
      if (options.auth === 'basic') account = await authenticate(req, ctx);
      body = await readBody(req, maxBodyBytes);
    } catch (err) {
      if (!(err instanceof RequestRefused)) throw err;
      refuse(res, err);
      return;
    }
    const idempotencyKey = req.headers['idempotency-key'];
    const sender = account?.login ?? req.socket.remoteAddress ?? 'unknown';
    try {
      const receipt = await ctx.receive({
        content: body,
        contentType: req.headers['content-type'] ?? 'application/octet-stream',
        meta: { remote, path: req.url ?? route, ...(account ? { account: account.login } : {}) },
        sender,
        ...(account?.finess ? { owner: account.finess } : {}),
        // The sender's own key makes its retries (after a lost response) duplicates rather than new messages.
        ...(typeof idempotencyKey === 'string' && idempotencyKey !== ''
          ? { dedupKey: `${sender}|${idempotencyKey}` }
          : {}),
      });
      reply(res, 200, { messageId: receipt.messageId, duplicateOf: receipt.duplicateOf ?? null });
    } catch (err) {
      ctx.log.error({ err, channelId: ctx.channelId, remote }, 'http listener could not journal a message');
      res.setHeader('Retry-After', '5');
      reply(res, 503, {
        error: 'NOT_STORED',
        message: 'the message could not be stored and is not accepted',
        hint: 'send it again later; the appliance log says why',
      });
    }
  }

  return {
    get port() {
      return boundPort;
    },
    async start() {
      boundPort = await listen(server, options.port, bind, `http listener of channel ${ctx.channelId}`);
      ctx.report({ connected: true, detail: `listening on ${bind}:${boundPort}${route}` });
    },
    async stop() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      await Promise.allSettled([...inFlight]);
      server.closeIdleConnections();
      await closed;
      ctx.report({ connected: false, detail: 'stopped' });
    },
  };
}

function checkRoute(req: http.IncomingMessage, route: string): void {
  const pathname = new URL(req.url ?? '/', 'http://x').pathname;
  if (pathname !== route) {
    throw new RequestRefused(404, 'NOT_FOUND', `nothing at ${pathname}`, `POST messages to ${route}`);
  }
  if (req.method !== 'POST') {
    throw new RequestRefused(405, 'METHOD_NOT_ALLOWED', `${req.method} is not accepted`, 'use POST');
  }
}

async function authenticate(req: http.IncomingMessage, ctx: SourceContext): Promise<Account> {
  const match = /^Basic ([A-Za-z0-9+/=]+)$/i.exec(req.headers.authorization ?? '');
  const decoded = match ? Buffer.from(match[1]!, 'base64').toString('utf8') : '';
  const colon = decoded.indexOf(':');
  const peer = { address: req.socket.remoteAddress ?? '?', protocol: 'http-listener' } as const;
  // An empty or malformed header is a failed attempt too: it is counted and throttled like a wrong password.
  const account = await ctx.accounts.verifyPassword(
    colon > 0 ? decoded.slice(0, colon) : '',
    colon > 0 ? decoded.slice(colon + 1) : '',
    peer,
  );
  if (!account) {
    throw new RequestRefused(
      401,
      'UNAUTHORIZED',
      'missing or wrong credentials',
      'send HTTP Basic credentials of an appliance account',
    );
  }
  return account;
}

function readBody(req: http.IncomingMessage, max: number): Promise<Buffer> {
  const tooLarge = new RequestRefused(
    413,
    'BODY_TOO_LARGE',
    `body larger than ${max} bytes`,
    'split the content or ask the administrator to raise maxBodyBytes',
  );
  if (Number(req.headers['content-length'] ?? 0) > max) return Promise.reject(tooLarge);
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        req.removeAllListeners('data');
        req.pause();
        reject(tooLarge);
      } else parts.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(parts)));
    req.on('error', reject);
  });
}

function refuse(res: http.ServerResponse, err: RequestRefused): void {
  if (err.status === 401) res.setHeader('WWW-Authenticate', 'Basic realm="onco-relay", charset="UTF-8"');
  // An unread body would be parsed as the next request: the connection cannot be reused.
  if (err.status === 413) res.setHeader('Connection', 'close');
  reply(res, err.status, { error: err.code, message: err.message, hint: err.hint });
}

function reply(res: http.ServerResponse, status: number, json: object): void {
  const body = JSON.stringify(json);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

const senderSchema = Type.Object(
  {
    url: Type.String({ pattern: '^https?://', description: 'Where each message is sent.' }),
    method: Default(
      Type.Enum(['POST', 'PUT', 'PATCH'] as const, { description: 'HTTP method of the request.' }),
      'POST',
    ),
    headers: Type.Optional(
      Type.Unsafe<Record<string, string>>({
        type: 'object',
        additionalProperties: { type: 'string' },
        description: 'Extra request headers; write ${ENV_NAME} for a token.',
      }),
    ),
    timeoutMs: Default(
      Type.Integer({
        minimum: 1,
        description: 'No answer within this many milliseconds is a failed attempt (retried).',
      }),
      30_000,
    ),
    maxResponseBytes: Default(
      Type.Integer({ minimum: 0, description: 'Response bytes kept as the delivery’s response stage.' }),
      MB,
    ),
    tls: Type.Optional(tlsClientOption()),
  },
  { additionalProperties: false },
);

/**
 * headers: written as JSON Schema additionalProperties (not a TypeBox Record) so that
 * `onco-relay schema` still offers `${NAME}` values. Response bodies beyond maxResponseBytes are
 * dropped, the send still succeeds.
 */
export type HttpSenderOptions = OptionsOf<typeof senderSchema>;

interface HttpResponse {
  status: number;
  statusText: string;
  contentType: string | undefined;
  body: Buffer;
  truncated: boolean;
}

export interface HttpSender extends Destination {
  send(msg: Outbound): Promise<SendResult>;
  stop(): Promise<void>;
}

export function createHttpSender(given: Static<typeof senderSchema>, ctx: ConnectorContext): HttpSender {
  const options = readOptions(senderSchema, given);
  const url = new URL(options.url);
  const secure = url.protocol === 'https:';
  // Never show credentials embedded in the URL.
  const where = `${url.origin}${url.pathname}`;
  const { timeoutMs, maxResponseBytes } = options;
  const agent = secure
    ? new https.Agent({
        keepAlive: true,
        ...readTlsFiles(ctx.dataDir, options.tls ?? {}),
        rejectUnauthorized: options.tls?.rejectUnauthorized ?? true,
      })
    : new http.Agent({ keepAlive: true });

  function exchange(msg: Outbound): Promise<HttpResponse> {
    return new Promise((resolve, reject) => {
      const req = (secure ? https : http).request(url, {
        method: options.method,
        agent,
        headers: {
          ...options.headers,
          'Content-Type': msg.contentType,
          'Content-Length': msg.content.length,
          'Idempotency-Key': msg.idempotencyKey,
        },
      });
      const timer = setTimeout(() => req.destroy(new TimeoutError()), timeoutMs);
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      req.on('response', (res) => {
        const parts: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          if (size < maxResponseBytes) parts.push(chunk.subarray(0, maxResponseBytes - size));
          size += chunk.length;
        });
        res.on('error', (err) => {
          clearTimeout(timer);
          reject(err);
        });
        res.on('end', () => {
          clearTimeout(timer);
          resolve({
            status: res.statusCode ?? 0,
            statusText: res.statusMessage ?? '',
            contentType: res.headers['content-type'],
            body: Buffer.concat(parts),
            truncated: size > maxResponseBytes,
          });
        });
      });
      req.end(msg.content);
    });
  }

  return {
    async send(msg) {
      let res: HttpResponse;
      try {
        res = await exchange(msg);
      } catch (cause) {
        const timedOut = cause instanceof TimeoutError;
        throw new SendError(
          timedOut ? 'HTTP_TIMEOUT' : 'HTTP_CONNECTION_FAILED',
          timedOut
            ? `no complete response from ${where} within ${timeoutMs} ms`
            : `cannot reach ${where}: ${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}`,
          { retryable: true, cause },
        );
      }
      return resultOf(res, where);
    },
    async stop() {
      agent.destroy();
    },
  };
}

class TimeoutError extends Error {}

function resultOf(res: HttpResponse, where: string): SendResult {
  const line = `HTTP ${res.status} ${res.statusText}`.trim();
  if (res.status >= 200 && res.status < 300) {
    return {
      response: res.body,
      ...(res.contentType ? { responseType: res.contentType } : {}),
      detail: res.truncated ? `${line} (response truncated)` : line,
    };
  }
  // 408 and 429 are the peer asking to come back later; other 4xx refuse this very request.
  const retryable = res.status >= 500 || res.status === 408 || res.status === 429;
  const said = describe(res);
  throw new SendError(
    retryable ? 'HTTP_SERVER_ERROR' : 'HTTP_REFUSED',
    `${where} answered ${line}${said ? `: ${said}` : ''}`,
    { retryable },
  );
}

/** The start of a textual error body: the peer's own explanation, which is what an operator acts on. */
function describe(res: HttpResponse): string {
  if (!/^(text\/|application\/(json|problem\+json|xml))/.test(res.contentType ?? '')) return '';
  const text = res.body.subarray(0, 300).toString('utf8').replace(/\s+/g, ' ').trim();
  return res.body.length > 300 ? `${text}…` : text;
}

export const httpListenerSpec: SourceSpec<Static<typeof listenerSchema>> = {
  kind: 'source',
  type: 'http-listener',
  summary: 'Takes each POST body on a port and path as a message; answers 200 once it is journaled.',
  schema: listenerSchema,
  create: createHttpListener,
};

export const httpSenderSpec: DestinationSpec<Static<typeof senderSchema>> = {
  kind: 'destination',
  type: 'http-sender',
  summary: 'Sends the message as a request body with an Idempotency-Key; only a 2xx counts as delivered.',
  schema: senderSchema,
  create: createHttpSender,
};
