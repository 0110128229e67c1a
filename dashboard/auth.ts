// Who is asking, and may they: session cookie or HTTP Basic, lockout after repeated failures,
// per-route roles (a route that declares none is refused: fail closed), CSRF on every state change.
import crypto from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Engine } from '../channels/engine.ts';
import { roles, type AccountRecord, type Role } from '../store/accounts.ts';
import { audit } from './audit-log.ts';

export interface AuthUser {
  login: string;
  role: Role;
  finess: string | null;
  via: 'session' | 'basic';
  /** The session's CSRF token, to put in forms; null for Basic. */
  csrf: string | null;
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
  secureCookies: boolean;
  idleMs: number;
  maxAgeMs: number;
  maxFailures: number;
  lockMs: number;
}

export const defaultAuthOptions: AuthOptions = {
  secureCookies: false,
  idleMs: 30 * 60_000,
  maxAgeMs: 12 * 3600_000,
  maxFailures: 5,
  lockMs: 15 * 60_000,
};

export const SESSION_COOKIE = 'onco_session';
export const LOGIN_CSRF_COOKIE = 'onco_login_csrf';

export function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0) out[part.slice(0, i).trim()] = decodeURIComponent(part.slice(i + 1).trim());
  }
  return out;
}

export function cookie(name: string, value: string, o: { secure: boolean; maxAgeS?: number }): string {
  return [
    `${name}=${encodeURIComponent(value)}`,
    'Path=/',
    'HttpOnly',
    'SameSite=Strict',
    o.secure ? 'Secure' : null,
    o.maxAgeS !== undefined ? `Max-Age=${o.maxAgeS}` : null,
  ]
    .filter(Boolean)
    .join('; ');
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

  /**
   * Checks a password with lockout. Every outcome is audited; an unknown login is recorded without
   * the typed text (people type passwords into the login field).
   */
  async login(
    req: FastifyRequest,
    login: string,
    password: string,
    via: AuthUser['via'],
  ): Promise<AccountRecord | null> {
    const { store } = this.engine;
    const now = Date.now();
    const account = await store.accounts.checkPassword(login, password, now);
    if (account) {
      await store.writer.write(() => store.accounts.recordSuccess(login, now));
      await audit(store, req, {
        actor: account.login,
        role: account.role,
        establishment: account.finess,
        action: 'login',
        detail: { via },
      });
      return account;
    }
    const known = store.accounts.get(login);
    let reason = 'unknown-login';
    if (known) {
      const locked = known.lockedUntil > now;
      reason = known.disabled ? 'disabled' : locked ? 'locked' : 'bad-password';
      if (!locked) {
        const lockUntil = known.failedLogins + 1 >= this.options.maxFailures ? now + this.options.lockMs : 0;
        if (lockUntil) reason = 'bad-password-now-locked';
        await store.writer.write(() => store.accounts.recordFailure(login, lockUntil));
      }
    }
    await audit(store, req, {
      actor: known ? known.login : 'unknown',
      role: known?.role ?? null,
      establishment: known?.finess ?? null,
      action: 'login-failed',
      outcome: 'refused',
      detail: { via, reason },
    });
    return null;
  }

  /** The account behind the request's session cookie or Basic header, or null. */
  async identify(req: FastifyRequest): Promise<AuthUser | null> {
    const token = parseCookies(req.headers.cookie)[SESSION_COOKIE];
    if (token) {
      const s = this.engine.store.sessions.find(token, this.options);
      const a = s && this.engine.store.accounts.get(s.login);
      if (s && a && !a.disabled)
        return { login: a.login, role: a.role, finess: a.finess, via: 'session', csrf: s.csrf };
    }
    const auth = req.headers.authorization;
    if (auth?.startsWith('Basic ')) {
      const key = crypto.createHash('sha256').update(auth).digest('hex');
      const cached = this.basicCache.get(key);
      let account = cached && cached.until > Date.now() ? cached.account : null;
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
      return { login: account.login, role: account.role, finess: account.finess, via: 'basic', csrf: null };
    }
    return null;
  }

  /** Registers the checks every route goes through. */
  install(app: FastifyInstance): void {
    app.decorateRequest('user', null);
    app.addHook('onRequest', async (req, reply) => {
      const config = req.routeOptions.config;
      if (config.public) return;
      req.user = await this.identify(req);
      if (!req.user) return this.unauthenticated(req, reply);
      // No route matched: let the 404 answer, but only to a logged-in user.
      if (req.routeOptions.url === undefined) return;
      if (!config.roles?.includes(req.user.role)) {
        // Thrown, not sent: the server's error handler answers a page view with a page, the API with JSON.
        throw Object.assign(new Error(`role ${req.user.role} may not do this`), {
          statusCode: 403,
          code: 'FORBIDDEN',
        });
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
