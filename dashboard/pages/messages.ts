// The message browser (filters, keyset pages), a message's stages and deliveries with replays, and
// "my files" for establishment and lab accounts (the same data, scoped to their FINESS).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Engine } from '../../channels/engine.ts';
import type { MessageSummary } from '../../store/message-search.ts';
import type { DeliveryMail } from '../../store/mail-tracking.ts';
import { searchMessages } from '../../channels/message-index.ts';
import { replayDelivery, replayMessage } from '../actions.ts';
import {
  messageFilter,
  findMessages,
  messageStatuses,
  parseCursor,
  readMessage,
  type MessageQuery,
} from '../api/messages.ts';
import { everyone, operators, partners } from '../auth.ts';
import { hl7Segments, isHl7, isXml, prettyXml } from '../content-view.ts';
import { formatTime, html, query, type Html } from '../html.ts';
import { actionButton, emptyState, sendPage } from './layout.ts';

const fileName = (m: { meta: Record<string, unknown> }): string => {
  const v = m.meta.fileName ?? m.meta.controlId ?? '';
  return typeof v === 'string' || typeof v === 'number' ? String(v) : '';
};

function searchForm(engine: Engine, req: FastifyRequest, q: MessageQuery): Html {
  const option = (value: string, current: string | undefined) =>
    html`<option value="${value}" ${value === (current ?? '') ? 'selected' : ''}>${value || 'any'}</option>`;
  const channels = scopeless(req) ? ['', ...engine.channels.keys()] : [''];
  return html`<form method="get" action="/messages" class="card" id="message-search">
    ${
      scopeless(req)
        ? html`<label
            >Channel
            <select name="channel">
              ${channels.map((c) => option(c, q.channel))}
            </select></label
          >`
        : ''
    }
    <label
      >Status
      <select name="status">
        ${['', ...messageStatuses].map((s) => option(s, q.status))}
      </select></label
    >
    <label>From <input type="datetime-local" name="from" value="${q.from ?? ''}" /></label>
    <label>To <input type="datetime-local" name="to" value="${q.to ?? ''}" /></label>
    <label
      >Text <input name="text" value="${q.text ?? ''}" placeholder="file name, MSH-10, IPP, INS, sender…"
    /></label>
    ${
      q.patient
        ? html`<input type="hidden" name="patient" value="${q.patient}" />
            <span id="patient-filter"
              >about <a href="/patients/${q.patient}">patient ${q.patient}</a> ·
              <a href="/messages${query({ ...q, patient: undefined, after: undefined })}"
                >all patients</a
              ></span
            >`
        : ''
    }
    <button type="submit">Search</button>
  </form>`;
}

const scopeless = (req: FastifyRequest): boolean => !partners.includes(req.user!.role);

function messageRows(items: MessageSummary[], filtered: boolean): Html {
  if (items.length === 0)
    return filtered
      ? emptyState('no-messages', 'No message matches these filters.')
      : emptyState(
          'no-messages',
          'No messages yet: each message a source receives appears here once it is journaled.',
        );
  return html`<table id="messages">
    <thead>
      <tr>
        <th>#</th>
        <th>Received</th>
        <th>Channel</th>
        <th>Status</th>
        <th>File / id</th>
        <th>Sender</th>
        <th>Error</th>
      </tr>
    </thead>
    <tbody>
      ${items.map(
        (m) =>
          html`<tr>
            <td><a href="/messages/${m.id}">${m.id}</a></td>
            <td>${formatTime(m.receivedAt)}</td>
            <td>${m.channel}</td>
            <td class="status-${m.status}">${m.status}</td>
            <td>${fileName(m)}</td>
            <td>${m.sender}</td>
            <td class="error">${m.error}</td>
          </tr>`,
      )}
    </tbody>
  </table>`;
}

/** The Message-ID of a mail delivery and the DSN/MDN reports that came back about it. */
function mailReports(mail: DeliveryMail): Html {
  return html`<div class="mail muted">
    Message-ID &lt;${mail.messageId}&gt;
    <ul class="mail-reports">
      ${
        mail.reports.length === 0
          ? html`<li>no delivery or read report yet</li>`
          : mail.reports.map(
              (r) =>
                html`<li class="report-${r.status}">
                  ${r.kind.toUpperCase()} ${r.status}${r.recipient ? html` (${r.recipient})` : ''}
                  ${formatTime(r.receivedAt)}${r.reason ? html`: ${r.reason}` : ''}
                </li>`,
            )
      }
    </ul>
  </div>`;
}

function stageView(c: {
  stage: string;
  destination: string;
  contentType: string;
  size: number;
  text?: string;
}): Html {
  const title = html`<h3>
    ${c.stage}${c.destination ? html` → ${c.destination}` : ''}
    <span class="muted">${c.contentType}, ${c.size} bytes</span>
  </h3>`;
  if (c.text === undefined)
    return html`${title}
      <p class="muted">binary content, not shown</p>`;
  if (isHl7(c.text)) {
    return html`${title}
      <pre class="hl7">
${hl7Segments(c.text).map((s) => html`<span class="seg"><b>${s.slice(0, 3)}</b>${s.slice(3)}</span>`)}</pre>`;
  }
  return html`${title}
    <pre>${isXml(c.text, c.contentType) ? prettyXml(c.text) : c.text}</pre>`;
}

