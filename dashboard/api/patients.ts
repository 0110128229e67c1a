// /api/patients and /api/vigilance: patient search, the record (an audited read), the identity
// review queue and its decisions (merge, link, reject — audited with the patient).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Engine } from '../../channels/engine.ts';
import {
  ActionError,
  identityAction,
  resolveReview,
  type IdentityAction,
  type IdentityActBody,
  type ReviewDecision,
} from '../actions.ts';
import { audit } from '../audit-log.ts';
import type { Role } from '../../store/accounts.ts';
import { operators, scopeOf, staff } from '../auth.ts';

/** Who may open a patient's record: staff, and an establishment's accounts within its FINESS. */
export const patientReaders: readonly Role[] = [...staff, 'establishment'];

/**
 * A patient's record for display; null when unknown. Writes the audit row of the read first. An
 * establishment's account (a professional opened by a contextual call) reads only the patients its
 * FINESS has an IPP for; any other is answered as unknown, and the attempt audited as refused.
 */
export async function readPatient(engine: Engine, req: FastifyRequest, id: number) {
  const { patients, vigilance } = engine.store;
  const view = Number.isSafeInteger(id) ? patients.view(id) : null;
  if (!view) throw new ActionError(404, 'PATIENT_UNKNOWN', `no patient ${id}`);
  const scope = req.user ? scopeOf(req.user) : '-';
  const inScope =
    scope === undefined || view.identifiers.some((i) => i.finess === scope && i.status === 'active');
  await audit(engine.store, req, {
    action: 'patient-read',
    object: `patient:${view.patient.id}`,
    patientId: view.patient.id,
    ...(inScope ? {} : { outcome: 'refused' as const }),
  });
  if (!inScope) throw new ActionError(404, 'PATIENT_UNKNOWN', `no patient ${id}`);
  return { ...view, reviews: vigilance.reviewsOf(view.patient.id) };
}

/**
 * Search by name prefix (`dupont, jean`), INS or IPP. The query is audited with the count: who
 * looked for whom is what the trail is for (the trail is the admins' alone; logs never get it).
 */
export async function searchPatients(engine: Engine, req: FastifyRequest, q: string, after: string | null) {
  const page = engine.store.patients.search(q, { after });
  await audit(engine.store, req, {
    action: 'patient-search',
    detail: { query: q, results: page.items.length },
  });
  return page;
}

export function registerPatientApi(app: FastifyInstance, engine: Engine): void {
  app.get(
    '/api/patients',
    {
      config: { roles: staff },
      schema: {
        summary: 'Find patients by birth or used name, INS or IPP',
        tags: ['patients'],
        querystring: {
          type: 'object',
          required: ['q'],
          properties: { q: { type: 'string', minLength: 1 }, after: { type: 'string' } },
        },
      },
    },
    async (req) => {
      const { q, after } = req.query as { q: string; after?: string };
      return searchPatients(engine, req, q, after ?? null);
    },
  );

  app.get(
    '/api/patients/:id',
    {
      config: { roles: patientReaders },
      schema: {
        summary: 'A patient record: identities, identifiers per establishment, history (audited)',
        tags: ['patients'],
        params: { type: 'object', required: ['id'], properties: { id: { type: 'integer' } } },
      },
    },
    async (req) => readPatient(engine, req, (req.params as { id: number }).id),
  );

  app.get(
    '/api/vigilance',
    {
      config: { roles: staff },
      schema: {
        summary: 'Open identity review items, oldest first',
        tags: ['vigilance'],
        querystring: { type: 'object', properties: { after: { type: 'string' } } },
      },
    },
    async (req) =>
      engine.store.vigilance.listOpen({ after: (req.query as { after?: string }).after ?? null }),
  );

  app.post(
    '/api/vigilance/:id/:decision',
    {
      config: { roles: operators },
      schema: {
        summary: 'Decide a review item: merge or link the pair, or reject (two people) — audited',
        tags: ['vigilance'],
        params: {
          type: 'object',
          required: ['id', 'decision'],
          properties: { id: { type: 'integer' }, decision: { enum: ['merge', 'link', 'reject'] } },
        },
        body: { type: ['object', 'null'], properties: { note: { type: 'string', maxLength: 2000 } } },
      },
    },
    async (req) => {
      const { id, decision } = req.params as { id: number; decision: ReviewDecision };
      await resolveReview(engine, req, id, decision, (req.body as { note?: string } | null)?.note);
      return engine.store.vigilance.getReview(id);
    },
  );

  app.post(
    '/api/patients/:id/:action',
    {
      config: { roles: operators },
      schema: {
        summary:
          'Identity acts: merge this patient into `other`, undo its merge, link or unlink it with `other`, detach a wrongly linked IPP (`finess`, `ipp`) — audited',
        tags: ['vigilance'],
        params: {
          type: 'object',
          required: ['id', 'action'],
          properties: {
            id: { type: 'integer' },
            action: { enum: ['merge', 'unmerge', 'link', 'unlink', 'detach'] },
          },
        },
        body: {
          type: ['object', 'null'],
          properties: {
            other: { type: 'integer' },
            finess: { type: 'string', pattern: '^\\d{9}$' },
            ipp: { type: 'string', minLength: 1 },
          },
        },
      },
    },
    async (req) => {
      const { id, action } = req.params as { id: number; action: IdentityAction };
      return identityAction(engine, req, action, id, (req.body ?? {}) as IdentityActBody);
    },
  );
}
