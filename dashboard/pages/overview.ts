// The overview (every channel, live counters, throughput) and the channel page (YAML, controls).
import type { FastifyInstance } from 'fastify';
import type { Engine } from '../../channels/engine.ts';
import type { ThroughputSeries } from '../../store/stats.ts';
import { channelActions, controlChannel, type ChannelAction } from '../actions.ts';
import { channelSummary, channelYaml } from '../api/channels.ts';
import { operators, staff } from '../auth.ts';
import { barChart } from '../charts.ts';
import { html, type Html } from '../html.ts';
import { actionButton, emptyState, sendError, sendPage } from './layout.ts';

const liveCell = (id: string, field: string, value: unknown) =>
  html`<td data-ch="${id}" data-f="${field}">${value}</td>`;

/** Throughput is a scan of the time index: computed at most once a minute per window. */
function cachedThroughput(engine: Engine) {
  const cache = new Map<number, { at: number; series: ThroughputSeries }>();
  return (windowMs: number, bucketMs: number): number[] => {
    const now = Date.now();
    let hit = cache.get(windowMs);
    if (!hit || now - hit.at > 60_000) {
      hit = { at: now, series: engine.store.stats.throughput(now - windowMs, bucketMs, now) };
      cache.set(windowMs, hit);
    }
    const total = Array(Math.ceil(windowMs / bucketMs)).fill(0) as number[];
    for (const s of Object.values(hit.series.channels)) s.forEach((n, i) => (total[i] = (total[i] ?? 0) + n));
    return total;
  };
}

type Summary = ReturnType<typeof channelSummary>;

/** Every channel with its live counters: the overview's first table and the Channels page. */
function channelTable(channels: Summary[], o: { withSource?: boolean } = {}): Html {
  if (channels.length === 0)
    return emptyState(
      'no-channels',
      'No channel is configured: add a file to config/channels/ (see `onco-relay docs`), then restart or deploy it.',
    );
  return html`<table id="channels">
    <thead>
      <tr>
        <th>Channel</th>
        ${o.withSource ? html`<th>Source</th>` : ''}
        <th>State</th>
        <th>Received</th>
        <th>Sent</th>
        <th>Filtered</th>
        <th>Errors</th>
        <th>Queued</th>
        <th>Last error</th>
        ${o.withSource ? html`<th></th>` : ''}
      </tr>
    </thead>
    <tbody>
      ${channels.map(
        (c) =>
          html`<tr data-channel="${c.id}">
            <td><a href="/channels/${encodeURIComponent(c.id)}">${c.name}</a></td>
            ${o.withSource ? html`<td>${c.source.type}${c.source.detail ? html` <span class="muted">${c.source.detail}</span>` : ''}</td>` : ''}
            <td data-ch="${c.id}" data-f="state" class="state-${c.state}">${c.state}</td>
            ${liveCell(c.id, 'received', c.counters.received)}${liveCell(c.id, 'sent', c.counters.sent)}
            ${liveCell(c.id, 'filtered', c.counters.filtered)}${liveCell(c.id, 'errored', c.counters.errored)}
            ${liveCell(c.id, 'queueDepth', c.queueDepth)}
            <td class="error" data-ch="${c.id}" data-f="lastError">${c.lastError}</td>
            ${o.withSource ? html`<td><a href="/messages?channel=${encodeURIComponent(c.id)}">Messages</a></td>` : ''}
          </tr>`,
      )}
    </tbody>
  </table>`;
}

/** `-60 min` … `now`: where each bar of a recent-throughput chart sits in time. */
function agoLabels(buckets: number, bucketMs: number): string[] {
  const unit = buckets * bucketMs > 3 * 3600_000 ? 3600_000 : 60_000;
  const name = unit === 3600_000 ? 'h' : 'min';
  return Array.from({ length: buckets }, (_, i) => {
    const ago = Math.round(((buckets - i) * bucketMs) / unit);
    return i === buckets - 1 ? 'now' : `-${ago} ${name}`;
  });
}

export function registerOverviewPages(app: FastifyInstance, engine: Engine): void {
  const throughput = cachedThroughput(engine);
  app.get('/', { config: { roles: [...staff, 'establishment', 'lab'] } }, async (req, reply) => {
    if (req.user!.role === 'establishment' || req.user!.role === 'lab')
      return reply.redirect('/my-files', 303);
    const hour = throughput(3600_000, 60_000);
    const day = throughput(86_400_000, 900_000);
    return sendPage(
      req,
      reply,
      'Overview',
      html`${channelTable(engine.status().map(channelSummary))}
        <p class="muted">Counters since the engine started; live.</p>
        ${barChart(hour, {
          title: 'Messages received per minute, last hour',
          unit: 'messages',
          labels: agoLabels(hour.length, 60_000),
          id: 'chart-hour',
          empty: 'No message received in the last hour.',
        })}
        ${barChart(day, {
          title: 'Messages received per 15 minutes, last 24 hours',
          unit: 'messages',
          labels: agoLabels(day.length, 900_000),
          id: 'chart-day',
          empty: 'No message received in the last 24 hours.',
        })}`,
      { live: true },
    );
  });

  app.get('/channels', { config: { roles: staff } }, async (req, reply) =>
    sendPage(
      req,
      reply,
      'Channels',
      html`${channelTable(engine.status().map(channelSummary), { withSource: true })}
        <p class="muted">
          Counters since the engine started; live. Open a channel for its configuration and controls.
        </p>`,
      { live: true },
    ),
  );

  app.get('/channels/:id', { config: { roles: staff } }, async (req, reply) => {
    const { id } = req.params as { id: string };
    const ch = engine.channels.get(id);
    if (!ch) return sendError(req, reply, 404, `no channel "${id}"`);
    const c = channelSummary(ch.status());
    const canAct = operators.includes(req.user!.role);
    return sendPage(
      req,
      reply,
      `Channel ${c.name}`,
      html`<p>
          State: <strong data-ch="${c.id}" data-f="state" class="state-${c.state}">${c.state}</strong> ·
          received <span data-ch="${c.id}" data-f="received">${c.counters.received}</span> · sent
          <span data-ch="${c.id}" data-f="sent">${c.counters.sent}</span> · errors
          <span data-ch="${c.id}" data-f="errored">${c.counters.errored}</span> · queued
          <span data-ch="${c.id}" data-f="queueDepth">${c.queueDepth}</span>
        </p>
        ${c.lastError ? html`<p class="error">Last error: ${c.lastError}</p>` : ''}
        ${canAct ? html`<p>${channelActions.map((a) => actionButton(req.user, `/channels/${encodeURIComponent(id)}/${a}`, a === 'deploy' && c.state !== 'UNDEPLOYED' ? 'redeploy from file' : a, a))}</p>` : ''}
        <p><a href="/messages?channel=${encodeURIComponent(id)}">Messages of this channel</a></p>
        <h2>Configuration (read-only)</h2>
        <pre id="yaml">${channelYaml(engine, id) ?? '(no file)'}</pre>`,
      { live: true },
    );
  });

  app.post('/channels/:id/:action', { config: { roles: operators } }, async (req, reply) => {
    const { id, action } = req.params as { id: string; action: string };
    if (!(channelActions as readonly string[]).includes(action))
      return sendError(req, reply, 404, `no action "${action}"`);
    const state = await controlChannel(engine, req, id, action as ChannelAction);
    return reply.redirect(state === 'REMOVED' ? '/' : `/channels/${encodeURIComponent(id)}`, 303);
  });
}
