// Large content whose journal write fails (the writer thread is gone: JOURNAL_UNAVAILABLE) leaves no
// file behind: the sender heard "not stored" and sends again, so the staged or placed file is
// deleted at once rather than by the next start's sweep. A file that a journaled message shares
// (same bytes) stays.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { builtinRegistry } from '../../channels/builtins.ts';
import { startEngine, type Harness } from '../support/engine-harness.ts';
import { idleSource, makeSink } from '../support/sink.ts';
import { labMail, plainTransport, sendMail } from '../support/smtp-send.ts';

const MiB = 1024 * 1024;
const MAILBOX = 'pathology@dcc.test';

/** What is on disk beside the database: blob files, and what waits in staging. */
function blobDir(dataDir: string): { blobs: string[]; staging: string[] } {
  const dir = path.join(dataDir, 'blobs');
  return {
    blobs: fs.readdirSync(dir).filter((n) => !n.startsWith('.')),
    staging: fs.readdirSync(path.join(dir, '.staging')),
  };
}

describe('large content whose journal write fails leaves no file', function () {
  this.timeout(60_000);
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.stop();
    fs.rmSync(h!.dataDir, { recursive: true, force: true });
    h = undefined;
  });

  it('a 3 MiB mail answered 451 because the journal is unavailable: nothing left in blobs/ or its staging', async function () {
    h = await startEngine({
      registry: builtinRegistry().register(idleSource),
      engine: { store: { writerRestarts: 0 } },
      channels: [
        {
          id: 'mss-in',
          source: { type: 'smtp-inbox', mailbox: MAILBOX, port: 0 },
          destinations: [{ name: 'out', type: 'file-writer', path: 'outbox' }],
        },
      ],
    });
    const detail = h.engine.status().find((c) => c.id === 'mss-in')?.source.detail ?? '';
    const port = Number(/:(\d+) /.exec(detail)?.[1]);
    await (h.engine.store.writer as unknown as { worker: Worker }).worker.terminate();
    const body = 'A'.repeat(76).concat('\r\n').repeat(40_000);
    await assert.rejects(
      sendMail(plainTransport(port), MAILBOX, labMail(MAILBOX, 'big@labo', body)),
      (err: { responseCode?: number }) => err.responseCode === 451,
    );
    assert.deepEqual(blobDir(h.dataDir), { blobs: [], staging: [] });
  });

  it('a copy whose write fails leaves the file of the journaled message that holds the same bytes', async function () {
    const sink = makeSink();
    h = await startEngine({
      registry: builtinRegistry().register(idleSource, sink.spec),
      // The writer in this thread, so that this test can make the second write fail.
      engine: { store: { writer: 'inline' } },
      channels: [
        { id: 'c', source: { type: 'test-idle' }, destinations: [{ name: 'out', type: 'test-sink' }] },
      ],
    });
    const { engine } = h;
    const bytes = randomBytes(3 * MiB);
    const first = await engine.dispatch('c', { staged: await engine.store.blobs.stage({ buffer: bytes }) });
    const digest = engine.store.journal.content(first.messageId, 'raw')!.blob!.digest;
    engine.store.journal.receive = () => {
      throw new Error('refused');
    };
    const copy = await engine.store.blobs.stage({ buffer: bytes });
    await assert.rejects(engine.dispatch('c', { staged: copy }), /refused/);
    assert.deepEqual(blobDir(h.dataDir), { blobs: [digest], staging: [] });
  });
});
