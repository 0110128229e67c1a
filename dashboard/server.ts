// The HTTP face of the appliance (fastify). This file holds the server and the unauthenticated
// health route; the admin API and pages register their routes on the same instance.
import fs from 'node:fs';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Engine } from '../channels/engine.ts';

export interface HttpOptions {
  bind: string;
  port: number;
  tls?: { cert: string; key: string };
}

export function buildServer(engine: Engine, options: HttpOptions): FastifyInstance {
  const app = Fastify({
    logger: false,
    https: options.tls
      ? { cert: fs.readFileSync(options.tls.cert), key: fs.readFileSync(options.tls.key) }
      : null,
  });

  app.get('/api/health', async (_req, reply) => {
    const channels = engine.status().map((c) => ({
      id: c.id,
      name: c.name,
      state: c.state,
      source: c.source,
      backlog: c.backlog,
      queued: c.queued,
      lastError: c.lastError,
    }));
    const failed = channels.some((c) => c.state === 'FAILED');
    reply.code(failed ? 503 : 200);
    return {
      status: failed ? 'degraded' : 'ok',
      uptimeSeconds: Math.round((Date.now() - engine.startedAt) / 1000),
      channels,
    };
  });

  return app;
}
