// A document's page (each view audited): the PDF inline, a CDA as readable text, findings and
// variants as tables, every version with its provenance; the patient page's list of documents; the
// unfiled documents of the vigilance queue and their attachment by hand.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Engine } from '../../channels/engine.ts';
import type { DocumentSummary, WaitingDocument } from '../../store/documents.ts';
import { attachDocument, readDocument } from '../api/documents.ts';
import { everyone, operators, staff } from '../auth.ts';
import { html, table, type Html } from '../html.ts';
import { csrfField, emptyState, sendPage } from './layout.ts';

/** The documents table of the patient page (the page's own read is the audited one). */
export function documentsTable(docs: readonly DocumentSummary[]): Html {
  if (docs.length === 0) return emptyState('no-documents', 'No document or result filed for this patient.');
  return table(
    [
      { header: 'Date', cell: (d) => d.date ?? '' },
      { header: 'Kind', cell: (d) => d.kind },
      {
        header: 'Title',
        cell: (d) => html`<a href="/documents/${d.id}">${d.title ?? `document ${d.id}`}</a>`,
      },
      { header: 'Status', cell: (d) => `${d.status}${d.version > 1 ? ` (version ${d.version})` : ''}` },
      { header: 'Format', cell: (d) => d.format },
      { header: 'Lab (FINESS)', cell: (d) => d.labFiness ?? '' },
      { header: 'Received as', cell: (d) => d.source },
    ],
    docs,
    { id: 'documents', data: (d) => ({ document: d.id }) },
  );
}

const traitsSent = (p: WaitingDocument['patient']): Html =>
  html`${p.birthName ?? '?'}, ${p.firstGivenName ?? '?'} · ${p.birthDate ?? '?'} · ${p.sex ?? '?'}
  ${p.identifiers.map((i) => html` · FINESS ${i.finess} IPP ${i.ipp}`)}${p.ins ? html` · INS ${p.ins.matricule}` : ''}`;

/** The unfiled documents section of the vigilance page. */
export function unfiledDocuments(req: FastifyRequest, items: readonly WaitingDocument[]): Html {
  if (items.length === 0)
    return emptyState('no-unfiled-documents', 'No unfiled document: every report is on its patient.');
  const canAct = operators.includes(req.user!.role);
  const attach = (docId: number, patientId: number | null, label: string): Html =>
    html`<form class="inline" method="post" action="/vigilance/documents/${docId}/attach">
      ${csrfField(req.user)}
      ${
        patientId === null
          ? html`<label>Patient id <input name="patientId" inputmode="numeric" required /></label>`
          : html`<input type="hidden" name="patientId" value="${patientId}" />`
      }
      <button type="submit">${label}</button>
    </form>`;
  return html`${items.map(
    (d) =>
      html`<div class="card unfiled" id="unfiled-${d.id}">
        <p>
          <strong>Document ${d.id}</strong> · ${d.kind} · ${d.title ?? ''} · ${d.date ?? ''} · ${d.match}
          (${d.rule}) · sent by ${d.owner ?? 'unknown'}
        </p>
        <p>The report names: ${traitsSent(d.patient)}</p>
        ${d.reviews.map(
          (r) =>
            html`<div class="candidate">
              Close to <a href="/patients/${r.candidateId}">patient ${r.candidateId}</a> · score
              ${r.score.toFixed(2)} · ${r.reasons.join(', ')}
              ${canAct ? attach(d.id, r.candidateId, `File on patient ${r.candidateId}`) : ''}
            </div>`,
        )}
        ${canAct ? attach(d.id, null, 'File on this patient') : ''}
      </div>`,
  )}`;
}

