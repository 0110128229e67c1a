// The engine's own life: the order of start, a database locked by another process, redeploying a
// channel whose file changed.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import Database from 'better-sqlite3';
import pino from 'pino';
import { builtinRegistry } from '../../channels/builtins.ts';
import type { Engine } from '../../channels/engine.ts';
import { identityWriterSpec } from '../../connectors/identity-writer.ts';
import type { DestinationSpec, SourceSpec } from '../../connectors/contract.ts';
import { startEngine, until, type Harness } from '../support/engine-harness.ts';
import { a28 } from '../support/pam.ts';
import { basic, session, startDashboard, type Dashboard } from './dashboard-harness.ts';
import { idleSource, makeSink } from '../support/sink.ts';

const fastRetry = { maxAttempts: 3, initialDelayMs: 20, maxDelayMs: 50, multiplier: 2, jitter: 0 };

describe('engine lifecycle', function () {
  this.timeout(30_000);
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.stop();
    h = undefined;
  });

  it('deploys every channel and resumes journaled work before it opens any source', async () => {
    const live: { engine?: Engine } = {};
    const atSourceStart: string[] = [];
    const watchingSource: SourceSpec = {
      ...idleSource,
      type: 'test-watching',
      create: () => ({
        start: async () => {
          atSourceStart.push(...live.engine!.status().map((c) => `${c.id}:${c.state}`));
        },
        stop: async () => undefined,
      }),
    };
    const sink = makeSink();
    const registry = builtinRegistry().register(sink.spec, watchingSource);
    // "a-relay" is deployed first and hands its messages to "b-target", deployed after it.
    const channels = [
      {
        id: 'a-relay',
        source: { type: 'test-watching' },
        destinations: [{ name: 'relay', type: 'channel-writer', channel: 'b-target', retry: fastRetry }],
      },
      {
        id: 'b-target',
        source: { type: 'test-watching' },
        destinations: [{ name: 'out', type: 'test-sink' }],
      },
    ];
    const first = await startEngine({ channels, registry, start: false });
    // Journaled by a previous run and not delivered yet: the work recovery resumes.
    const { messageId } = await first.engine
      .channel('a-relay')
      .receive({ content: Buffer.from('journaled before the restart') });
    await first.stop();

    h = await startEngine({
      channels,
      registry,
      dataDir: first.dataDir,
      configDir: first.configDir,
      start: false,
    });
    live.engine = h.engine;
    await h.engine.start();
    assert.deepEqual(
      atSourceStart.filter((s) => !/:(PAUSED|STARTED)$/.test(s)),
      [],
      'a source opened while a channel was not deployed yet',
    );
    const { journal } = h.engine.store;
    const [relay] = await until(() => {
      const ds = journal.deliveries(messageId);
      return ds.length > 0 && ds.every((d) => d.status === 'SENT') ? ds : undefined;
    }, 'the recovered message relayed');
    assert.equal(
      relay!.attempts,
      1,
      `relayed at the first attempt, not after a refusal: ${relay!.lastError}`,
    );
    await until(() => sink.received.length === 1, 'delivered by the target channel');
  });

  it('retries an identity filing that met a database locked by another connection, even past maxAttempts', async () => {
    let lockHolder: Database.Database | undefined;
    const release = (): void => {
      if (!lockHolder?.open) return;
      lockHolder.exec('ROLLBACK');
      lockHolder.close();
    };
    // The real identity-store writer; a second connection takes the write lock just before its
    // first filing, as an import or a backup would, and holds it until that filing failed (past the
    // writer's busy timeout): the engine logs the failure before it journals it. The first filing
    // runs with the processing result (a failed journal write, retried) or in the destination's
    // worker (a failed attempt, retried): either way a lock is "later", never a refusal.
    let met = false;
    const log = pino(
      { level: 'warn' },
      {
        write: (line: string) => {
          if (line.includes('delivery failed, will retry') || line.includes('JOURNAL_WRITE_FAILED')) {
            met = true;
            release();
          }
        },
      },
    );
    const lockedOnce: DestinationSpec<Record<string, unknown>> = {
      ...(identityWriterSpec as unknown as DestinationSpec<Record<string, unknown>>),
      type: 'test-identity-store-locked-once',
      create: (o, ctx) => {
        const inner = identityWriterSpec.create(o as never, ctx);
        return {
          filing: (msg) => {
            if (!lockHolder) {
              lockHolder = new Database(path.join(h!.dataDir, 'onco-relay.db'), { timeout: 0 });
              lockHolder.exec('BEGIN IMMEDIATE');
            }
            return inner.filing!(msg);
          },
        };
      },
    };
    h = await startEngine({
      directory: { establishments: [{ finess: '310000001', name: 'CHU A' }] },
      log,
      registry: builtinRegistry().register(lockedOnce, idleSource),
      channels: [
        {
          id: 'ids',
          source: { type: 'test-idle' },
          steps: [{ type: 'pam-fr', acceptTestIns: true }],
          destinations: [
            {
              name: 'identities',
              type: 'test-identity-store-locked-once',
              rules: {},
              retry: { ...fastRetry, maxAttempts: 1 },
            },
          ],
        },
      ],
    });
    const person = {
      ipp: 'L-1',
      finess: '310000001',
      birthName: 'LOCKTEST',
      given: 'ALEX',
      birthDate: '19800101',
      sex: 'M',
    } as const;
    const { messageId } = await h.engine.dispatch('ids', { content: Buffer.from(a28(person, 'L1')) });
    const { journal } = h.engine.store;
    const [d] = await until(() => {
      const ds = journal.deliveries(messageId);
      return ds.length > 0 && ds.every((x) => x.status === 'SENT' || x.status === 'ERROR') ? ds : undefined;
    }, 'the filing settled');
    assert.ok(lockHolder, 'the lock was taken');
    assert.equal(d!.status, 'SENT', `a locked database is not a refusal: ${d!.lastError}`);
    assert.ok(met, 'the filing met the lock');
    assert.ok(h.engine.store.patients.resolveIdentifier({ finess: '310000001', ipp: 'L-1' }));
  });
});

