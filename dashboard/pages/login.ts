// Login and logout. The login form has its own CSRF defence (a double-submit cookie) because no
// session exists yet; after login the session's token protects every form.
import crypto from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Engine } from '../../channels/engine.ts';
import { audit } from '../audit-log.ts';
import {
  everyone,
  cookie,
  LOGIN_CSRF_COOKIE,
  parseCookies,
  sameToken,
  SESSION_COOKIE,
  type Authenticator,
} from '../auth.ts';
import { html } from '../html.ts';
import { sendPage } from './layout.ts';

/** Only local paths: `next=//evil.example` or an absolute URL must not redirect off-site. */
const safeNext = (next: unknown): string =>
  typeof next === 'string' && /^\/(?![/\\])/.test(next) ? next : '/';

export function registerLogin(app: FastifyInstance, engine: Engine, auth: Authenticator): void {
  const secure = auth.options.secureCookies;

  const form = (req: FastifyRequest, reply: FastifyReply, next: string, failed: boolean): FastifyReply => {
    // Reuse a live token: two tabs (or a stray second load of the form) must not invalidate each other.
    const token =
      parseCookies(req.headers.cookie)[LOGIN_CSRF_COOKIE] || crypto.randomBytes(24).toString('base64url');
    reply.header('set-cookie', cookie(LOGIN_CSRF_COOKIE, token, { secure, maxAgeS: 3600 }));
    if (failed) reply.code(401);
    return sendPage(
      req,
      reply,
      'Log in',
      html`${failed ? html`<p class="error" id="login-error">Login refused: wrong login or password, or the account is locked for a while after repeated failures.</p>` : ''}
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
    if (!sameToken(body._csrf, parseCookies(req.headers.cookie)[LOGIN_CSRF_COOKIE])) {
      return reply.code(403).send({ error: 'CSRF', message: 'reload the login page and try again' });
    }
    const next = safeNext(body.next);
    const account = await auth.login(req, body.login ?? '', body.password ?? '', 'session');
    if (!account) return form(req, reply, next, true);
    const { token } = await engine.store.writer.write(() =>
      engine.store.sessions.create(account.login, req.ip),
    );
    reply.header('set-cookie', [
      cookie(SESSION_COOKIE, token, { secure }),
      cookie(LOGIN_CSRF_COOKIE, '', { secure, maxAgeS: 0 }),
    ]);
    const home = account.role === 'establishment' || account.role === 'lab' ? '/my-files' : '/';
    return reply.redirect(next === '/' ? home : next, 303);
  });

  app.post('/logout', { config: { roles: everyone } }, async (req, reply) => {
    const token = parseCookies(req.headers.cookie)[SESSION_COOKIE];
    if (token) await engine.store.writer.write(() => engine.store.sessions.end(token));
    await audit(engine.store, req, { action: 'logout' });
    reply.header('set-cookie', cookie(SESSION_COOKIE, '', { secure, maxAgeS: 0 }));
    return reply.redirect('/login', 303);
  });
}
