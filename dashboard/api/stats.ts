// /api/stats?year=YYYY: the region's yearly figures, with monthly series.
import type { FastifyInstance } from 'fastify';
import type { Engine } from '../../channels/engine.ts';
import { staff } from '../auth.ts';

export function registerStatsApi(app: FastifyInstance, engine: Engine): void {
  app.get(
    '/api/stats',
    {
      config: { roles: staff },
      schema: {
        summary:
          'Yearly figures: RCP sessions and forms, PPS, active and new users, new patients, patients in all, pathology reports and molecular results (also per lab)',
        tags: ['stats'],
        querystring: {
          type: 'object',
          properties: { year: { type: 'integer', minimum: 2000, maximum: 2100 } },
        },
      },
    },
    async (req) =>
      engine.store.stats.yearly((req.query as { year?: number }).year ?? new Date().getUTCFullYear()),
  );
}
