// /api/orders: molecular analyses prescribed in the DCC (issue 10 item 5). Creating one sends it to
// its lab (the molecular-orders channel, through the store's outbox, in the same transaction); a
// result carrying its number closes it. Least privilege: DCC operators and establishments order
// (an establishment only for its own patients, and sees only its own orders); a lab reads only the
// orders addressed to it; viewers read. Every creation and every read is audited with the patient.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Engine } from '../../channels/engine.ts';
import type { OrderRecord, OrderStatus } from '../../store/orders.ts';
import { ActionError } from '../actions.ts';
import { audit } from '../audit-log.ts';
import { scopeOf } from '../auth.ts';
import type { Role } from '../../store/accounts.ts';

const orderers: readonly Role[] = ['admin', 'operator', 'establishment'];
const readers: readonly Role[] = ['admin', 'operator', 'viewer', 'establishment', 'lab'];

interface OrderBody {
  patientId: number;
  analysis: { code: string; display?: string; system?: string };
  labFiness: string;
  prescriber: { rpps: string; familyName?: string; givenName?: string };
  clinicalInformation?: string;
}

const orderSchema = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    orderNumber: { type: 'string' },
    patientId: { type: 'integer' },
    analysis: { type: 'object', additionalProperties: true },
    labFiness: { type: 'string' },
    prescriber: { type: 'object', additionalProperties: true },
    clinicalInformation: { type: ['string', 'null'] },
    status: { enum: ['ordered', 'resulted'] },
    establishment: { type: ['string', 'null'] },
    createdAt: { type: 'string' },
    createdBy: { type: 'string' },
    resultDocumentId: { type: ['integer', 'null'] },
    resultedAt: { type: ['string', 'null'] },
  },
};

/** What this account may see of an order: its lab's, its establishment's, or all for DCC staff. */
function visible(req: FastifyRequest, order: OrderRecord): boolean {
  const user = req.user;
  if (!user) return false;
  const scope = scopeOf(user);
  if (scope === undefined) return true;
  return user.role === 'lab' ? order.labFiness === scope : order.establishment === scope;
}

export function registerOrderApi(app: FastifyInstance, engine: Engine): void {
  const { store } = engine;

  app.post(
    '/api/orders',
    {
      config: { roles: orderers },
      schema: {
        summary: 'Order a molecular analysis for a patient: sent to the lab as OML^O21 (audited)',
        tags: ['orders'],
        body: {
          type: 'object',
          required: ['patientId', 'analysis', 'labFiness', 'prescriber'],
          additionalProperties: false,
          properties: {
            patientId: { type: 'integer', minimum: 1 },
            analysis: {
              type: 'object',
              required: ['code'],
              additionalProperties: false,
              properties: {
                code: { type: 'string', minLength: 1, maxLength: 64 },
                display: { type: 'string', maxLength: 200 },
                system: { type: 'string', maxLength: 64 },
              },
            },
            labFiness: { type: 'string', pattern: '^[0-9A-B]{9}$' },
            prescriber: {
              type: 'object',
              required: ['rpps'],
              additionalProperties: false,
              properties: {
                rpps: { type: 'string', pattern: '^[0-9]{11}$' },
                familyName: { type: 'string', maxLength: 100 },
                givenName: { type: 'string', maxLength: 100 },
              },
            },
            clinicalInformation: { type: 'string', maxLength: 2000 },
          },
        },
        response: { 201: orderSchema },
      },
    },
    async (req, reply) => {
      const body = req.body as OrderBody;
      const user = req.user!;
      const lab = engine.config.directory.establishments?.find((e) => e.finess === body.labFiness);
      if (lab?.kind !== 'molecular-lab') {
        throw new ActionError(
          400,
          'ORDER_LAB_UNKNOWN',
          `${body.labFiness} is not a molecular biology lab of the directory`,
        );
      }
      const scope = scopeOf(user);
      if (scope !== undefined) {
        // An establishment orders only for a patient it has numbered (an IPP of its FINESS).
        const own = store.patients.identifiers(body.patientId).some((i) => i.finess === scope);
        if (!own) throw new ActionError(404, 'PATIENT_UNKNOWN', `no patient ${body.patientId}`);
      }
      const order = await store.write.orders.create(
        body,
        { login: user.login, role: user.role, source: req.ip, establishment: scope ?? null },
        Date.now(),
      );
      return reply.code(201).send(order);
    },
  );

  app.get(
    '/api/orders',
    {
      config: { roles: readers },
      schema: {
        summary: 'Molecular orders, newest first; an establishment or a lab sees its own (audited)',
        tags: ['orders'],
        querystring: {
          type: 'object',
          properties: {
            patientId: { type: 'integer', minimum: 1 },
            status: { enum: ['ordered', 'resulted'] },
            before: { type: 'integer', minimum: 1 },
            limit: { type: 'integer', minimum: 1, maximum: 500 },
          },
        },
        response: { 200: { type: 'array', items: orderSchema } },
      },
    },
    async (req) => {
      const q = req.query as { patientId?: number; status?: OrderStatus; before?: number; limit?: number };
      const user = req.user!;
      const scope = scopeOf(user);
      const orders = store.orders.list({
        ...q,
        labFiness: user.role === 'lab' ? scope : undefined,
        establishment: user.role === 'establishment' ? scope : undefined,
      });
      await audit(store, req, {
        action: 'order-list',
        patientId: q.patientId ?? null,
        detail: { results: orders.length, ...(q.status === undefined ? {} : { status: q.status }) },
      });
      return orders;
    },
  );

  app.get(
    '/api/orders/:id',
    {
      config: { roles: readers },
      schema: {
        summary: 'One molecular order with its result once it has come (audited)',
        tags: ['orders'],
        params: { type: 'object', required: ['id'], properties: { id: { type: 'integer' } } },
        response: { 200: orderSchema },
      },
    },
    async (req) => {
      const { id } = req.params as { id: number };
      const order = store.orders.get(id);
      if (order === null || !visible(req, order))
        throw new ActionError(404, 'ORDER_UNKNOWN', `no order ${id}`);
      await audit(store, req, { action: 'order-read', object: `order:${id}`, patientId: order.patientId });
      return order;
    },
  );
}
