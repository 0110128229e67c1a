// /api/rcp and /api/pps (CONTRACT.md): RCP sessions, forms and care programmes — create, edit (a
// validated document edited becomes its next version), validate (which sends it: the store writes the
// documents-out message in the same transaction), import of forms produced elsewhere, patients'
// oppositions to Mon espace santé, and each document with its versions, its CDA, its PDF and the
// delivery status of each recipient. Every change is audited by the store; every read of a document
// is a patient read, audited here.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { documentPdf } from '../../channels/document-pdf.ts';
import type { Engine } from '../../channels/engine.ts';
import { formInput, importForms, meetingInput, ppsInput } from '../../channels/rcp-input.ts';
import type { Actor, DocumentKind, DocumentRecord } from '../../store/rcp.ts';
import { ActionError } from '../actions.ts';
import { audit } from '../audit-log.ts';
import { operators, staff } from '../auth.ts';

type Json = Record<string, unknown>;

const actorOf = (req: FastifyRequest): Actor => ({
  login: req.user?.login ?? 'anonymous',
  role: req.user?.role ?? null,
  source: req.ip,
});

const idParams = { type: 'object', required: ['id'], properties: { id: { type: 'integer' } } } as const;
const anyBody = { type: 'object', additionalProperties: true } as const;

/** One file or mail of a recipient's message (a pickup writes the document and its PDF apart). */
export interface PartStatus {
  destination: string;
  status: string;
  attempts: number;
  lastError: string | null;
  sentAt: number | null;
}

export interface RecipientStatus {
  recipient: string;
  channel: string;
  messageId: number;
  /** ERROR (or QUARANTINED) when a part failed, QUEUED while one is on its way, else SENT. */
  status: string | null;
  attempts: number;
  lastError: string | null;
  /** When its last part was sent, once every part is. */
  sentAt: number | null;
  parts: PartStatus[];
}

const FAILED = new Set(['ERROR', 'QUARANTINED']);
const SETTLED_OK = new Set(['SENT', 'FILTERED']);

/** A recipient's status from the deliveries of its message: the worst part decides. */
function recipientStatus(
  parts: PartStatus[],
): Pick<RecipientStatus, 'status' | 'attempts' | 'lastError' | 'sentAt'> {
  const failed = parts.find((p) => FAILED.has(p.status));
  const open = parts.find((p) => !FAILED.has(p.status) && !SETTLED_OK.has(p.status));
  const done = parts.length > 0 && failed === undefined && open === undefined;
  return {
    status: failed?.status ?? open?.status ?? (done ? 'SENT' : null),
    attempts: Math.max(0, ...parts.map((p) => p.attempts)),
    lastError: failed?.lastError ?? open?.lastError ?? null,
    sentAt: done ? Math.max(0, ...parts.map((p) => p.sentAt ?? 0)) || null : null,
  };
}

/**
 * Where a validated document is on its way: still in the outbox, in documents-out, or handed to
 * its recipients — each with the status of its own delivery.
 */
export function deliveryOf(engine: Engine, doc: DocumentRecord) {
  const { outbox, journal } = engine.store;
  if (doc.outboxId === null) return { state: 'not validated', recipients: [], unreachable: [] };
  const messageId = outbox.row(doc.outboxId)?.messageId ?? null;
  if (messageId === null) return { state: 'in the outbox', recipients: [], unreachable: [] };
  const message = journal.message(messageId);
  const routed = journal.contents(messageId).find((c) => c.stage === 'response');
  if (!routed)
    return {
      state: message?.status ?? 'pruned',
      messageId,
      error: message?.error,
      recipients: [],
      unreachable: [],
    };
  const { recipients, unreachable } = JSON.parse(routed.content.toString()) as {
    recipients: Array<{ recipient: string; channel: string; messageId: number }>;
    unreachable: string[];
  };
  return {
    state: 'routed',
    messageId,
    unreachable,
    recipients: recipients.map((r): RecipientStatus => {
      const parts = journal.deliveries(r.messageId).map((d) => ({
        destination: d.destination,
        status: d.status,
        attempts: d.attempts,
        lastError: d.lastError,
        sentAt: d.sentAt,
      }));
      return { ...r, ...recipientStatus(parts), parts };
    }),
  };
}

