// RCP pages: sessions by date and committee, a session with its forms, and a form or a PPS with its
// versions, the CDA and PDF of each validated version, and the delivery status of each recipient
// (an audited read, as over the API).
import type { FastifyInstance } from 'fastify';
import type { Engine } from '../../channels/engine.ts';
import type { DocumentKind } from '../../store/rcp.ts';
import { ActionError } from '../actions.ts';
import { readDocument } from '../api/rcp.ts';
import { audit } from '../audit-log.ts';
import { staff } from '../auth.ts';
import { formatTime, html, query, table } from '../html.ts';
import { sendPage } from './layout.ts';

const DAY = /^\d{4}-\d{2}-\d{2}$/;

export function registerRcpPages(app: FastifyInstance, engine: Engine): void {
  app.get('/rcp', { config: { roles: staff } }, async (req, reply) => {
    const q = req.query as { from?: string; to?: string; committee?: string };
    const year = new Date().getUTCFullYear();
    const from = q.from && DAY.test(q.from) ? q.from : `${year}-01-01`;
    const to = q.to && DAY.test(q.to) ? q.to : `${year + 1}-01-01`;
    const committee = q.committee ?? '';
    const meetings = engine.store.rcp.meetings(from, to, committee);
    return sendPage(
      req,
      reply,
      'RCP sessions',
      html`<form method="get" action="/rcp" class="card">
          <label>From <input type="date" name="from" value="${from}" /></label>
          <label>To <input type="date" name="to" value="${to}" /></label>
          <label>Committee <input type="text" name="committee" value="${committee}" /></label>
          <button type="submit">Show</button>
        </form>
        ${
          meetings.length === 0
            ? html`<p class="empty">
                No RCP session in this period${committee ? html` for ${committee}` : ''}.
              </p>`
            : table(
                [
                  { header: 'Date', cell: (m) => html`<a href="/rcp/meetings/${m.id}">${m.date}</a>` },
                  {
                    header: 'Committee',
                    cell: (m) =>
                      html`<a href="/rcp${query({ from, to, committee: m.committee })}">${m.committee}</a>`,
                  },
                  { header: 'Organ', cell: (m) => m.organ },
                  { header: 'Site', cell: (m) => m.data.site.name },
                  {
                    header: 'Organiser',
                    cell: (m) => `${m.data.organiser.family} ${m.data.organiser.given ?? ''}`,
                  },
                  { header: 'Forms', cell: (m) => engine.store.rcp.formsOfMeeting(m.id).length },
                ],
                meetings,
                { id: 'meetings' },
              )
        }`,
    );
  });

  app.get('/rcp/meetings/:id', { config: { roles: staff } }, async (req, reply) => {
    const id = Number((req.params as { id: string }).id);
    const m = Number.isSafeInteger(id) ? engine.store.rcp.meeting(id) : undefined;
    if (!m) throw new ActionError(404, 'RCP_UNKNOWN', `no meeting ${id}`);
    await audit(engine.store, req, { action: 'rcp-meeting-read', object: `rcp-meeting:${id}` });
    const forms = engine.store.rcp.formsOfMeeting(id);
    return sendPage(
      req,
      reply,
      `RCP ${m.committee}, ${m.date}`,
      html`<p class="card">
          Site: ${m.data.site.name} · Organiser: ${m.data.organiser.family} ${m.data.organiser.given ?? ''} ·
          Participants:
          ${m.data.participants.map((p) => `${p.family}${p.rpps ? ` (RPPS ${p.rpps})` : ''}`).join(', ')}
        </p>
        ${table(
          [
            { header: 'Form', cell: (f) => html`<a href="/rcp/forms/${f.id}">${f.setId}</a>` },
            { header: 'Patient', cell: (f) => html`<a href="/patients/${f.patientId}">${f.patientId}</a>` },
            { header: 'Version', cell: (f) => f.version },
            { header: 'Status', cell: (f) => f.status },
          ],
          forms,
          { id: 'forms' },
        )}`,
    );
  });

  const documentPage = (kind: DocumentKind, base: string, apiBase: string, label: string) =>
    app.get(`${base}/:id`, { config: { roles: staff } }, async (req, reply) => {
      const id = Number((req.params as { id: string }).id);
      if (!Number.isSafeInteger(id)) throw new ActionError(404, 'RCP_UNKNOWN', `no ${kind} ${id}`);
      const d = await readDocument(engine, req, kind, id);
      const content = d.content as {
        question?: string;
        clinicalSummary?: string;
        proposal?: { text?: string };
      };
      return sendPage(
        req,
        reply,
        `${label} ${d.documentId}`,
        html`<p class="card">
            Patient <a href="/patients/${d.patientId}">${d.patientId}</a> · status
            <b id="status">${d.status}</b>
            ${d.meetingId === null ? '' : html` · <a href="/rcp/meetings/${d.meetingId}">RCP session</a>`}
            ${
              d.outboxId === null
                ? ''
                : html` · <a href="${apiBase}/${d.id}/cda">CDA</a> ·
                    <a href="${apiBase}/${d.id}/pdf" id="pdf">PDF</a>`
            }
          </p>
          ${
            kind === 'frcp'
              ? html`<div class="card">
                  <p><b>Question:</b> ${content.question}</p>
                  <p><b>Summary:</b> ${content.clinicalSummary}</p>
                  <p><b>Proposal:</b> ${content.proposal?.text}</p>
                </div>`
              : ''
          }
          <h2>Versions</h2>
          ${table(
            [
              { header: 'Version', cell: (v) => html`<a href="${base}/${v.id}">${v.version}</a>` },
              { header: 'Document id', cell: (v) => v.documentId },
              { header: 'Status', cell: (v) => v.status },
              { header: 'Validated', cell: (v) => `${v.validatedAt ?? ''} ${v.validatedBy ?? ''}` },
              {
                header: 'Documents',
                cell: (v) =>
                  v.status === 'draft'
                    ? ''
                    : html`<a href="${apiBase}/${v.id}/cda">CDA</a>
                        <a href="${apiBase}/${v.id}/pdf" class="pdf">PDF</a>`,
              },
            ],
            d.versions,
            { id: 'versions' },
          )}
          <h2>Recipients</h2>
          <p class="muted">Delivery: ${d.delivery.state}</p>
          ${table(
            [
              {
                header: 'Recipient',
                cell: (r) => html`<a href="/messages/${r.messageId}">${r.recipient}</a>`,
              },
              { header: 'Way', cell: (r) => r.channel },
              {
                header: 'Status',
                cell: (r) =>
                  html`${r.status}
                  ${
                    r.parts.length > 1
                      ? html`<span class="muted parts"
                          >(${r.parts.map((p) => `${p.destination} ${p.status}`).join(', ')})</span
                        >`
                      : ''
                  }`,
                class: (r) => `status-${r.status ?? ''}`,
              },
              { header: 'Attempts', cell: (r) => r.attempts },
              { header: 'Sent', cell: (r) => (r.sentAt ? formatTime(r.sentAt) : '') },
              { header: 'Last error', cell: (r) => r.lastError, class: () => 'error' },
            ],
            d.delivery.recipients,
            { id: 'recipients', data: (r) => ({ recipient: r.recipient }) },
          )}
          ${
            d.delivery.unreachable.length
              ? html`<p class="error">Unreachable: ${d.delivery.unreachable.join('; ')}</p>`
              : ''
          }`,
      );
    });
  documentPage('frcp', '/rcp/forms', '/api/rcp/forms', 'RCP form');
  documentPage('pps', '/pps', '/api/pps', 'PPS');
}
