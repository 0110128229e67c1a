// Patients (search, the record — each view audited) and the identity-vigilance review queue.
import type { FastifyInstance } from 'fastify';
import type { Engine } from '../../channels/engine.ts';
import type { PatientRecord } from '../../store/patients.ts';
import { resolveReview, type ReviewDecision } from '../actions.ts';
import { patientReaders, readPatient, searchPatients } from '../api/patients.ts';
import { operators, staff } from '../auth.ts';
import { html, query, type Html } from '../html.ts';
import { actionButton, csrfField, emptyState, sendError, sendPage } from './layout.ts';
import { documentsTable, unfiledDocuments } from './documents.ts';

const identityLine = (p: PatientRecord | null) =>
  p
    ? html`<a href="/patients/${p.id}"
          >${p.birthName}${p.usedName ? html` (${p.usedName})` : ''}, ${p.firstGivenName}</a
        >
        · ${p.birthDate} · ${p.sex} · ${p.reliability}${p.ins ? html` · INS ${p.ins.matricule}` : ''}`
    : html`<span class="muted">unknown patient</span>`;

const decisionLabels = {
  merge: 'Same person: merge…',
  link: 'Same person: link',
  reject: 'Two people (reject)',
} as const;

/** Each trait of the two identities on one row; a cell whose values differ is marked. */
function traitsSideBySide(engine: Engine, newId: number, existingId: number): Html {
  const { patients } = engine.store;
  const sides = [newId, existingId].map((id) => ({ id, p: patients.get(id), ids: patients.identifiers(id) }));
  const traits: Array<[string, (p: PatientRecord) => string]> = [
    ['Birth name', (p) => p.birthName],
    ['Used name', (p) => p.usedName ?? ''],
    ['Given names', (p) => p.givenNames],
    ['Birth date', (p) => p.birthDate],
    ['Sex', (p) => p.sex],
    ['Birth place (INSEE)', (p) => p.birthPlace ?? ''],
    ['INS', (p) => (p.ins ? `${p.ins.matricule} (${p.ins.status})` : '')],
    ['Identity status', (p) => p.reliability],
  ];
  const ipps = (side: (typeof sides)[number]) =>
    side.ids.filter((i) => i.status === 'active').map((i) => html`FINESS ${i.finess} · IPP ${i.ipp}<br />`);
  return html`<table class="traits">
    <thead>
      <tr>
        <th>Trait</th>
        ${sides.map(
          (s, i) =>
            html`<th>${i === 0 ? 'New' : 'Existing'}: <a href="/patients/${s.id}">patient ${s.id}</a></th>`,
        )}
      </tr>
    </thead>
    <tbody>
      ${traits.map(([label, value]) => {
        const [a, b] = sides.map((s) => (s.p ? value(s.p) : ''));
        const differs = a !== b;
        return html`<tr data-trait="${label}">
          <th>${label}</th>
          ${[a, b].map(
            (v) =>
              html`<td class="${differs ? 'differs' : ''}">
                ${differs ? html`<span class="mark" title="differs from the other record">≠ </span>` : ''}${v}
              </td>`,
          )}
        </tr>`;
      })}
      <tr data-trait="IPP">
        <th>Identifiers (FINESS · IPP)</th>
        ${sides.map((s) => html`<td>${ipps(s)}</td>`)}
      </tr>
    </tbody>
  </table>`;
}