describe('redeploying a channel from its file (API)', function () {
  this.timeout(30_000);
  let d: Dashboard;
  beforeEach(async () => (d = await startDashboard()));
  afterEach(() => d.stop());

  const channelFile = (name: string) => path.join(d.h.configDir, 'channels', name);
  const edit = (name: string, change: (ch: Record<string, unknown>) => object) =>
    fs.writeFileSync(
      channelFile(name),
      YAML.stringify(change(YAML.parse(fs.readFileSync(channelFile('drop.yaml'), 'utf8')) as never)),
    );
  const deploy = async (id: string) => {
    const res = await fetch(`${d.base}/api/channels/${id}/deploy`, {
      method: 'POST',
      headers: { authorization: basic('operator') },
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const dropAndFind = async (name: string, outbox: string) => {
    fs.writeFileSync(path.join(d.inbox, name), `content of ${name}`);
    await until(
      () =>
        fs.existsSync(path.join(d.h.dataDir, outbox)) &&
        fs.readdirSync(path.join(d.h.dataDir, outbox)).some((n) => n.endsWith(name)),
      `${name} written to ${outbox}`,
    );
  };

  it('picks up an edited file: the new version runs, the page shows its YAML, the act is audited', async () => {
    edit('drop.yaml', (ch) => ({
      ...ch,
      destinations: [{ name: 'out', type: 'file-writer', path: 'outbox-v2', fileName: '{meta.fileName}' }],
    }));
    const { status, body } = await deploy('drop');
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body.state, 'STARTED');
    await dropAndFind('after-edit.txt', 'outbox-v2');
    const page = (await (
      await fetch(`${d.base}/api/channels/drop`, { headers: { authorization: basic('operator') } })
    ).json()) as { yaml: string };
    assert.match(page.yaml, /outbox-v2/);
    const [row] = d.h.engine.store.audit.search({ action: 'channel-deploy' }).items;
    assert.equal(row?.actor, 'oper1');
    assert.deepEqual(row?.detail, { state: 'STARTED' });
  });

  it('refuses an invalid file with its problems and leaves the running version untouched', async () => {
    edit('drop.yaml', (ch) => ({ ...ch, destinations: [], queueLimit: 'many' }));
    const { status, body } = await deploy('drop');
    assert.equal(status, 400);
    assert.equal(body.error, 'CHANNEL_FILE_INVALID');
    assert.match(String(body.message), /the running version is unchanged; its file has 2 problem\(s\)/);
    assert.match(String(body.message), /drop\.yaml:\d+: \/destinations: must NOT have fewer than 1 items/);
    assert.match(String(body.message), /drop\.yaml:\d+: \/queueLimit: /);
    assert.equal(d.h.engine.channel('drop').state, 'STARTED');
    await dropAndFind('still-running.txt', 'outbox');
  });

  it('deploys a new file, and undeploys a channel whose file was removed', async () => {
    edit('extra.yaml', (ch) => ({
      ...ch,
      id: 'extra',
      name: 'Extra',
      source: { type: 'folder', path: 'inbox-extra', stableMs: 30 },
      destinations: [{ name: 'out', type: 'file-writer', path: 'outbox-extra', fileName: '{meta.fileName}' }],
    }));
    const added = await deploy('extra');
    assert.equal(added.status, 200, JSON.stringify(added.body));
    assert.equal(added.body.state, 'STARTED');
    fs.writeFileSync(path.join(d.h.dataDir, 'inbox-extra', 'new.txt'), 'new channel');
    await until(
      () => fs.existsSync(path.join(d.h.dataDir, 'outbox-extra', 'new.txt')),
      'new channel delivers',
    );

    fs.rmSync(channelFile('extra.yaml'));
    const removed = await deploy('extra');
    assert.equal(removed.status, 200, JSON.stringify(removed.body));
    assert.deepEqual(removed.body, { id: 'extra', state: 'REMOVED' });
    const list = (await (
      await fetch(`${d.base}/api/channels`, { headers: { authorization: basic('operator') } })
    ).json()) as { items: Array<{ id: string }> };
    assert.deepEqual(
      list.items.map((c) => c.id),
      ['drop'],
    );
    const again = await deploy('extra');
    assert.equal(again.status, 404);
    assert.equal(again.body.error, 'CHANNEL_UNKNOWN');
  });

  it("redeploys from the channel page's button, as an operator's session", async () => {
    edit('drop.yaml', (ch) => ({
      ...ch,
      destinations: [{ name: 'out', type: 'file-writer', path: 'outbox-page', fileName: '{meta.fileName}' }],
    }));
    const s = await session(d.base, 'operator');
    const page = await (await s.get('/channels/drop')).text();
    assert.match(page, /<button type="submit" name="do" value="deploy">redeploy from file<\/button>/);
    const res = await s.post('/channels/drop/deploy');
    assert.equal(res.status, 303);
    assert.equal(res.headers.get('location'), '/channels/drop');
    await dropAndFind('from-page.txt', 'outbox-page');
  });
});