/** The CDA written for a validated version (the documents-out message's transformed content). */
export function cdaOf(engine: Engine, doc: DocumentRecord): Buffer | null {
  const messageId = doc.outboxId === null ? null : (engine.store.outbox.row(doc.outboxId)?.messageId ?? null);
  return messageId === null
    ? null
    : (engine.store.journal.content(messageId, 'transformed')?.content ?? null);
}

/** A document, its versions and its delivery (an audited read of the patient's data). */
export async function readDocument(engine: Engine, req: FastifyRequest, kind: DocumentKind, id: number) {
  const doc = engine.store.rcp.document(kind, id);
  if (!doc) throw new ActionError(404, 'RCP_UNKNOWN', `no ${kind} ${id}`);
  await audit(engine.store, req, {
    action: `${kind}-read`,
    object: `${kind}:${id}`,
    patientId: doc.patientId,
  });
  return {
    ...doc,
    documentId: `${doc.setId}-${doc.version}`,
    versions: engine.store.rcp.versions(kind, id).map((v) => ({
      id: v.id,
      version: v.version,
      status: v.status,
      documentId: `${v.setId}-${v.version}`,
      validatedAt: v.validatedAt,
      validatedBy: v.validatedBy,
    })),
    delivery: deliveryOf(engine, doc),
  };
}

function registerDocumentRoutes(
  app: FastifyInstance,
  engine: Engine,
  kind: DocumentKind,
  base: string,
): void {
  const { directory } = engine.config;
  const input = (body: Json) => (kind === 'frcp' ? formInput(body, directory) : ppsInput(body, directory));
  const tags = ['rcp'];
  const name = kind === 'frcp' ? 'RCP form' : 'PPS';
  app.post(
    base,
    { config: { roles: operators }, schema: { summary: `Create a draft ${name}`, tags, body: anyBody } },
    async (req) => engine.store.write.rcp.create(kind, input(req.body as Json), actorOf(req), Date.now()),
  );
  app.put(
    `${base}/:id`,
    {
      config: { roles: operators },
      schema: {
        summary: `Edit a ${name}: a draft in place; a validated one becomes its next version (returned)`,
        tags,
        params: idParams,
        body: anyBody,
      },
    },
    async (req) =>
      engine.store.write.rcp.update(
        kind,
        (req.params as { id: number }).id,
        input(req.body as Json),
        actorOf(req),
        Date.now(),
      ),
  );
  app.post(
    `${base}/:id/validate`,
    {
      config: { roles: operators },
      schema: { summary: `Validate a draft ${name}: it is sent to its recipients`, tags, params: idParams },
    },
    async (req) =>
      engine.store.write.rcp.validate(kind, (req.params as { id: number }).id, actorOf(req), Date.now()),
  );
  app.get(
    `${base}/:id`,
    {
      config: { roles: staff },
      schema: {
        summary: `A ${name}: content, versions, document ids, delivery status per recipient (audited)`,
        tags,
        params: idParams,
      },
    },
    async (req) => readDocument(engine, req, kind, (req.params as { id: number }).id),
  );
  app.get(
    `${base}/:id/cda`,
    {
      config: { roles: staff },
      schema: { summary: `The CDA R2 of a validated ${name} (audited)`, tags, params: idParams },
    },
    async (req, reply) => {
      const id = (req.params as { id: number }).id;
      const doc = await readDocument(engine, req, kind, id);
      const cda = cdaOf(engine, doc);
      if (!cda) throw new ActionError(404, 'RCP_UNKNOWN', `no CDA written yet for ${kind} ${id}`);
      return reply.type('application/xml; charset=utf-8').send(cda);
    },
  );
  app.get(
    `${base}/:id/pdf`,
    {
      config: { roles: staff },
      schema: {
        summary: `The PDF of a validated ${name}, as its recipients get it (audited)`,
        tags,
        params: idParams,
      },
    },
    async (req, reply) => {
      const id = (req.params as { id: number }).id;
      const doc = engine.store.rcp.document(kind, id);
      if (!doc) throw new ActionError(404, 'RCP_UNKNOWN', `no ${kind} ${id}`);
      await audit(engine.store, req, {
        action: `${kind}-pdf-read`,
        object: `${kind}:${id}`,
        patientId: doc.patientId,
      });
      const cda = cdaOf(engine, doc);
      if (!cda) throw new ActionError(404, 'RCP_UNKNOWN', `no CDA written yet for ${kind} ${id}`);
      return reply
        .type('application/pdf')
        .header(
          'content-disposition',
          `inline; filename="${`${doc.setId}-${doc.version}`.replace(/[^A-Za-z0-9._-]/g, '_')}.pdf"`,
        )
        .send(documentPdf(cda));
    },
  );
}

