// Login and logout. The login form has its own CSRF defence (a double-submit cookie) because no
// session exists yet; after login the session's token protects every form.
import crypto from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Engine } from '../../channels/engine.ts';
import { audit } from '../audit-log.ts';
import {
  everyone,
  LOGIN_CSRF_COOKIE,
  sameToken,
  SESSION_COOKIE,
  setCookie,
  type Authenticator,
} from '../auth.ts';
import { html } from '../html.ts';
import { sendPage } from './layout.ts';
import { registerPasswordPage } from './password.ts';

const SITE = 'http://onco-relay.invalid';

/**
 * Only a path of this site. The URL parser decides, as a browser would: it drops tabs and newlines
 * and reads backslashes as slashes, so `/\t/evil.example` or `/\evil.example` is another host.
 */
export const safeNext = (next: unknown): string => {
  if (typeof next !== 'string' || !next.startsWith('/')) return '/';
  if ([...next].some((c) => c < ' ' || c === '\u007f' || c === '\\')) return '/';
  let url: URL;
  try {
    url = new URL(next, SITE);
  } catch {
    return '/';
  }
  return url.origin === SITE ? `${url.pathname}${url.search}${url.hash}` : '/';
};

export function registerLogin(app: FastifyInstance, engine: Engine, auth: Authenticator): void {
  const form = (req: FastifyRequest, reply: FastifyReply, next: string, failed: boolean): FastifyReply => {
    // Reuse a live token: two tabs (or a stray second load of the form) must not invalidate each other.
    const token = req.cookies[LOGIN_CSRF_COOKIE] || crypto.randomBytes(24).toString('base64url');
    setCookie(req, reply, auth.options, LOGIN_CSRF_COOKIE, token, 3600);
    if (failed) reply.code(401);
    return sendPage(
      req,
      reply,
      'Log in',
      html`${failed ? html`<p class="error" id="login-error">Login refused: wrong login or password, or too many failures from your address (wait a few minutes).</p>` : ''}
        <form method="post" action="/login" class="card">
          <input type="hidden" name="_csrf" value="${token}" /><input
            type="hidden"
            name="next"
            value="${next}"
          />
          <p>
            <label>Login <input name="login" autocomplete="username" required /></label>
          </p>
          <p>
            <label
              >Password <input name="password" type="password" autocomplete="current-password" required
            /></label>
          </p>
          <button type="submit">Log in</button>
        </form>`,
    );
  };

  app.get('/login', { config: { public: true } }, (req, reply) =>
    form(req, reply, safeNext((req.query as { next?: string }).next), false),
  );

  app.post('/login', { config: { public: true } }, async (req, reply) => {
    const body = (req.body ?? {}) as Record<string, string | undefined>;
    if (!sameToken(body._csrf, req.cookies[LOGIN_CSRF_COOKIE])) {
      return reply.code(403).send({ error: 'CSRF', message: 'reload the login page and try again' });
    }
    const next = safeNext(body.next);
    const account = await auth.login(req, body.login ?? '', body.password ?? '', 'session');
    if (!account) return form(req, reply, next, true);
    const { token } = await engine.store.write.sessions.create(account.login, req.ip);
    setCookie(req, reply, auth.options, SESSION_COOKIE, token);
    setCookie(req, reply, auth.options, LOGIN_CSRF_COOKIE, '', 0);
    if (account.mustChangePassword) return reply.redirect('/password', 303);
    const home = account.role === 'establishment' || account.role === 'lab' ? '/my-files' : '/';
    return reply.redirect(next === '/' ? home : next, 303);
  });

  app.post('/logout', { config: { roles: everyone, beforePasswordChange: true } }, async (req, reply) => {
    const token = req.cookies[SESSION_COOKIE];
    if (token) await engine.store.write.sessions.end(token);
    await audit(engine.store, req, { action: 'logout' });
    setCookie(req, reply, auth.options, SESSION_COOKIE, '', 0);
    return reply.redirect('/login', 303);
  });

  registerPasswordPage(app, engine, auth);
}
