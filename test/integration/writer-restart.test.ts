// The engine outlives its writer thread: killed, the thread is started again and the engine takes
// files again; killed once too often, the health endpoint says the store is down, and why only to
// a logged-in user (a session opened before: a new login cannot be audited then).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { until } from '../support/engine-harness.ts';
import { session, startDashboard, type Dashboard } from './dashboard-harness.ts';

interface Health {
  status: string;
  store: { writer: string; restarts: number; lastError?: string | null };
}

describe('writer thread restart (engine and health endpoint)', function () {
  this.timeout(60_000);
  let d: Dashboard;
  afterEach(() => d.stop());

  const killThread = () => (d.h.engine.store.writer as unknown as { worker: Worker }).worker.terminate();
  const health = async (cookie?: string) => {
    const res = await fetch(`${d.base}/api/health`, cookie ? { headers: { cookie } } : {});
    return { code: res.status, body: (await res.json()) as Health };
  };

  it('restarts a killed writer thread: the health is ok again and a dropped file is received and delivered', async () => {
    d = await startDashboard();
    assert.deepEqual((await health()).body.store, { writer: 'up', restarts: 0 });
    await killThread();
    const back = await until(async () => {
      const h = await health();
      return h.body.store.writer === 'up' ? h : undefined;
    }, 'the writer thread back');
    assert.equal(back.code, 200);
    assert.equal(back.body.store.restarts, 1);
    fs.writeFileSync(path.join(d.inbox, 'after.txt'), 'after the restart');
    const outbox = path.join(d.h.dataDir, 'outbox');
    const written = await until(
      () =>
        fs.existsSync(outbox) ? fs.readdirSync(outbox).find((n) => n.endsWith('-after.txt')) : undefined,
      'the file delivered',
      20_000,
    );
    assert.equal(fs.readFileSync(path.join(outbox, written), 'utf8'), 'after the restart');
  });

  it('says 503 and writer failed once no restart is left; the reason only with a login', async () => {
    d = await startDashboard({ engine: { store: { writerRestarts: 0 } } });
    // Opened before: a login writes (its audit row), which no one can while the writer is down.
    const viewer = await session(d.base, 'viewer');
    await killThread();
    const anonymous = await health();
    assert.equal(anonymous.code, 503);
    assert.equal(anonymous.body.status, 'degraded');
    assert.deepEqual(anonymous.body.store, { writer: 'failed', restarts: 0 });
    const full = await health(viewer.cookie);
    assert.equal(full.code, 503);
    assert.equal(full.body.store.lastError, 'the store writer thread ended (exit code 1)');
  });
});
