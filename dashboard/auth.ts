// Who is asking, and may they: session cookie or HTTP Basic, checked by the store's one
// authentication service (throttled per address, audited), per-route roles (a route that declares
// none is refused: fail closed), CSRF on every state change, and the forced change of a one-time
// password before anything else.
import crypto from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Engine } from '../channels/engine.ts';
import { roles, type AccountRecord, type Role } from '../store/accounts.ts';
import type {} from '@fastify/cookie';
import { OncoError } from '../config/errors.ts';

export interface AuthUser {
  login: string;
  role: Role;
  finess: string | null;
  via: 'session' | 'basic';
  /** The session's CSRF token, to put in forms; null for Basic. */
  csrf: string | null;
  /** Only the change-password form answers until this is false. */
  mustChangePassword: boolean;
}

declare module 'fastify' {
  interface FastifyRequest {
    user: AuthUser | null;
  }
  interface FastifyContextConfig {
    /** Roles allowed on this route. Required unless `public`. */
    roles?: readonly Role[];
    /** Answers without a login (health, the login form). */
    public?: boolean;
    /** Answers an account that must still change its one-time password (the change form, logout). */
    beforePasswordChange?: boolean;
  }
}

export const everyone: readonly Role[] = roles;
export const staff: readonly Role[] = ['admin', 'operator', 'viewer'];
export const operators: readonly Role[] = ['admin', 'operator'];
export const admins: readonly Role[] = ['admin'];
export const partners: readonly Role[] = ['establishment', 'lab'];

/** Establishment and lab accounts see only what their FINESS owns. */
export const scopeOf = (user: AuthUser): string | undefined =>
  user.role === 'establishment' || user.role === 'lab' ? (user.finess ?? '-') : undefined;

export interface AuthOptions {
  /** `auto`: Secure when the request came over TLS or through a proxy that says it did (X-Forwarded-Proto). */
  secureCookies: 'auto' | 'always' | 'never';
  idleMs: number;
  maxAgeMs: number;
}

export const defaultAuthOptions: AuthOptions = {
  secureCookies: 'auto',
  idleMs: 30 * 60_000,
  maxAgeMs: 12 * 3600_000,
};

export const SESSION_COOKIE = 'onco_session';
export const LOGIN_CSRF_COOKIE = 'onco_login_csrf';

/** Sets (or, with an empty value, clears) one of our cookies: HttpOnly, SameSite=Strict, Secure as configured. */
export function setCookie(
  req: FastifyRequest,
  reply: FastifyReply,
  options: AuthOptions,
  name: string,
  value: string,
  maxAgeS?: number,
): void {
  const secure =
    options.secureCookies === 'always' ||
    (options.secureCookies === 'auto' &&
      (req.protocol === 'https' || req.headers['x-forwarded-proto'] === 'https'));
  reply.setCookie(name, value, {
    path: '/',
    httpOnly: true,
    sameSite: 'strict',
    secure,
    ...(maxAgeS !== undefined ? { maxAge: maxAgeS } : {}),
  });
}

export const sameToken = (a: string | undefined, b: string | undefined | null): boolean =>
  typeof a === 'string' &&
  typeof b === 'string' &&
  a.length === b.length &&
  a.length > 0 &&
  crypto.timingSafeEqual(Buffer.from(a), Buffer.from(b));

const wantsJson = (req: FastifyRequest): boolean =>
  req.url.startsWith('/api/') || req.url === '/metrics' || req.url.startsWith('/ready');

/** Basic credentials verified recently: scrypt on every API call would cost ~50 ms each. */
const BASIC_CACHE_MS = 30_000;

export class Authenticator {
  private readonly basicCache = new Map<string, { account: AccountRecord; until: number }>();

  constructor(
    private readonly engine: Engine,
    readonly options: AuthOptions,
  ) {}

  /** Checks a password through the store's authentication service (which throttles and audits). */
  async login(
    req: FastifyRequest,
    login: string,
    password: string,
    via: AuthUser['via'],
  ): Promise<AccountRecord | null> {
    const result = await this.engine.store.auth.password(login, password, {
      address: req.ip,
      protocol: via === 'basic' ? 'api' : 'dashboard',
    });
    return result.ok ? result.account : null;
  }

