// The dashboard of a test's engine on a loopback port of the system's choosing.
import type { FastifyInstance } from 'fastify';
import type { Engine } from '../../channels/engine.ts';
import type { AuthOptions } from '../../dashboard/auth.ts';
import { buildServer } from '../../dashboard/server.ts';

export async function listenDashboard(
  engine: Engine,
  auth?: Partial<AuthOptions>,
): Promise<{ app: FastifyInstance; base: string }> {
  const app = buildServer(engine, { bind: '127.0.0.1', port: 0, auth });
  await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, base: `http://127.0.0.1:${(app.server.address() as { port: number }).port}` };
}
