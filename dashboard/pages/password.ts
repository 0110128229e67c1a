// The change-password form. The first-start admin is sent here before anything else (its password
// was printed once on a terminal); any account may come here from the header link.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Engine } from '../../channels/engine.ts';
import { AccountError, hashPasswordAsync } from '../../store/accounts.ts';
import { checkNewPassword, MIN_PASSWORD_LENGTH } from '../../store/auth-password.ts';
import { everyone, SESSION_COOKIE, setCookie, type Authenticator } from '../auth.ts';
import { OncoError } from '../../config/errors.ts';
import { html } from '../html.ts';
import { csrfField, sendPage } from './layout.ts';

export function registerPasswordPage(app: FastifyInstance, engine: Engine, auth: Authenticator): void {
  const form = (req: FastifyRequest, reply: FastifyReply, problem: string | null): FastifyReply => {
    const user = req.user!;
    if (problem) reply.code(400);
    return sendPage(
      req,
      reply,
      'Change password',
      html`${user.mustChangePassword ? html`<p id="must-change">This account still has its one-time password: choose your own to go on.</p>` : ''}
        ${problem ? html`<p class="error" id="password-error">${problem}</p>` : ''}
        <form method="post" action="/password" class="card">
          ${csrfField(user)}
          <input type="hidden" name="login" autocomplete="username" value="${user.login}" />
          <p>
            <label
              >Current password
              <input name="current" type="password" autocomplete="current-password" required
            /></label>
          </p>
          <p>
            <label
              >New password (at least ${String(MIN_PASSWORD_LENGTH)} characters)
              <input name="password" type="password" autocomplete="new-password" required
            /></label>
          </p>
          <p>
            <label
              >New password again <input name="confirm" type="password" autocomplete="new-password" required
            /></label>
          </p>
          <button type="submit">Change password</button>
        </form>`,
    );
  };

  const config = { roles: everyone, beforePasswordChange: true };

  app.get('/password', { config }, (req, reply) => form(req, reply, null));

  app.post('/password', { config }, async (req, reply) => {
    const user = req.user!;
    if (user.via !== 'session') throw new OncoError('PASSWORD_FORM_ONLY');
    const body = (req.body ?? {}) as Record<string, string | undefined>;
    const current = body.current ?? '';
    const password = body.password ?? '';
    if (password !== (body.confirm ?? '')) return form(req, reply, 'the two new passwords differ');
    try {
      checkNewPassword(password, user.login);
    } catch (error) {
      if (error instanceof AccountError) return form(req, reply, `${error.message} (${error.hint})`);
      throw error;
    }
    if (password === current) return form(req, reply, 'the new password is the current one');
    // The current password is checked like a login: counted, throttled and audited when wrong.
    if (!(await auth.login(req, user.login, current, 'session'))) {
      return form(req, reply, 'the current password is wrong');
    }
    const hash = await hashPasswordAsync(password);
    const { store } = engine;
    // Every session ends, this one too; this browser gets a fresh one.
    const session = await store.write.logins.setPassword(
      user.login,
      hash,
      { actor: user.login, role: user.role, source: req.ip },
      { sessionFrom: req.ip },
    );
    const token = session!.token;
    setCookie(req, reply, auth.options, SESSION_COOKIE, token);
    const home = user.role === 'establishment' || user.role === 'lab' ? '/my-files' : '/';
    return reply.redirect(home, 303);
  });
}
