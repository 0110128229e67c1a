import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { until } from '../support/engine-harness.ts';
import { basic, session, startDashboard, users, type Dashboard, type UserKey } from './dashboard-harness.ts';

describe('dashboard JSON API, metrics and pages over HTTP', () => {
  let d: Dashboard;
  before(async () => {
    d = await startDashboard();
  });
  after(() => d.stop());

  const api = async (url: string, u: UserKey = 'operator', init: RequestInit = {}) => {
    const res = await fetch(`${d.base}${url}`, {
      ...init,
      headers: { authorization: basic(u), ...init.headers },
    });
    return {
      status: res.status,
      body: res.headers.get('content-type')?.includes('json') ? await res.json() : await res.text(),
    };
  };

  async function dropFile(name: string, content: string): Promise<number> {
    fs.writeFileSync(path.join(d.inbox, name), content);
    const found = await until(async () => {
      const r = await api(`/api/messages?text=${encodeURIComponent(name.split('.')[0]!)}`);
      const m = (r.body as { items: Array<{ id: number; status: string }> }).items[0];
      return m?.status === 'SENT' ? m : null;
    }, `${name} to be sent`);
    return found.id;
  }

  it('follows a dropped file: counters, search, stages, deliveries, replay, audit', async () => {
    const id = await dropFile(
      'adt-a28-0001.hl7',
      'MSH|^~\\&|SEND|FAC|DCC|DCC|20250101||ADT^A28|MSG0001|P|2.5\rPID|1||IPP1^^^FAC',
    );
    const channels = (await api('/api/channels')).body as {
      items: Array<{ id: string; counters: { received: number; sent: number } }>;
      next: null;
    };
    assert.equal(channels.next, null);
    assert.equal(channels.items[0]!.counters.received, 1);
    assert.equal(channels.items[0]!.counters.sent, 1);

    const detail = (await api(`/api/messages/${id}`)).body as {
      message: { meta: { fileName: string } };
      contents: Array<{ stage: string; text?: string }>;
      deliveries: Array<{ id: number; status: string; attempts: number }>;
    };
    assert.equal(detail.message.meta.fileName, 'adt-a28-0001.hl7');
    assert.equal(detail.contents[0]!.stage, 'raw');
    assert.match(detail.contents[0]!.text!, /^MSH/);
    assert.deepEqual(
      detail.deliveries.map((x) => [x.status, x.attempts]),
      [['SENT', 1]],
    );

    const replay = (await api(`/api/messages/${id}/replay`, 'operator', { method: 'POST' })).body as {
      messageId: number;
    };
    assert.ok(replay.messageId > id);
    const redo = await api(`/api/messages/${id}/deliveries/${detail.deliveries[0]!.id}/replay`, 'operator', {
      method: 'POST',
    });
    assert.equal(redo.status, 202);
    await until(
      async () =>
        d.h.engine.store.journal.delivery(detail.deliveries[0]!.id)?.attempts === 1 &&
        d.h.engine.store.journal.delivery(detail.deliveries[0]!.id)?.status === 'SENT',
      'the replayed delivery',
    );

    const trail = (await api(`/api/audit?actor=${users.operator.login}`, 'admin')).body as {
      items: Array<{ action: string; object: string; role: string }>;
    };
    const acts = trail.items.map((r) => `${r.action} ${r.object ?? ''}`.trim());
    assert.ok(acts.includes(`message-read message:${id}`));
    assert.ok(acts.includes(`message-replay message:${id}`));
    assert.ok(acts.includes(`delivery-replay delivery:${detail.deliveries[0]!.id}`));
    assert.ok(trail.items.every((r) => r.role === 'operator'));
    assert.deepEqual(
      { ...((await api('/api/audit/verify', 'admin')).body as object), head: undefined, rows: undefined },
      { ok: true, head: undefined, rows: undefined },
    );
  });

  it('pages through messages with a keyset cursor', async () => {
    for (let i = 0; i < 5; i++)
      await d.h.engine.dispatch('drop', {
        content: Buffer.from(`page ${i}`),
        meta: { fileName: `page-${i}.txt` },
      });
    const first = (await api('/api/messages?text=page&limit=2')).body as {
      items: Array<{ id: number }>;
      next: string;
    };
    const second = (await api(`/api/messages?text=page&limit=2&after=${first.next}`)).body as {
      items: Array<{ id: number }>;
    };
    assert.equal(first.items.length, 2);
    assert.ok(second.items[0]!.id < first.items[1]!.id);
    assert.equal((await api('/api/messages?from=yesterday')).status, 400);
  });

  it('deploys, pauses, resumes and undeploys a channel, audited with the acting user', async () => {
    for (const action of ['pause', 'resume', 'undeploy', 'deploy']) {
      const r = await api(`/api/channels/drop/${action}`, 'operator', { method: 'POST' });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
    assert.equal(d.h.engine.channel('drop').state, 'STARTED');
    const acts = d.h.engine.store.audit.search({ actor: users.operator.login }).items.map((r) => r.action);
    assert.deepEqual(acts.slice(0, 4), [
      'channel-deploy',
      'channel-undeploy',
      'channel-resume',
      'channel-pause',
    ]);
    assert.equal((await api('/api/channels/nope/pause', 'operator', { method: 'POST' })).status, 404);
  });

  it('serves Prometheus metrics, readiness, stats and the OpenAPI document', async () => {
    const metrics = (await api('/metrics', 'viewer')).body as string;
    assert.match(metrics, /^onco_received_total\{channel="drop"\} \d+$/m);
    assert.match(metrics, /^onco_message_latency_seconds_bucket\{channel="drop",le="\+Inf"\} \d+$/m);
    assert.match(metrics, /^onco_queue_depth\{channel="drop",destination="out"\} \d+$/m);
    assert.equal((await api('/ready', 'viewer')).status, 200);
    const stats = (await api(`/api/stats?year=${new Date().getUTCFullYear()}`, 'viewer')).body as {
      figures: Record<string, { total: number; available: boolean }>;
    };
    assert.equal(stats.figures.newUsers!.total, Object.keys(users).length);
    assert.equal(stats.figures.rcpSessions!.available, true);
    const doc = (await api('/api/openapi.json', 'viewer')).body as {
      openapi: string;
      paths: Record<string, Record<string, { parameters: Array<{ name: string }> }>>;
    };
    assert.equal(doc.openapi, '3.1.0');
    assert.deepEqual(
      doc.paths['/api/messages/{id}']!.get!.parameters.map((p) => p.name),
      ['id'],
    );
    assert.ok(doc.paths['/api/messages']!.get!.parameters.some((p) => p.name === 'text'));
    assert.ok(doc.paths['/api/health']);
  });

  it('shows HL7 one segment a line and XML indented on the message page', async () => {
    const hl7 = await d.h.engine.dispatch('drop', {
      content: Buffer.from('MSH|^~\\&|A\rPID|1||X\rOBX|1|TX'),
      meta: { fileName: 'seg.hl7' },
    });
    const xml = await d.h.engine.dispatch('drop', {
      content: Buffer.from('<?xml version="1.0"?><ClinicalDocument><title>CR</title></ClinicalDocument>'),
      contentType: 'text/xml',
      meta: { fileName: 'cda.xml' },
    });
    const s = await session(d.base, 'viewer');
    const page = await (await s.get(`/messages/${hl7.messageId}`)).text();
    const raw = /<pre class="hl7">(.*?)<\/pre>/s.exec(page)?.[1] ?? '';
    assert.deepEqual(
      [...raw.matchAll(/<span class="seg"><b>([A-Z0-9]{3})<\/b>/g)].map((m) => m[1]),
      ['MSH', 'PID', 'OBX'],
    );
    const xmlPage = await (await s.get(`/messages/${xml.messageId}`)).text();
    assert.match(
      xmlPage,
      /&lt;ClinicalDocument&gt;\n {2}&lt;title&gt;CR&lt;\/title&gt;\n&lt;\/ClinicalDocument&gt;/,
    );
  });
});
