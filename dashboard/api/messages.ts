// /api/messages: search (scoped to the account's FINESS for establishments and labs), a message's
// every stage and delivery (an audited read: content carries patient data), replays.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Engine } from '../../channels/engine.ts';
import type { MessageFilter } from '../../store/message-search.ts';
import type { MessageStatus } from '../../store/journal.ts';
import { ActionError, replayDelivery, replayMessage, visibleMessage } from '../actions.ts';
import { audit } from '../audit-log.ts';
import { everyone, operators, scopeOf } from '../auth.ts';
import { contentText } from '../content-view.ts';
import { searchMessages } from '../../channels/message-index.ts';

export const messageStatuses: MessageStatus[] = [
  'RECEIVED',
  'FILTERED',
  'TRANSFORMED',
  'SENT',
  'ERROR',
  'DUPLICATE',
  'REJECTED',
  'QUARANTINED',
];

export const messageQuerySchema = {
  type: 'object',
  properties: {
    channel: { type: 'string' },
    status: { type: 'string', enum: ['', ...messageStatuses] },
    from: { type: 'string', description: 'ISO date-time or ms since epoch' },
    to: { type: 'string', description: 'ISO date-time or ms since epoch' },
    text: {
      type: 'string',
      description:
        'words of the file name, sender, owner FINESS, MSH-10, IPP or INS (PID-3), message type or error code; the last word may be a prefix',
    },
    patient: {
      type: 'integer',
      minimum: 1,
      description:
        'messages the identity decisions or the filed documents link to this patient (or to patients merged into it)',
    },
    after: { type: 'string', description: 'the "next" cursor of the previous page' },
    limit: { type: 'integer', minimum: 1, maximum: 500 },
  },
} as const;

export interface MessageQuery {
  channel?: string;
  status?: string;
  from?: string;
  to?: string;
  text?: string;
  patient?: number | string;
  after?: string;
  limit?: number | string;
}

function parseTime(value: string | undefined, name: string): number | undefined {
  if (!value) return undefined;
  const t = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  if (Number.isNaN(t))
    throw new ActionError(
      400,
      'QUERY_INVALID',
      `${name}="${value}" is not a date: use 2025-03-01T08:00 or ms since epoch`,
    );
  return t;
}

/** The search of a request, with the account's scope forced in. */
export function messageFilter(req: FastifyRequest, q: MessageQuery): MessageFilter {
  return {
    channel: q.channel || undefined,
    status: (q.status || undefined) as MessageStatus | undefined,
    from: parseTime(q.from, 'from'),
    to: parseTime(q.to, 'to'),
    text: q.text || undefined,
    owner: scopeOf(req.user!),
    patient: positive(q.patient, 'patient'),
  };
}

/** A page's size or a patient id from a query string (the pages' forms send strings). */
export function positive(value: number | string | undefined, name: string): number | undefined {
  if (value === undefined || value === '') return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1)
    throw new ActionError(400, 'QUERY_INVALID', `${name}="${value}" is not a positive whole number`);
  return n;
}

export function parseCursor(after: string | undefined): number | null {
  if (!after) return null;
  const n = Number(after);
  if (!Number.isSafeInteger(n))
    throw new ActionError(400, 'CURSOR_INVALID', 'the page cursor is not one this search returned');
  return n;
}

/**
 * One page of the search a request asks for, in the account's scope. Which messages concern a
 * patient is patient data: that search is audited like a read of the patient.
 */
export async function findMessages(engine: Engine, req: FastifyRequest, q: MessageQuery) {
  const filter = messageFilter(req, q);
  const page = searchMessages(engine.store, filter, {
    limit: positive(q.limit, 'limit'),
    after: parseCursor(q.after),
  });
  if (filter.patient !== undefined)
    await audit(engine.store, req, {
      action: 'patient-messages',
      patientId: filter.patient,
      detail: { results: page.items.length },
    });
  return page;
}

/** A message with its stages and deliveries, after checking scope; writes the audit row of the read. */
export async function readMessage(engine: Engine, req: FastifyRequest, id: number) {
  const message = visibleMessage(engine, req, id);
  const { journal, mailTracking } = engine.store;
  const deliveries = journal.deliveries(id);
  // Mail deliveries carry their Message-ID and the DSN/MDN reports about it.
  const mail = mailTracking.mailOf(deliveries);
  await audit(engine.store, req, {
    action: 'message-read',
    object: `message:${id}`,
    establishment: message.owner,
  });
  return {
    message,
    contents: journal.contents(id).map((c) => {
      const text = contentText(c.content);
      return {
        stage: c.stage,
        destination: c.destination,
        contentType: c.contentType,
        size: c.content.length,
        ...(text === null ? { base64: c.content.toString('base64') } : { text }),
      };
    }),
    deliveries: deliveries.map((d) => {
      const sent = mail.get(d.id);
      return sent ? { ...d, mail: sent } : d;
    }),
  };
}

const idParam = { type: 'object', required: ['id'], properties: { id: { type: 'integer' } } } as const;

export function registerMessageApi(app: FastifyInstance, engine: Engine): void {
  app.get(
    '/api/messages',
    {
      config: { roles: everyone },
      schema: {
        summary: 'Search messages, newest first, in keyset pages',
        tags: ['messages'],
        querystring: messageQuerySchema,
      },
    },
    async (req) => {
      const page = await findMessages(engine, req, req.query as MessageQuery);
      return { items: page.items, next: page.next === null ? null : String(page.next) };
    },
  );

  app.get(
    '/api/messages/:id',
    {
      config: { roles: everyone },
      schema: {
        summary: "A message's every stage, deliveries and errors (audited)",
        tags: ['messages'],
        params: idParam,
      },
    },
    async (req) => readMessage(engine, req, (req.params as { id: number }).id),
  );

  app.post(
    '/api/messages/:id/replay',
    {
      config: { roles: operators },
      schema: { summary: 'Replay a message as a new one (audited)', tags: ['messages'], params: idParam },
    },
    async (req) => ({ messageId: await replayMessage(engine, req, (req.params as { id: number }).id) }),
  );

  app.post(
    '/api/messages/:id/deliveries/:deliveryId/replay',
    {
      config: { roles: operators },
      schema: {
        summary: 'Put one delivery back in its queue with fresh attempts (audited)',
        tags: ['messages'],
        params: {
          type: 'object',
          required: ['id', 'deliveryId'],
          properties: { id: { type: 'integer' }, deliveryId: { type: 'integer' } },
        },
      },
    },
    async (req, reply) => {
      const { id, deliveryId } = req.params as { id: number; deliveryId: number };
      await replayDelivery(engine, req, id, deliveryId);
      return reply.code(202).send({ deliveryId, status: 'QUEUED' });
    },
  );
}