export function registerIdentityPages(app: FastifyInstance, engine: Engine): void {
  app.get('/patients', { config: { roles: staff } }, async (req, reply) => {
    const { q, after } = req.query as { q?: string; after?: string };
    const page = q ? await searchPatients(engine, req, q, after ?? null) : null;
    return sendPage(
      req,
      reply,
      'Patients',
      html`<form method="get" action="/patients" class="card">
          <label>Name (dupont, jean), INS or IPP <input name="q" value="${q ?? ''}" required /></label>
          <button type="submit">Search</button>
        </form>
        ${
          page && page.items.length === 0
            ? emptyState(
                'no-patients',
                'No patient matches this search: try the birth name alone, an IPP or an INS.',
              )
            : ''
        }
        ${
          page && page.items.length > 0
            ? html`<table id="patients">
                  <thead>
                    <tr>
                      <th>Patient</th>
                    </tr>
                  </thead>
                  <tbody>
                    ${page.items.map(
                      (p) =>
                        html`<tr>
                          <td>${identityLine(p as PatientRecord)}</td>
                        </tr>`,
                    )}
                  </tbody>
                </table>
                ${page.next ? html`<p><a href="/patients${query({ q, after: page.next })}">More →</a></p>` : ''}`
            : ''
        }`,
    );
  });

  app.get('/patients/:id', { config: { roles: patientReaders } }, async (req, reply) => {
    const v = await readPatient(engine, req, Number((req.params as { id: string }).id));
    const p = v.patient;
    return sendPage(
      req,
      reply,
      `Patient ${p.id}`,
      html`${v.requestedId !== p.id ? html`<p class="muted">Patient ${v.requestedId} was merged into this one.</p>` : ''}
        <table id="identity">
          <tbody>
            <tr>
              <th>Birth name</th>
              <td>${p.birthName}</td>
            </tr>
            <tr>
              <th>Used name</th>
              <td>${p.usedName}</td>
            </tr>
            <tr>
              <th>Given names</th>
              <td>${p.givenNames}</td>
            </tr>
            <tr>
              <th>Birth date</th>
              <td>${p.birthDate}</td>
            </tr>
            <tr>
              <th>Sex</th>
              <td>${p.sex}</td>
            </tr>
            <tr>
              <th>Birth place</th>
              <td>${p.birthPlace}</td>
            </tr>
            <tr>
              <th>INS</th>
              <td>${p.ins ? `${p.ins.matricule} (${p.ins.oid}, ${p.ins.status})` : ''}</td>
            </tr>
            <tr>
              <th>Identity status</th>
              <td>${p.reliability}</td>
            </tr>
          </tbody>
        </table>
        <h2>Identifiers per establishment</h2>
        <table id="identifiers">
          <thead>
            <tr>
              <th>FINESS</th>
              <th>IPP</th>
              <th>Status</th>
              <th>Identity sent</th>
            </tr>
          </thead>
          <tbody>
            ${v.identifiers.map(
              (i) =>
                html`<tr>
                  <td>${i.finess}</td>
                  <td>${i.ipp}</td>
                  <td>${i.status}${i.mergedIntoIpp ? ` → ${i.mergedIntoIpp}` : ''}</td>
                  <td>${i.identity.birthName}, ${i.identity.firstGivenName}, ${i.identity.birthDate}</td>
                </tr>`,
            )}
          </tbody>
        </table>
        <p><a id="patient-messages" href="/messages?patient=${p.id}">Messages about this patient</a></p>
        <h2>Documents and results</h2>
        ${documentsTable(engine.store.documents.listOfPatient(p.id))}
        <h2>Identity history</h2>
        <table>
          <thead>
            <tr>
              <th>When</th>
              <th>Decision</th>
              <th>Rule</th>
              <th>By</th>
            </tr>
          </thead>
          <tbody>
            ${v.history.map(
              (d) =>
                html`<tr>
                  <td>${d.at}</td>
                  <td>${d.action}</td>
                  <td>${d.rule}</td>
                  <td>${d.author ?? (d.messageId ? `message ${d.messageId}` : '')}</td>
                </tr>`,
            )}
          </tbody>
        </table>`,
    );
  });

  app.get('/vigilance', { config: { roles: staff } }, async (req, reply) => {
    const { after } = req.query as { after?: string };
    const page = engine.store.vigilance.listOpen({ after: after ?? null });
    const unfiled = engine.store.documents.listWaiting();
    const canAct = operators.includes(req.user!.role);
    const items = page.items.map(
      (r) =>
        html`<div class="card review" id="review-${r.id}">
          <p><strong>Review ${r.id}</strong> · score ${r.score.toFixed(2)} · ${r.reasons.join(', ')}</p>
          ${traitsSideBySide(engine, r.patientId, r.candidateId)}
          ${canAct ? (['merge', 'link', 'reject'] as const).map((d) => actionButton(req.user, `/vigilance/${r.id}/${d}`, decisionLabels[d], d)) : ''}
        </div>`,
    );
    return sendPage(
      req,
      reply,
      'Identity vigilance',
      html`${items.length ? items : emptyState('no-reviews', 'No review items: no identity waits for a decision.')}
        ${page.next ? html`<p><a href="/vigilance?after=${page.next}">More →</a></p>` : ''}
        <h2>Unfiled documents</h2>
        ${unfiledDocuments(req, unfiled.items)}`,
    );
  });

  app.post('/vigilance/:id/:decision', { config: { roles: operators } }, async (req, reply) => {
    const { id, decision } = req.params as { id: string; decision: string };
    if (!['merge', 'link', 'reject'].includes(decision))
      return sendError(req, reply, 404, `no decision "${decision}"`, 'use merge, link or reject');
    const body = req.body as { confirm?: string } | undefined;
    if (decision === 'merge' && body?.confirm !== 'yes') {
      // A merge moves identifiers and documents to one patient: the reviewer sees both identities
      // once more and confirms, on a page of its own (no script: the pages allow none).
      const item = engine.store.vigilance.getReview(Number(id));
      if (!item || item.status !== 'open')
        return sendError(req, reply, 404, `no open review item ${id}`, 'it may have been decided already');
      return sendPage(
        req,
        reply,
        `Merge review ${item.id}?`,
        html`<div class="card" id="confirm-merge">
          ${traitsSideBySide(engine, item.patientId, item.candidateId)}
          <p>
            The two records become one patient: the more reliable identity survives (the older on a tie), and
            the other one's identifiers and documents move to it. Only an unmerge undoes it.
          </p>
          <form method="post" action="/vigilance/${item.id}/merge" class="inline">
            ${csrfField(req.user)}<button type="submit" name="confirm" value="yes">Confirm the merge</button>
          </form>
          <a href="/vigilance">Cancel</a>
        </div>`,
      );
    }
    await resolveReview(engine, req, Number(id), decision as ReviewDecision);
    return reply.redirect('/vigilance', 303);
  });
}
