// Writes an audit row for an act done through HTTP: the acting account, its role and FINESS, and
// the remote address come from the request, so no route can forget them.
import type { FastifyRequest } from 'fastify';
import type { Store } from '../store/store.ts';
import type { AuditEvent } from '../store/audit.ts';

export type Act = Omit<AuditEvent, 'actor' | 'role' | 'source'> & { actor?: string; role?: string | null };

/** Resolves after the row is committed: a read of patient data is traced before the data leaves. */
export async function audit(store: Store, req: FastifyRequest, act: Act): Promise<void> {
  const user = req.user;
  await store.write.audit.record({
    ...act,
    actor: act.actor ?? user?.login ?? 'anonymous',
    role: act.role ?? user?.role ?? null,
    source: req.ip,
    establishment: act.establishment ?? user?.finess ?? null,
  });
}
