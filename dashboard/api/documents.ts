// /api/patients/{id}/documents, /api/documents/{id} (metadata, original bytes, PDF) and the unfiled
// documents of the vigilance queue with their attachment by hand. Every read of a document is
// audited with its patient before the data leaves; an establishment or lab account sees only the
// documents it sent (another's is "not found", not "forbidden").
import fs from 'node:fs';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Engine } from '../../channels/engine.ts';
import type { DocumentRecord, DocumentSummary } from '../../store/documents.ts';
import { ActionError } from '../actions.ts';
import { audit } from '../audit-log.ts';
import { everyone, operators, scopeOf, staff } from '../auth.ts';

const scope = (req: FastifyRequest): string | undefined => (req.user ? scopeOf(req.user) : '-');

/** The document if this account may see it, its read audited; else 404. */
export async function readDocument(
  engine: Engine,
  req: FastifyRequest,
  id: number,
  action = 'document-read',
): Promise<DocumentRecord> {
  const doc = Number.isSafeInteger(id) ? engine.store.documents.get(id) : null;
  const own = scope(req);
  if (doc === null || (own !== undefined && doc.owner !== own))
    throw new ActionError(404, 'DOCUMENT_UNKNOWN', `no document ${id}`);
  await audit(engine.store, req, {
    action,
    object: `document:${doc.id}`,
    patientId: doc.patientId,
  });
  return doc;
}

/** A patient's documents (an account of an establishment or lab: its own only); the read audited. */
export async function listPatientDocuments(
  engine: Engine,
  req: FastifyRequest,
  patientId: number,
): Promise<DocumentSummary[]> {
  const resolved = Number.isSafeInteger(patientId) ? engine.store.patients.resolvePatient(patientId) : null;
  if (resolved === null) throw new ActionError(404, 'PATIENT_UNKNOWN', `no patient ${patientId}`);
  const items = engine.store.documents.listOfPatient(resolved, { owner: scope(req) ?? null });
  await audit(engine.store, req, {
    action: 'patient-documents-read',
    object: `patient:${resolved}`,
    patientId: resolved,
    detail: { documents: items.length },
  });
  return items;
}

/** Sends the bytes of a document (as received, or its PDF), after the audited check. */
export async function sendDocumentBytes(
  engine: Engine,
  req: FastifyRequest,
  reply: FastifyReply,
  id: number,
  which: 'original' | 'pdf',
): Promise<FastifyReply> {
  const doc = await readDocument(
    engine,
    req,
    id,
    which === 'pdf' ? 'document-pdf-read' : 'document-original-read',
  );
  const content = engine.store.documents.content(doc.id, which);
  if (content === null)
    throw new ActionError(
      404,
      'DOCUMENT_NO_CONTENT',
      `document ${doc.id} has no ${which === 'pdf' ? 'PDF' : 'content'}`,
    );
  const name =
    which === 'pdf'
      ? `document-${doc.id}.pdf`
      : (content.fileName ?? `document-${doc.id}`).replace(/[^\w.-]/g, '_');
  return (
    reply
      .type(content.mediaType)
      .header('content-disposition', `${which === 'pdf' ? 'inline' : 'attachment'}; filename="${name}"`)
      // Only our own pages may frame it (the PDF shown inline on the document page).
      .header('content-security-policy', "frame-ancestors 'self'")
      .header('x-frame-options', 'SAMEORIGIN')
      .send(fs.createReadStream(content.file))
  );
}

/** A reviewer files an unfiled document on a patient: the act audited with the patient. */
export async function attachDocument(
  engine: Engine,
  req: FastifyRequest,
  id: number,
  patientId: number,
  note?: string,
): Promise<DocumentRecord> {
  if (!Number.isSafeInteger(patientId)) throw new ActionError(400, 'PATIENT_UNKNOWN', 'give the patient id');
  try {
    await engine.store.write.documents.attach(id, patientId, {
      author: req.user!.login,
      ...(note ? { note } : {}),
    });
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'DOCUMENT_UNKNOWN' || code === 'PATIENT_UNKNOWN')
      throw new ActionError(404, code, (error as Error).message);
    if (code === 'DOCUMENT_ALREADY_FILED') throw new ActionError(409, code, (error as Error).message);
    throw error;
  }
  await audit(engine.store, req, {
    action: 'document-attach',
    object: `document:${id}`,
    patientId,
    detail: { note: note ?? null },
  });
  return engine.store.documents.get(id)!;
}

const idParams = { type: 'object', required: ['id'], properties: { id: { type: 'integer' } } } as const;

export function registerDocumentApi(app: FastifyInstance, engine: Engine): void {
  app.get(
    '/api/patients/:id/documents',
    {
      config: { roles: everyone },
      schema: {
        summary:
          "A patient's documents and results, newest first (audited; an establishment or lab account sees those it sent)",
        tags: ['documents'],
        params: idParams,
      },
    },
    async (req) => ({
      items: await listPatientDocuments(engine, req, (req.params as { id: number }).id),
      next: null,
    }),
  );

  app.get(
    '/api/documents/:id',
    {
      config: { roles: everyone },
      schema: {
        summary:
          'A document: metadata, every version with its provenance, findings and variants of the current version (audited)',
        tags: ['documents'],
        params: idParams,
      },
    },
    async (req) => readDocument(engine, req, (req.params as { id: number }).id),
  );

  for (const path of ['/api/documents/:id/original', '/api/documents/:id/content'])
    app.get(
      path,
      {
        config: { roles: everyone },
        schema: {
          summary: "The current version's bytes as received (audited)",
          tags: ['documents'],
          params: idParams,
        },
      },
      async (req, reply) =>
        sendDocumentBytes(engine, req, reply, (req.params as { id: number }).id, 'original'),
    );

  app.get(
    '/api/documents/:id/pdf',
    {
      config: { roles: everyone },
      schema: {
        summary: 'The PDF of the current version: the document itself or the copy it carries (audited)',
        tags: ['documents'],
        params: idParams,
      },
    },
    async (req, reply) => sendDocumentBytes(engine, req, reply, (req.params as { id: number }).id, 'pdf'),
  );

  app.get(
    '/api/vigilance/documents',
    {
      config: { roles: staff },
      schema: {
        summary: 'Unfiled documents: waiting for their patient, or with review items of close candidates',
        tags: ['vigilance'],
        querystring: { type: 'object', properties: { after: { type: 'string' } } },
      },
    },
    async (req) =>
      engine.store.documents.listWaiting({ after: (req.query as { after?: string }).after ?? null }),
  );

  app.post(
    '/api/documents/:id/attach',
    {
      config: { roles: operators },
      schema: {
        summary: 'File an unfiled document on a patient by hand (audited)',
        tags: ['vigilance'],
        params: idParams,
        body: {
          type: 'object',
          required: ['patientId'],
          properties: { patientId: { type: 'integer' }, note: { type: 'string', maxLength: 2000 } },
        },
      },
    },
    async (req) => {
      const { patientId, note } = req.body as { patientId: number; note?: string };
      return attachDocument(engine, req, (req.params as { id: number }).id, patientId, note);
    },
  );
}