export function registerMessagePages(app: FastifyInstance, engine: Engine): void {
  app.get('/messages', { config: { roles: everyone } }, async (req, reply) => {
    const q = req.query as MessageQuery;
    const page = await findMessages(engine, req, q);
    const more =
      page.next === null
        ? ''
        : html`<p>
            <a id="next-page" href="/messages${query({ ...q, after: page.next })}">Older messages →</a>
          </p>`;
    return sendPage(
      req,
      reply,
      'Messages',
      html`${searchForm(engine, req, q)}${messageRows(
        page.items,
        ['channel', 'status', 'from', 'to', 'text', 'patient', 'after'].some(
          (k) => q[k as keyof MessageQuery],
        ),
      )}${more}`,
    );
  });

  app.get('/messages/:id', { config: { roles: everyone } }, async (req, reply) => {
    const id = Number((req.params as { id: string }).id);
    const { message: m, contents, deliveries } = await readMessage(engine, req, id);
    const canAct = operators.includes(req.user!.role);
    return sendPage(
      req,
      reply,
      `Message ${m.id}`,
      html`<table>
          <tbody>
            <tr>
              <th>Channel</th>
              <td>${m.channel}</td>
            </tr>
            <tr>
              <th>Status</th>
              <td class="status-${m.status}" id="message-status">${m.status}</td>
            </tr>
            <tr>
              <th>Received</th>
              <td>${formatTime(m.receivedAt)}</td>
            </tr>
            <tr>
              <th>Sender</th>
              <td>${m.sender}</td>
            </tr>
            <tr>
              <th>Owner</th>
              <td>${m.owner}</td>
            </tr>
            ${
              m.error
                ? html`<tr>
                    <th>Error</th>
                    <td class="error">${m.error}</td>
                  </tr>`
                : ''
            }
            ${
              m.replayOf
                ? html`<tr>
                    <th>Replay of</th>
                    <td><a href="/messages/${m.replayOf}">${m.replayOf}</a></td>
                  </tr>`
                : ''
            }
            ${Object.entries(m.meta).map(
              ([k, v]) =>
                html`<tr>
                  <th>${k}</th>
                  <td>${typeof v === 'string' ? v : JSON.stringify(v)}</td>
                </tr>`,
            )}
          </tbody>
        </table>
        ${canAct ? html`<p>${actionButton(req.user, `/messages/${m.id}/replay`, 'Replay message', 'replay')}</p>` : ''}
        <h2>Deliveries</h2>
        <table id="deliveries">
          <thead>
            <tr>
              <th>Destination</th>
              <th>Status</th>
              <th>Attempts</th>
              <th>Last error</th>
              <th>Sent</th>
              <th></th>
            </tr>
          </thead>
          <tbody>
            ${deliveries.map(
              (d) =>
                html`<tr>
                  <td>${d.destination}</td>
                  <td class="status-${d.status}">${d.status}</td>
                  <td>${d.attempts}</td>
                  <td class="error">${d.lastError}${'mail' in d ? mailReports(d.mail) : ''}</td>
                  <td>${formatTime(d.sentAt)}</td>
                  <td>
                    ${canAct ? actionButton(req.user, `/messages/${m.id}/deliveries/${d.id}/replay`, 'Replay delivery', 'replay') : ''}
                  </td>
                </tr>`,
            )}
          </tbody>
        </table>
        <h2>Stages</h2>
        <div id="stages">${contents.map(stageView)}</div>`,
    );
  });

  app.post('/messages/:id/replay', { config: { roles: operators } }, async (req, reply) => {
    const newId = await replayMessage(engine, req, Number((req.params as { id: string }).id));
    return reply.redirect(`/messages/${newId}`, 303);
  });

  app.post(
    '/messages/:id/deliveries/:deliveryId/replay',
    { config: { roles: operators } },
    async (req, reply) => {
      const { id, deliveryId } = req.params as { id: string; deliveryId: string };
      await replayDelivery(engine, req, Number(id), Number(deliveryId));
      return reply.redirect(`/messages/${Number(id)}`, 303);
    },
  );

  app.get('/my-files', { config: { roles: partners } }, async (req, reply) => {
    const q = req.query as { after?: string };
    const page = searchMessages(engine.store, messageFilter(req, {}), { after: parseCursor(q.after) });
    const rows = page.items.map((m) => {
      const deliveries = engine.store.journal.deliveries(m.id);
      return html`<tr>
        <td><a href="/messages/${m.id}">${fileName(m) || m.id}</a></td>
        <td>${formatTime(m.receivedAt)}</td>
        <td class="status-${m.status}">${m.status}</td>
        <td>
          ${deliveries.map((d) => html`${d.destination}: ${d.status}${d.lastError ? html` <span class="error">(${d.lastError})</span>` : ''}<br />`)}
        </td>
        <td class="error">${m.error}</td>
      </tr>`;
    });
    return sendPage(
      req,
      reply,
      `My files (FINESS ${req.user!.finess ?? ''})`,
      html`${
        rows.length === 0
          ? emptyState(
              'no-files',
              'No files yet: the files your establishment drops on the SFTP server (/in/…) appear here with their outcome.',
            )
          : html`<table id="my-files">
              <thead>
                <tr>
                  <th>File</th>
                  <th>Received</th>
                  <th>Status</th>
                  <th>Deliveries</th>
                  <th>Why rejected</th>
                </tr>
              </thead>
              <tbody>
                ${rows}
              </tbody>
            </table>`
      }
      ${page.next === null ? '' : html`<p><a href="/my-files?after=${page.next}">Older files →</a></p>`}`,
    );
  });
}
