// /api/channels: state and counters of every channel; deploy (from its file), undeploy, pause, resume.
import type { FastifyInstance } from 'fastify';
import type { Engine } from '../../channels/engine.ts';
import type { ChannelStatus } from '../../channels/channel.ts';
import { channelActions, controlChannel, type ChannelAction, ActionError } from '../actions.ts';
import { operators, staff } from '../auth.ts';

export function channelSummary(s: ChannelStatus) {
  const { latency: _latency, ...counters } = s.metrics;
  return {
    id: s.id,
    name: s.name,
    state: s.state,
    source: s.source,
    backlog: s.backlog,
    queued: s.queued,
    queueDepth: s.backlog + Object.values(s.queued).reduce((a, b) => a + b, 0),
    lastError: s.lastError,
    counters: { ...counters },
  };
}

/** The YAML file a channel came from, as written (read-only in the dashboard). */
export function channelYaml(engine: Engine, id: string): string | null {
  return engine.config.channels.find((c) => c.config.id === id)?.text ?? null;
}

const idParam = { type: 'object', required: ['id'], properties: { id: { type: 'string' } } } as const;

export function registerChannelApi(app: FastifyInstance, engine: Engine): void {
  app.get(
    '/api/channels',
    {
      config: { roles: staff },
      schema: { summary: 'Every channel with its state and counters', tags: ['channels'] },
    },
    async () => ({ items: engine.status().map(channelSummary), next: null }),
  );

  app.get(
    '/api/channels/:id',
    {
      config: { roles: staff },
      schema: { summary: 'One channel, with its configuration file', tags: ['channels'], params: idParam },
    },
    async (req) => {
      const { id } = req.params as { id: string };
      const c = engine.channels.get(id);
      if (!c) throw new ActionError(404, 'CHANNEL_UNKNOWN', `no channel "${id}"`);
      return { ...channelSummary(c.status()), yaml: channelYaml(engine, id) };
    },
  );

  app.post(
    '/api/channels/:id/:action',
    {
      config: { roles: operators },
      schema: {
        summary:
          "Deploy (re-reads the channel's file: a new, edited or removed file is picked up), undeploy, pause or resume a channel (audited)",
        description:
          'deploy validates the file first: an invalid file is refused (400 CHANNEL_FILE_INVALID, every problem listed) and the running version keeps running; an edited file replaces the running version once it has drained; a removed file undeploys the channel (state REMOVED).',
        tags: ['channels'],
        params: {
          type: 'object',
          required: ['id', 'action'],
          properties: { id: { type: 'string' }, action: { enum: [...channelActions] } },
        },
      },
    },
    async (req) => {
      const { id, action } = req.params as { id: string; action: ChannelAction };
      const state = await controlChannel(engine, req, id, action);
      const c = engine.channels.get(id);
      return c ? channelSummary(c.status()) : { id, state };
    },
  );
}
