// The frame of every page: navigation for the account's role, the CSRF field for forms, the style.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AuthUser } from '../auth.ts';
import { Html, html } from '../html.ts';

// Our own constant, not content: Html, so that quotes in the CSS are not escaped into it.
const style = new Html(`
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2430;background:#f5f6f8}
header{background:#17324d;color:#fff;padding:.5em 1em;display:flex;gap:1em;align-items:center;flex-wrap:wrap}
header a{color:#dfe9f5;text-decoration:none}header a:hover{text-decoration:underline}
header form{margin-left:auto}main{padding:1em}
table{border-collapse:collapse;background:#fff;width:100%}th,td{border:1px solid #d6dbe2;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#eef1f5}pre{background:#fff;border:1px solid #d6dbe2;padding:.5em;overflow:auto;max-height:30em}
.state-STARTED{color:#17803d}.state-PAUSED{color:#b26b00}.state-FAILED,.status-ERROR,.status-REJECTED{color:#b3261e}
.error{color:#b3261e}.empty{padding:1em;background:#fff;border:1px dashed #d6dbe2;color:#6b7480}
.traits td.differs{background:#fdecea;font-weight:600}.traits .mark{color:#b3261e}
.chart text{font-size:10px;fill:#6b7480}.muted{color:#6b7480}form.inline{display:inline}
.card{background:#fff;border:1px solid #d6dbe2;padding:.7em;margin:.5em 0}
.seg{display:block;white-space:pre-wrap}.seg b{color:#17324d}
input,select,button{font:inherit}svg{background:#fff;border:1px solid #d6dbe2}
`);

function nav(user: AuthUser): Html {
  const links: Array<[string, string]> =
    user.role === 'establishment' || user.role === 'lab'
      ? [
          ['/my-files', 'My files'],
          ['/messages', 'Messages'],
        ]
      : [
          ['/', 'Overview'],
          ['/channels', 'Channels'],
          ['/messages', 'Messages'],
          ['/patients', 'Patients'],
          ['/vigilance', 'Identity vigilance'],
          ['/rcp', 'RCP'],
          ['/stats', 'Statistics'],
          ...(user.role === 'admin' ? ([['/audit', 'Audit trail']] as Array<[string, string]>) : []),
        ];
  return html`<header>
    <strong>Onco-Relay</strong>
    ${links.map(([href, label]) => html`<a href="${href}">${label}</a>`)}
    <form method="post" action="/logout">
      ${csrfField(user)}<span class="muted">${user.login} (${user.role})</span>
      <a href="/password">Change password</a>
      <button type="submit">Log out</button>
    </form>
  </header>`;
}

export const csrfField = (user: AuthUser | null): Html =>
  html`<input type="hidden" name="_csrf" value="${user?.csrf ?? ''}" />`;

/** A POST button (state changes are never links: they need the CSRF token). */
export const actionButton = (user: AuthUser | null, action: string, label: string, name = label): Html =>
  html`<form class="inline" method="post" action="${action}">
    ${csrfField(user)}<button type="submit" name="do" value="${name}">${label}</button>
  </form>`;

export function sendPage(
  req: FastifyRequest,
  reply: FastifyReply,
  title: string,
  body: Html,
  options: { live?: boolean } = {},
): FastifyReply {
  const page = html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <title>${title} · Onco-Relay</title>
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <style>
          ${style}
        </style>
        ${options.live ? html`<script src="/assets/live.js" defer></script>` : ''}
      </head>
      <body>
        ${req.user ? nav(req.user) : ''}
        <main>
          <h1>${title}</h1>
          ${body}
        </main>
      </body>
    </html>`;
  return reply.type('text/html; charset=utf-8').send(page.value);
}

/** A browser asking for a page (not the API, not a script's fetch): errors answer in the layout. */
export const wantsPage = (req: FastifyRequest): boolean =>
  !req.url.startsWith('/api/') && req.url !== '/metrics' && (req.headers.accept ?? '').includes('text/html');

const errorTitles: Record<number, string> = {
  400: 'Request refused',
  403: 'Not allowed',
  404: 'Not found',
  409: 'Not possible now',
};

/** An error as a page of the dashboard: what went wrong, what to do, and a way back. */
export function sendError(
  req: FastifyRequest,
  reply: FastifyReply,
  code: number,
  message: string,
  hint?: string,
): FastifyReply {
  reply.code(code);
  const home = req.user?.role === 'establishment' || req.user?.role === 'lab' ? '/my-files' : '/';
  return sendPage(
    req,
    reply,
    errorTitles[code] ?? (code >= 500 ? 'Something went wrong' : 'Refused'),
    html`<div class="card" id="error-page" data-status="${code}">
      <p class="error">${message}</p>
      ${hint ? html`<p>${hint}</p>` : ''}
      <p><a href="${home}">Back to the start page</a></p>
    </div>`,
  );
}

/** An empty list says so, and what would fill it, rather than showing a bare table head. */
export const emptyState = (id: string, text: string): Html => html`<p class="empty" id="${id}">${text}</p>`;
