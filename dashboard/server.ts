// The HTTP face of the appliance (fastify): the unauthenticated health route, then the login
// gate every other route passes through, the JSON API, metrics and the pages.
import fs from 'node:fs';
import fastifyCookie from '@fastify/cookie';
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import type { Engine } from '../channels/engine.ts';
import { OncoError } from '../config/errors.ts';
import { Authenticator, defaultAuthOptions, type AuthOptions } from './auth.ts';
import { registerActx } from './actx.ts';
import { registerAuditApi } from './api/audit.ts';
import { registerChannelApi } from './api/channels.ts';
import { registerMessageApi } from './api/messages.ts';
import { registerPatientApi } from './api/patients.ts';
import { registerOrderApi } from './api/orders.ts';
import { registerDocumentApi } from './api/documents.ts';
import { registerRcpApi } from './api/rcp.ts';
import { registerStatsApi } from './api/stats.ts';
import { registerMetrics } from './metrics.ts';
import { collectRoutes, registerOpenApi } from './openapi.ts';
import { registerPages } from './pages/index.ts';
import { sendError, wantsPage } from './pages/layout.ts';

export interface HttpOptions {
  bind: string;
  port: number;
  tls?: { cert: string; key: string };
  /** `auto` (default): the session cookie is Secure over TLS or behind a proxy saying X-Forwarded-Proto: https. */
  secureCookies?: AuthOptions['secureCookies'];
  /** Reverse proxies whose X-Forwarded-For is believed: behind one, every client would otherwise share its address. */
  trustProxy?: string[];
  /** Session settings; defaults: 30 min idle, 12 h at most. Throttling of failures is the store's (store/auth.ts). */
  auth?: Partial<AuthOptions>;
}

const securityHeaders = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cache-control': 'no-store',
};

function errorAnswer(error: FastifyError | Error): {
  status: number;
  code: string;
  message: string;
  hint?: string;
} {
  // The catalogue says which HTTP status each code answers with; a code it gives none is the caller's.
  if (error instanceof OncoError) {
    const status = error.protocol.http ?? 400;
    return { status, code: error.code, message: error.message, ...(error.hint ? { hint: error.hint } : {}) };
  }
  const fe = error as FastifyError;
  if (fe.validation) return { status: 400, code: 'REQUEST_INVALID', message: fe.message };
  const status = fe.statusCode && fe.statusCode < 500 ? fe.statusCode : 500;
  return {
    status,
    code: fe.code ?? 'INTERNAL',
    message: status === 500 ? 'internal error: see the server log' : fe.message,
  };
}

export function buildServer(engine: Engine, options: HttpOptions): FastifyInstance {
  const app = Fastify({
    logger: false,
    trustProxy: options.trustProxy?.length ? options.trustProxy : false,
    // Live pages hold connections open: close must not wait for them.
    forceCloseConnections: true,
    https: options.tls
      ? { cert: fs.readFileSync(options.tls.cert), key: fs.readFileSync(options.tls.key) }
      : null,
  });
  const routes = collectRoutes(app);
  const auth = new Authenticator(engine, {
    ...defaultAuthOptions,
    ...(options.secureCookies ? { secureCookies: options.secureCookies } : {}),
    ...options.auth,
  });
  // Parses cookies leniently: a malformed one is ignored instead of failing the request.
  void app.register(fastifyCookie);
  auth.install(app);

  app.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'string', bodyLimit: 65536 },
    (_req, body, done) => done(null, Object.fromEntries(new URLSearchParams(body as string))),
  );
  app.addHook('onSend', async (_req, reply) => {
    // A route may set a header of its own (a PDF shown inline on our pages may be framed by them).
    for (const [name, value] of Object.entries(securityHeaders))
      if (!reply.hasHeader(name)) reply.header(name, value);
  });
  app.setErrorHandler((error: FastifyError, req, reply) => {
    const a = errorAnswer(error);
    if (a.status >= 500)
      engine.log.error({ err: error.message, url: req.routeOptions.url }, 'request failed');
    if (wantsPage(req)) return sendError(req, reply, a.status, a.message, a.hint);
    return reply
      .code(a.status)
      .send({ error: a.code, message: a.message, ...(a.hint ? { hint: a.hint } : {}) });
  });

  app.get(
    '/api/health',
    {
      config: { public: true },
      schema: { summary: "Each channel's state; no login needed", tags: ['monitoring'] },
    },
    async (req, reply) => {
      // Without a login: states and counts only. Error texts quote message content (a birth date),
      // and details name files, paths and remote accounts.
      const full = (await auth.identify(req)) !== null;
      const channels = engine.status().map((c) => ({
        id: c.id,
        name: c.name,
        state: c.state,
        backlog: c.backlog,
        queued: c.queued,
        ...(full
          ? { source: c.source, lastError: c.lastError }
          : { source: { type: c.source.type, connected: c.source.connected ?? null } }),
      }));
      // A writer thread down (restarting, or for good) refuses every write: nothing is received.
      const writer = engine.store.writerHealth();
      const failed = channels.some((c) => c.state === 'FAILED') || writer.state !== 'up';
      reply.code(failed ? 503 : 200);
      return {
        status: failed ? 'degraded' : 'ok',
        uptimeSeconds: Math.round((Date.now() - engine.startedAt) / 1000),
        store: {
          writer: writer.state,
          restarts: writer.restarts,
          ...(full ? { lastError: writer.lastError } : {}),
        },
        channels,
      };
    },
  );

  registerChannelApi(app, engine);
  registerMessageApi(app, engine);
  registerPatientApi(app, engine);
  registerDocumentApi(app, engine);
  registerOrderApi(app, engine);
  registerRcpApi(app, engine);
  registerAuditApi(app, engine);
  registerStatsApi(app, engine);
  registerMetrics(app, engine);
  registerActx(app, engine, auth);
  registerPages(app, engine, auth);
  registerOpenApi(app, routes);
  app.decorate('registeredRoutes', routes);
  return app;
}

/** Every route of a server built by buildServer (for the security test that tries each one). */
export const registeredRoutes = (app: FastifyInstance): Array<{ method: string | string[]; url: string }> =>
  (app as unknown as { registeredRoutes: Array<{ method: string | string[]; url: string }> })
    .registeredRoutes;
