// A document's page (each view audited): the PDF inline, a CDA as readable text, findings and
// variants as tables, every version with its provenance; the patient page's list of documents; the
// unfiled documents of the vigilance queue and their attachment by hand.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Engine } from '../../channels/engine.ts';
import type { DocumentSummary, WaitingDocument } from '../../store/documents.ts';
import { attachDocument, readDocument } from '../api/documents.ts';
import { everyone, operators, staff } from '../auth.ts';
import { html, type Html } from '../html.ts';
import { csrfField, emptyState, sendPage } from './layout.ts';

/** The documents table of the patient page (the page's own read is the audited one). */
export function documentsTable(docs: readonly DocumentSummary[]): Html {
  if (docs.length === 0) return emptyState('no-documents', 'No document or result filed for this patient.');
  return html`<table id="documents">
    <thead>
      <tr>
        <th>Date</th>
        <th>Kind</th>
        <th>Title</th>
        <th>Status</th>
        <th>Format</th>
        <th>Lab (FINESS)</th>
        <th>Received as</th>
      </tr>
    </thead>
    <tbody>
      ${docs.map(
        (d) =>
          html`<tr data-document="${d.id}">
            <td>${d.date ?? ''}</td>
            <td>${d.kind}</td>
            <td><a href="/documents/${d.id}">${d.title ?? `document ${d.id}`}</a></td>
            <td>${d.status}${d.version > 1 ? ` (version ${d.version})` : ''}</td>
            <td>${d.format}</td>
            <td>${d.labFiness ?? ''}</td>
            <td>${d.source}</td>
          </tr>`,
      )}
    </tbody>
  </table>`;
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
                <table id="findings">
                  <thead>
                    <tr>
                      <th>Kind</th>
                      <th>Code</th>
                      <th>Meaning</th>
                    </tr>
                  </thead>
                  <tbody>
                    ${d.findings.map(
                      (f) =>
                        html`<tr>
                          <td>${f.kind}</td>
                          <td>${f.code}</td>
                          <td>${f.display ?? ''}</td>
                        </tr>`,
                    )}
                  </tbody>
                </table>`
            : ''
        }
        ${
          d.variants.length > 0
            ? html`<h2>Variants</h2>
                <table id="variants">
                  <thead>
                    <tr>
                      <th>Gene (HGNC)</th>
                      <th>Reference sequence</th>
                      <th>HGVS c.</th>
                      <th>HGVS p.</th>
                      <th>Classification</th>
                      <th>Interpretation</th>
                    </tr>
                  </thead>
                  <tbody>
                    ${d.variants.map(
                      (v) =>
                        html`<tr>
                          <td>${v.gene}</td>
                          <td>${v.referenceSequence ?? ''}</td>
                          <td>${v.dnaChange ?? ''}</td>
                          <td>${v.proteinChange ?? ''}</td>
                          <td>${v.classification?.display ?? v.classification?.code ?? ''}</td>
                          <td>${(v.interpretation ?? []).map((i) => i.display ?? i.code).join('; ')}</td>
                        </tr>`,
                    )}
                  </tbody>
                </table>`
            : ''
        }
        <h2>Versions</h2>
        <table id="versions">
          <thead>
            <tr>
              <th>Version</th>
              <th>Status</th>
              <th>Document id</th>
              <th>Received</th>
              <th>Channel</th>
              <th>File or mail</th>
              <th>Message</th>
            </tr>
          </thead>
          <tbody>
            ${d.versions.map(
              (v) =>
                html`<tr>
                  <td>${v.version}</td>
                  <td>${v.status}</td>
                  <td>${v.uniqueId ?? ''}</td>
                  <td>${v.filedAt}</td>
                  <td>${v.provenance.channel ?? ''}</td>
                  <td>${v.provenance.fileName ?? v.provenance.mail ?? ''}</td>
                  <td>
                    ${v.provenance.messageId === null ? '' : html`<a href="/messages/${v.provenance.messageId}">${v.provenance.messageId}</a>`}
                  </td>
                </tr>`,
            )}
          </tbody>
        </table>`,
    );
  });

  app.post('/vigilance/documents/:id/attach', { config: { roles: operators } }, async (req, reply) => {
    const body = (req.body ?? {}) as { patientId?: string };
    await attachDocument(engine, req, Number((req.params as { id: string }).id), Number(body.patientId));
    return reply.redirect('/vigilance', 303);
  });
}
