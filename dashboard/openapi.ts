// The OpenAPI document, generated from the schemas the routes declare (one source of truth).
import type { FastifyInstance, RouteOptions } from 'fastify';
import { everyone } from './auth.ts';

declare module 'fastify' {
  interface FastifySchema {
    summary?: string;
    description?: string;
    tags?: string[];
  }
}

interface Collected {
  method: string;
  url: string;
  schema: Record<string, unknown>;
  roles: readonly string[];
}

/** Every route registered after this call, in registration order (also used by the security tests). */
export function collectRoutes(app: FastifyInstance): RouteOptions[] {
  const routes: RouteOptions[] = [];
  app.addHook('onRoute', (r) => {
    routes.push(r);
  });
  return routes;
}

const toOpenApiPath = (url: string): string => url.replace(/:([A-Za-z_]+)/g, '{$1}');

function parameters(schema: Record<string, unknown>): unknown[] {
  const out: unknown[] = [];
  for (const [key, where] of [
    ['params', 'path'],
    ['querystring', 'query'],
  ] as const) {
    const s = schema[key] as { properties?: Record<string, unknown>; required?: string[] } | undefined;
    for (const [name, p] of Object.entries(s?.properties ?? {})) {
      out.push({
        name,
        in: where,
        required: where === 'path' || (s?.required ?? []).includes(name),
        schema: p,
      });
    }
  }
  return out;
}

export function openApiDocument(routes: RouteOptions[], version: string): object {
  const documented: Collected[] = routes
    .filter((r) => r.url.startsWith('/api/') || r.url === '/metrics' || r.url === '/ready')
    .flatMap((r) =>
      (Array.isArray(r.method) ? r.method : [r.method])
        .filter((m) => m !== 'HEAD')
        .map((method) => ({
          method: method.toLowerCase(),
          url: r.url,
          schema: (r.schema ?? {}) as Record<string, unknown>,
          roles: (r.config as { roles?: readonly string[]; public?: boolean } | undefined)?.public
            ? []
            : ((r.config as { roles?: readonly string[] } | undefined)?.roles ?? everyone),
        })),
    );
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of documented) {
    const { summary, tags, body, description } = r.schema as Record<string, unknown>;
    (paths[toOpenApiPath(r.url)] ??= {})[r.method] = {
      summary,
      description: [description, r.roles.length ? `Roles: ${r.roles.join(', ')}.` : 'No login needed.']
        .filter(Boolean)
        .join(' '),
      tags,
      parameters: parameters(r.schema),
      ...(body ? { requestBody: { content: { 'application/json': { schema: body } } } } : {}),
      ...(r.roles.length ? {} : { security: [] }),
      responses: {
        200: { description: 'OK' },
        401: { description: 'Not logged in' },
        403: { description: 'Role not allowed' },
      },
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Onco-Relay admin API', version },
    components: {
      securitySchemes: {
        basic: { type: 'http', scheme: 'basic' },
        session: { type: 'apiKey', in: 'cookie', name: 'onco_session' },
      },
    },
    security: [{ basic: [] }, { session: [] }],
    paths,
  };
}

export function registerOpenApi(app: FastifyInstance, routes: RouteOptions[]): void {
  let doc: object | undefined;
  app.get(
    '/api/openapi.json',
    { config: { roles: everyone }, schema: { summary: 'This document', tags: ['meta'] } },
    async () => (doc ??= openApiDocument(routes, process.env.npm_package_version ?? '0.1.0')),
  );
}