  /** The account behind the request's session cookie or Basic header, or null. */
  async identify(req: FastifyRequest): Promise<AuthUser | null> {
    const token = req.cookies[SESSION_COOKIE];
    if (token) {
      const { sessions, write } = this.engine.store;
      const s = sessions.find(token, this.options);
      // Not awaited: the request goes on while the writer touches (or ends) the session.
      if (sessions.stale(token, s))
        void write.sessions
          .seen(token, { idleMs: this.options.idleMs, maxAgeMs: this.options.maxAgeMs })
          .catch(() => undefined);
      const a = s && this.engine.store.accounts.get(s.login);
      if (s && a && !a.disabled)
        return {
          login: a.login,
          role: a.role,
          finess: a.finess,
          via: 'session',
          csrf: s.csrf,
          mustChangePassword: a.mustChangePassword,
        };
    }
    const auth = req.headers.authorization;
    if (auth?.startsWith('Basic ')) {
      // Per address: a throttled address must not ride on credentials another address proved.
      const key = crypto.createHash('sha256').update(`${req.ip} ${auth}`).digest('hex');
      const cached = this.basicCache.get(key);
      let account = cached && cached.until > Date.now() ? cached.account : null;
      // A password changed or an account disabled since: the cached answer is stale.
      const current = account && this.engine.store.accounts.get(account.login);
      if (account && (!current || current.disabled || current.mustChangePassword)) account = null;
      if (!account) {
        this.basicCache.delete(key);
        const decoded = Buffer.from(auth.slice(6), 'base64').toString('utf8');
        const i = decoded.indexOf(':');
        if (i < 1) return null;
        account = await this.login(req, decoded.slice(0, i), decoded.slice(i + 1), 'basic');
        if (!account) return null;
        if (this.basicCache.size > 1000) this.basicCache.clear();
        this.basicCache.set(key, { account, until: Date.now() + BASIC_CACHE_MS });
      }
      return {
        login: account.login,
        role: account.role,
        finess: account.finess,
        via: 'basic',
        csrf: null,
        mustChangePassword: account.mustChangePassword,
      };
    }
    return null;
  }

  /** Registers the checks every route goes through. */
  install(app: FastifyInstance): void {
    app.decorateRequest('user', null);
    // preParsing: after @fastify/cookie has read the cookies (onRequest), before any body is read.
    app.addHook('preParsing', async (req, reply) => {
      const repeated = Object.entries((req.query ?? {}) as Record<string, unknown>).find(([, v]) =>
        Array.isArray(v),
      );
      if (repeated) throw new OncoError('QUERY_REPEATED', { params: { name: repeated[0] } });
      const config = req.routeOptions.config;
      if (config.public) return;
      req.user = await this.identify(req);
      if (!req.user) return this.unauthenticated(req, reply);
      // No route matched: let the 404 answer, but only to a logged-in user.
      if (req.routeOptions.url === undefined) return;
      if (req.user.mustChangePassword && !config.beforePasswordChange) {
        if (req.method === 'GET' && (req.headers.accept ?? '').includes('text/html'))
          return reply.redirect('/password', 303);
        throw new OncoError('PASSWORD_CHANGE_REQUIRED', { params: { login: req.user.login } });
      }
      if (!config.roles?.includes(req.user.role)) {
        // Thrown, not sent: the server's error handler answers a page view with a page, the API with JSON.
        throw new OncoError('FORBIDDEN', { params: { role: req.user.role } });
      }
    });
    app.addHook('preHandler', async (req, reply) => {
      if (!req.user || ['GET', 'HEAD', 'OPTIONS'].includes(req.method)) return;
      if (req.user.via === 'session') {
        const body = req.body as Record<string, unknown> | undefined;
        const sent =
          (typeof body?._csrf === 'string' ? body._csrf : undefined) ?? req.headers['x-csrf-token'];
        if (!sameToken(typeof sent === 'string' ? sent : undefined, req.user.csrf)) {
          return reply.code(403).send({
            error: 'CSRF',
            message: 'the form is missing its CSRF token or it is stale: reload the page and try again',
          });
        }
        return;
      }
      // A browser may replay cached Basic credentials on a cross-site form post: only non-form bodies pass.
      const type = String(req.headers['content-type'] ?? '');
      if (/^(application\/x-www-form-urlencoded|multipart\/form-data|text\/plain)/i.test(type)) {
        return reply
          .code(415)
          .send({ error: 'CONTENT_TYPE', message: 'API calls take application/json bodies' });
      }
    });
  }

  private unauthenticated(req: FastifyRequest, reply: FastifyReply): FastifyReply {
    // Only a page view is sent to the login form: a favicon or script fetch gets a plain 401.
    if (wantsJson(req) || req.method !== 'GET' || !(req.headers.accept ?? '').includes('text/html')) {
      return reply
        .code(401)
        .header('www-authenticate', 'Basic realm="onco-relay", charset="UTF-8"')
        .send({ error: 'UNAUTHENTICATED', message: 'log in: HTTP Basic or a dashboard session' });
    }
    return reply.redirect(`/login?next=${encodeURIComponent(req.url)}`, 303);
  }
}
