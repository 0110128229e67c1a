// /api/audit: the trail searched per actor, patient, action and time; verification of the chain.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Engine } from '../../channels/engine.ts';
import type { AuditFilter } from '../../store/audit.ts';
import { admins } from '../auth.ts';
import { parseCursor } from './messages.ts';

export const auditQuerySchema = {
  type: 'object',
  properties: {
    actor: { type: 'string' },
    patient: { type: 'string', pattern: '^\\d*$' },
    action: { type: 'string' },
    from: { type: 'string', format: 'date' },
    to: { type: 'string', format: 'date' },
    after: { type: 'string' },
  },
} as const;

export interface AuditQuery {
  actor?: string;
  patient?: string;
  action?: string;
  from?: string;
  to?: string;
  after?: string;
}

export function auditFilter(q: AuditQuery): AuditFilter {
  return {
    actor: q.actor || undefined,
    patientId: q.patient ? Number(q.patient) : undefined,
    action: q.action || undefined,
    from: q.from ? Date.parse(q.from) : undefined,
    // A `to` day is included whole.
    to: q.to ? Date.parse(q.to) + 86_400_000 : undefined,
  };
}

export function searchAudit(engine: Engine, req: FastifyRequest) {
  const q = req.query as AuditQuery;
  const page = engine.store.audit.search(auditFilter(q), { after: parseCursor(q.after) });
  return { items: page.items, next: page.next === null ? null : String(page.next) };
}

export function registerAuditApi(app: FastifyInstance, engine: Engine): void {
  app.get(
    '/api/audit',
    {
      config: { roles: admins },
      schema: {
        summary: 'Search the audit trail, newest first',
        tags: ['audit'],
        querystring: auditQuerySchema,
      },
    },
    async (req) => searchAudit(engine, req),
  );

  app.get(
    '/api/audit/verify',
    {
      config: { roles: admins },
      schema: { summary: 'Recompute the hash chain of the audit trail', tags: ['audit'] },
    },
    async () => engine.store.audit.verify(),
  );
}
