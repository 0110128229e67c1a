// Server-sent events for live pages, and the one client script that reads them.
import fs from 'node:fs';
import type { FastifyInstance } from 'fastify';
import type { Engine } from '../channels/engine.ts';
import { channelSummary } from './api/channels.ts';
import { everyone, staff } from './auth.ts';

const liveScript = fs.readFileSync(new URL('./assets/live.js', import.meta.url), 'utf8');

export function registerLive(app: FastifyInstance, engine: Engine, everyMs = 1000): void {
  app.get('/assets/live.js', { config: { roles: everyone } }, async (_req, reply) =>
    reply.type('text/javascript; charset=utf-8').send(liveScript),
  );

  app.get('/events', { config: { roles: staff } }, (req, reply) => {
    reply.hijack();
    reply.raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
    });
    const push = (): void => {
      reply.raw.write(`event: status\ndata: ${JSON.stringify(engine.status().map(channelSummary))}\n\n`);
    };
    push();
    const timer = setInterval(push, everyMs);
    req.raw.on('close', () => clearInterval(timer));
  });
}
