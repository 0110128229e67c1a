// /metrics (Prometheus text format 0.0.4) and /ready (per channel and connector readiness).
import type { FastifyInstance } from 'fastify';
import type { Engine } from '../channels/engine.ts';
import { latencyBuckets } from '../channels/metrics.ts';
import { staff } from './auth.ts';

const label = (v: string): string => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

const counters = [
  ['received', 'Messages journaled'],
  ['duplicates', 'Messages recorded as duplicates'],
  ['rejected', 'Messages rejected at the source'],
  ['filtered', 'Messages filtered out'],
  ['transformed', 'Messages that passed processing'],
  ['errored', 'Messages that failed processing'],
  ['sent', 'Deliveries sent'],
  ['sendFailures', 'Delivery attempts that failed'],
  ['deliveriesFailed', 'Deliveries that failed for good (alert: log code DELIVERY_FAILED)'],
  ['quarantined', 'Messages quarantined by the poison guard (alert: log code POISON_MESSAGE)'],
] as const;

const snake = (s: string): string => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

export function prometheusText(engine: Engine): string {
  const status = engine.status();
  const out: string[] = [];
  for (const [key, help] of counters) {
    const name = `onco_${snake(key)}_total`;
    out.push(`# HELP ${name} ${help}, per channel, since the process started.`, `# TYPE ${name} counter`);
    for (const c of status) out.push(`${name}{channel="${label(c.id)}"} ${c.metrics[key]}`);
  }
  out.push('# HELP onco_channel_up 1 when the channel is started.', '# TYPE onco_channel_up gauge');
  for (const c of status)
    out.push(`onco_channel_up{channel="${label(c.id)}",state="${c.state}"} ${c.state === 'STARTED' ? 1 : 0}`);
  out.push('# HELP onco_backlog Messages journaled and not yet processed.', '# TYPE onco_backlog gauge');
  for (const c of status) out.push(`onco_backlog{channel="${label(c.id)}"} ${c.backlog}`);
  out.push(
    '# HELP onco_queue_depth Deliveries waiting per destination queue.',
    '# TYPE onco_queue_depth gauge',
  );
  for (const c of status) {
    for (const [d, n] of Object.entries(c.queued)) {
      out.push(`onco_queue_depth{channel="${label(c.id)}",destination="${label(d)}"} ${n}`);
    }
  }
  const h = 'onco_message_latency_seconds';
  out.push(`# HELP ${h} Time from receipt to the last delivery.`, `# TYPE ${h} histogram`);
  for (const c of status) {
    const l = `channel="${label(c.id)}"`;
    // The channel's buckets are already cumulative (each observation counts in every bound above it).
    latencyBuckets.forEach((bound, i) =>
      out.push(`${h}_bucket{${l},le="${bound}"} ${c.metrics.latency.buckets[i]}`),
    );
    out.push(
      `${h}_bucket{${l},le="+Inf"} ${c.metrics.latency.count}`,
      `${h}_sum{${l}} ${c.metrics.latency.sum}`,
      `${h}_count{${l}} ${c.metrics.latency.count}`,
    );
  }
  return `${out.join('\n')}\n`;
}

export function registerMetrics(app: FastifyInstance, engine: Engine): void {
  app.get(
    '/metrics',
    { config: { roles: staff }, schema: { summary: 'Prometheus metrics', tags: ['monitoring'] } },
    async (_req, reply) =>
      reply.type('text/plain; version=0.0.4; charset=utf-8').send(prometheusText(engine)),
  );

  app.get(
    '/ready',
    {
      config: { roles: staff },
      schema: { summary: 'Readiness of every channel and its source connector', tags: ['monitoring'] },
    },
    async (_req, reply) => {
      const channels = engine.status().map((c) => ({
        id: c.id,
        state: c.state,
        connected: c.source.connected ?? false,
        lastError: c.lastError,
        source: c.source,
      }));
      const ready = channels.every(
        (c) => c.state === 'STARTED' || c.state === 'PAUSED' || c.state === 'UNDEPLOYED',
      );
      return reply.code(ready ? 200 : 503).send({ ready, channels });
    },
  );
}