export function registerRcpApi(app: FastifyInstance, engine: Engine): void {
  const { directory } = engine.config;
  app.post(
    '/api/rcp/meetings',
    {
      config: { roles: operators },
      schema: {
        summary:
          'Create an RCP session: { date, committee, organ, site (FINESS), organiserRpps, participants }',
        tags: ['rcp'],
        body: { ...anyBody, required: ['date', 'committee', 'site'] },
      },
    },
    async (req) => {
      const r = await engine.store.write.rcp.createMeeting(
        meetingInput(req.body as Json, directory),
        actorOf(req),
        Date.now(),
      );
      return { id: r.id, status: 'created' };
    },
  );
  app.put(
    '/api/rcp/meetings/:id',
    {
      config: { roles: operators },
      schema: { summary: 'Edit an RCP session', tags: ['rcp'], params: idParams, body: anyBody },
    },
    async (req) =>
      engine.store.write.rcp.updateMeeting(
        (req.params as { id: number }).id,
        meetingInput(req.body as Json, directory),
        actorOf(req),
        Date.now(),
      ),
  );
  app.get(
    '/api/rcp/meetings',
    {
      config: { roles: staff },
      schema: {
        summary: 'RCP sessions between two dates (YYYY-MM-DD, `to` excluded), newest first, of one committee',
        tags: ['rcp'],
        querystring: {
          type: 'object',
          properties: {
            from: { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}$' },
            to: { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}$' },
            committee: { type: 'string' },
          },
        },
      },
    },
    async (req) => {
      const q = req.query as { from?: string; to?: string; committee?: string };
      return {
        items: engine.store.rcp.meetings(q.from ?? '0000-00-00', q.to ?? '9999-99-99', q.committee ?? ''),
      };
    },
  );
  app.get(
    '/api/rcp/meetings/:id',
    {
      config: { roles: staff },
      schema: { summary: 'An RCP session and its forms', tags: ['rcp'], params: idParams },
    },
    async (req) => {
      const id = (req.params as { id: number }).id;
      const meeting = engine.store.rcp.meeting(id);
      if (!meeting) throw new ActionError(404, 'RCP_UNKNOWN', `no meeting ${id}`);
      const forms = engine.store.rcp.formsOfMeeting(id);
      await audit(engine.store, req, { action: 'rcp-meeting-read', object: `rcp-meeting:${id}` });
      return {
        ...meeting,
        forms: forms.map((f) => ({ id: f.id, patientId: f.patientId, version: f.version, status: f.status })),
      };
    },
  );
  app.post(
    '/api/rcp/forms/import',
    {
      config: { roles: operators },
      schema: {
        summary:
          'Import forms produced elsewhere: a JSON array of forms (as POST /api/rcp/forms, with externalId; the patient by patientId or { finess, ipp }, the session by meetingId or whole as meeting), each validated unless `validate: false`',
        tags: ['rcp'],
        body: { type: 'array', items: anyBody },
      },
    },
    async (req) => ({ items: await importForms(engine.store, req.body as Json[], directory, actorOf(req)) }),
  );
  app.put(
    '/api/patients/:id/oppositions/mes',
    {
      config: { roles: operators },
      schema: {
        summary:
          'Record (or withdraw) a patient’s opposition to sending documents to Mon espace santé (audited)',
        tags: ['rcp'],
        params: idParams,
        body: { type: 'object', required: ['opposed'], properties: { opposed: { type: 'boolean' } } },
      },
    },
    async (req) => {
      const id = (req.params as { id: number }).id;
      const { opposed } = req.body as { opposed: boolean };
      await engine.store.write.rcp.setOpposition(id, 'mes', opposed, actorOf(req), Date.now());
      return { patientId: id, mes: opposed ? 'opposed' : 'allowed' };
    },
  );
  registerDocumentRoutes(app, engine, 'frcp', '/api/rcp/forms');
  registerDocumentRoutes(app, engine, 'pps', '/api/pps');
}
