// Every page of the dashboard.
import type { FastifyInstance } from 'fastify';
import type { Engine } from '../../channels/engine.ts';
import type { Authenticator } from '../auth.ts';
import { registerLive } from '../sse.ts';
import { registerAuditPage } from './audit.ts';
import { registerIdentityPages } from './identity.ts';
import { registerLogin } from './login.ts';
import { registerMessagePages } from './messages.ts';
import { registerOverviewPages } from './overview.ts';
import { registerStatsPage } from './stats.ts';
import { sendError, wantsPage } from './layout.ts';

export function registerPages(app: FastifyInstance, engine: Engine, auth: Authenticator): void {
  registerLogin(app, engine, auth);
  registerLive(app, engine);
  registerOverviewPages(app, engine);
  registerMessagePages(app, engine);
  registerIdentityPages(app, engine);
  registerAuditPage(app, engine);
  registerStatsPage(app, engine);
  // Only a logged-in user gets here (the authenticator sends the others to the login form).
  app.setNotFoundHandler(async (req, reply) => {
    const message = `nothing at ${req.method} ${req.url.split('?')[0]}`;
    const hint = 'check the address, or follow a link from the menu';
    if (wantsPage(req)) return sendError(req, reply, 404, message, hint);
    return reply.code(404).send({ error: 'NOT_FOUND', message, hint });
  });
}
