// Every page of the dashboard.
import type { FastifyInstance } from 'fastify';
import { OncoError } from '../../config/errors.ts';
import type { Engine } from '../../channels/engine.ts';
import type { Authenticator } from '../auth.ts';
import { registerLive } from '../sse.ts';
import { registerAuditPage } from './audit.ts';
import { registerIdentityPages } from './identity.ts';
import { registerDocumentPages } from './documents.ts';
import { registerLogin } from './login.ts';
import { registerMessagePages } from './messages.ts';
import { registerOverviewPages } from './overview.ts';
import { registerStatsPage } from './stats.ts';
import { registerRcpPages } from './rcp.ts';

export function registerPages(app: FastifyInstance, engine: Engine, auth: Authenticator): void {
  registerLogin(app, engine, auth);
  registerLive(app, engine);
  registerOverviewPages(app, engine);
  registerMessagePages(app, engine);
  registerIdentityPages(app, engine);
  registerDocumentPages(app, engine);
  registerAuditPage(app, engine);
  registerStatsPage(app, engine);
  registerRcpPages(app, engine);
  // Only a logged-in user gets here (the authenticator sends the others to the login form).
  app.setNotFoundHandler(async (req) => {
    throw new OncoError('ROUTE_UNKNOWN', { params: { method: req.method, path: req.url.split('?')[0]! } });
  });
}
