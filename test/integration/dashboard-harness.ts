// A real engine with a folder channel, its accounts, and the dashboard on a loopback port.
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { AuthOptions } from '../../dashboard/auth.ts';
import { addAccount, startEngine, type Harness } from '../support/engine-harness.ts';
import { listenDashboard } from '../support/dashboard-listen.ts';

export const FINESS_A = '330000001';
export const FINESS_B = '330000002';
export const users = {
  admin: { login: 'admin1', password: 'admin-pass-1', role: 'admin' },
  operator: { login: 'oper1', password: 'oper-pass-1', role: 'operator' },
  viewer: { login: 'view1', password: 'view-pass-1', role: 'viewer' },
  hospA: { login: 'hosp-a', password: 'hosp-a-pass', role: 'establishment', finess: FINESS_A },
  hospB: { login: 'hosp-b', password: 'hosp-b-pass', role: 'establishment', finess: FINESS_B },
} as const;
export type UserKey = keyof typeof users;

export interface Dashboard {
  h: Harness;
  app: FastifyInstance;
  base: string;
  inbox: string;
  stop(): Promise<void>;
}

export async function startDashboard(
  options: { auth?: Partial<AuthOptions>; engine?: object } = {},
): Promise<Dashboard> {
  const h = await startEngine({
    engine: options.engine,
    channels: [
      {
        id: 'drop',
        name: 'File drop',
        source: {
          type: 'folder',
          path: 'inbox',
          archive: 'archive',
          error: 'error',
          stableMs: 30,
          contentType: 'text/plain',
        },
        destinations: [
          { name: 'out', type: 'file-writer', path: 'outbox', fileName: '{messageId}-{meta.fileName}' },
        ],
      },
    ],
  });
  for (const u of Object.values(users)) await addAccount(h.engine.store, u);
  const { app, base } = await listenDashboard(h.engine, options.auth);
  return {
    h,
    app,
    base,
    inbox: path.join(h.dataDir, 'inbox'),
    stop: async () => {
      await app.close();
      await h.stop();
      fs.rmSync(h.dataDir, { recursive: true, force: true });
      fs.rmSync(h.configDir, { recursive: true, force: true });
    },
  };
}

export const basic = (u: UserKey): string =>
  `Basic ${Buffer.from(`${users[u].login}:${users[u].password}`).toString('base64')}`;

const setCookies = (res: Response): string[] => res.headers.getSetCookie().map((c) => c.split(';')[0]!);
const csrfIn = (page: string): string => /name="_csrf" value="([^"]+)"/.exec(page)?.[1] ?? '';

export interface Session {
  cookie: string;
  csrf: string;
  get(url: string): Promise<Response>;
  post(url: string, form?: Record<string, string>): Promise<Response>;
}

/** Logs in through the form, as a browser would; returns a client bound to the session. */
export async function login(
  base: string,
  u: UserKey | { login: string; password: string },
  password: string = typeof u === 'string' ? users[u].password : u.password,
): Promise<Session | Response> {
  const who = typeof u === 'string' ? users[u] : u;
  const form = await fetch(`${base}/login`);
  const loginCookie = setCookies(form).join('; ');
  const res = await fetch(`${base}/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { cookie: loginCookie, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      _csrf: csrfIn(await form.text()),
      login: who.login,
      password,
      next: '/',
    }),
  });
  if (res.status !== 303) return res;
  const cookie = setCookies(res)
    .filter((c) => c.startsWith('onco_session='))
    .join('; ');
  const target = res.headers.get('location')!;
  const home = await fetch(`${base}${target}`, { headers: { cookie } });
  const csrf = csrfIn(await home.text());
  return {
    cookie,
    csrf,
    get: (url) => fetch(`${base}${url}`, { headers: { cookie, accept: 'text/html' }, redirect: 'manual' }),
    post: (url, body = { _csrf: csrf }) =>
      fetch(`${base}${url}`, {
        method: 'POST',
        redirect: 'manual',
        headers: { cookie, 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' },
        body: new URLSearchParams(body),
      }),
  };
}

export async function session(base: string, u: UserKey): Promise<Session> {
  const s = await login(base, u);
  if (s instanceof Response) throw new Error(`login of ${u} failed: ${s.status}`);
  return s;
}
