// The audit trail search (admins) with a check of the hash chain.
import type { FastifyInstance } from 'fastify';
import type { Engine } from '../../channels/engine.ts';
import { searchAudit, type AuditQuery } from '../api/audit.ts';
import { admins } from '../auth.ts';
import { formatTime, html, query } from '../html.ts';
import { sendPage } from './layout.ts';

export function registerAuditPage(app: FastifyInstance, engine: Engine): void {
  app.get('/audit', { config: { roles: admins } }, async (req, reply) => {
    const q = req.query as AuditQuery & { verify?: string };
    const page = searchAudit(engine, req);
    const v = q.verify ? engine.store.audit.verify() : null;
    const field = (name: keyof AuditQuery, label: string, type = 'text') =>
      html`<label>${label} <input type="${type}" name="${name}" value="${q[name] ?? ''}" /></label> `;
    return sendPage(
      req,
      reply,
      'Audit trail',
      html`<form method="get" action="/audit" class="card">
          ${field('actor', 'Actor')}${field('patient', 'Patient id')}
          ${field('action', 'Action')}${field('from', 'From', 'date')}${field('to', 'To', 'date')}
          <button type="submit">Search</button>
          <button type="submit" name="verify" value="1">Verify the chain</button>
        </form>
        ${v ? html`<p id="verify" class="${v.ok ? '' : 'error'}">${v.ok ? `Chain intact: ${v.rows} rows, head ${v.head}` : `Chain broken at row ${v.firstBadId}: ${v.reason}`}</p>` : ''}
        <table id="audit">
          <thead>
            <tr>
              <th>#</th>
              <th>When</th>
              <th>Actor</th>
              <th>Role</th>
              <th>From</th>
              <th>Establishment</th>
              <th>Patient</th>
              <th>Action</th>
              <th>Object</th>
              <th>Outcome</th>
            </tr>
          </thead>
          <tbody>
            ${page.items.map(
              (r) =>
                html`<tr>
                  <td>${r.id}</td>
                  <td>${formatTime(r.at)}</td>
                  <td>${r.actor}</td>
                  <td>${r.role}</td>
                  <td>${r.source}</td>
                  <td>${r.establishment}</td>
                  <td>
                    ${r.patientId === null ? '' : html`<a href="/patients/${r.patientId}">${r.patientId}</a>`}
                  </td>
                  <td>${r.action}</td>
                  <td>${r.object}</td>
                  <td>${r.outcome}</td>
                </tr>`,
            )}
          </tbody>
        </table>
        ${page.next ? html`<p><a href="/audit${query({ ...q, verify: undefined, after: page.next })}">Older →</a></p>` : ''}`,
    );
  });
}