export function registerDocumentPages(app: FastifyInstance, engine: Engine): void {
  app.get('/documents/:id', { config: { roles: everyone } }, async (req, reply) => {
    const d = await readDocument(engine, req, Number((req.params as { id: string }).id));
    // A deletion marks the document; what it said is the newest version before it.
    const current = d.versions.filter((v) => v.status !== 'deletion').at(-1)!;
    const isStaff = staff.includes(req.user!.role);
    return sendPage(
      req,
      reply,
      `${d.title ?? 'Document'} (${d.kind})`,
      html`<table id="document">
          <tbody>
            <tr>
              <th>Status</th>
              <td id="document-status">${d.status} · version ${d.version} of ${d.versions.length}</td>
            </tr>
            <tr>
              <th>Date</th>
              <td>${d.date ?? ''}</td>
            </tr>
            <tr>
              <th>Author (RPPS)</th>
              <td>${current.author.name ?? ''} ${current.author.rpps ?? ''}</td>
            </tr>
            <tr>
              <th>Lab</th>
              <td>${current.lab.name ?? ''} ${current.lab.finess ?? ''}</td>
            </tr>
            <tr>
              <th>Patient</th>
              <td>
                ${
                  d.patientId === null
                    ? html`not filed yet (${d.match}, ${d.matchRule})`
                    : isStaff
                      ? html`<a href="/patients/${d.patientId}">patient ${d.patientId}</a> (${d.matchRule})`
                      : html`patient ${d.patientId}`
                }
              </td>
            </tr>
            <tr>
              <th>Order</th>
              <td>${current.orderNumber ?? ''}</td>
            </tr>
          </tbody>
        </table>
        <p><a id="original" href="/api/documents/${d.id}/original">Original as received</a></p>
        ${d.hasPdf ? html`<iframe id="pdf" src="/api/documents/${d.id}/pdf" title="PDF" width="100%" height="600"></iframe>` : ''}
        ${
          current.conclusion
            ? html`<h2>Conclusion</h2>
                <p id="conclusion">${current.conclusion}</p>`
            : ''
        }
        ${
          current.text
            ? html`<h2>Report</h2>
                <pre id="narrative">${current.text}</pre>`
            : ''
        }
        ${
          d.findings.length > 0
            ? html`<h2>Findings</h2>
                ${table(
                  [
                    { header: 'Kind', cell: (f) => f.kind },
                    { header: 'Code', cell: (f) => f.code },
                    { header: 'Meaning', cell: (f) => f.display ?? '' },
                  ],
                  d.findings,
                  { id: 'findings' },
                )}`
            : ''
        }
        ${
          d.variants.length > 0
            ? html`<h2>Variants</h2>
                ${table(
                  [
                    { header: 'Gene (HGNC)', cell: (v) => v.gene },
                    { header: 'Reference sequence', cell: (v) => v.referenceSequence ?? '' },
                    { header: 'HGVS c.', cell: (v) => v.dnaChange ?? '' },
                    { header: 'HGVS p.', cell: (v) => v.proteinChange ?? '' },
                    {
                      header: 'Classification',
                      cell: (v) => v.classification?.display ?? v.classification?.code ?? '',
                    },
                    {
                      header: 'Interpretation',
                      cell: (v) => (v.interpretation ?? []).map((i) => i.display ?? i.code).join('; '),
                    },
                  ],
                  d.variants,
                  { id: 'variants' },
                )}`
            : ''
        }
        <h2>Versions</h2>
        ${table(
          [
            { header: 'Version', cell: (v) => v.version },
            { header: 'Status', cell: (v) => v.status },
            { header: 'Document id', cell: (v) => v.uniqueId ?? '' },
            { header: 'Received', cell: (v) => v.filedAt },
            { header: 'Channel', cell: (v) => v.provenance.channel ?? '' },
            { header: 'File or mail', cell: (v) => v.provenance.fileName ?? v.provenance.mail ?? '' },
            {
              header: 'Message',
              cell: (v) =>
                v.provenance.messageId === null
                  ? ''
                  : html`<a href="/messages/${v.provenance.messageId}">${v.provenance.messageId}</a>`,
            },
          ],
          d.versions,
          { id: 'versions' },
        )}`,
    );
  });

  app.post('/vigilance/documents/:id/attach', { config: { roles: operators } }, async (req, reply) => {
    const body = (req.body ?? {}) as { patientId?: string };
    await attachDocument(engine, req, Number((req.params as { id: string }).id), Number(body.patientId));
    return reply.redirect('/vigilance', 303);
  });
}
