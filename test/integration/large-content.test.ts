// Large content through a real engine (issue 14 item 5): a 200 MB file uploaded with OpenSSH `sftp`
// and one dropped in a watched folder are kept as files beside the database (data/blobs, named by
// their SHA-256), processed by a step that reads them in chunks, and written out byte-identical —
// digests compared, never buffers; a step's large output is a blob too. An identical copy is one
// more reference to the same file; pruning deletes the file with its last message; a kill -9
// between the file and its commit leaves no orphan; a blob that went missing or was altered ends
// its message in ERROR at start.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { builtinRegistry } from '../../channels/builtins.ts';
import type { StepSpec } from '../../transformers/contract.ts';
import { Store } from '../../store/store.ts';
import { startEngine, tempDir, until, type Harness } from '../support/engine-harness.ts';
import { openssh } from '../support/openssh-sftp.ts';
import { freePort } from '../support/ports.ts';
import { generate, sha256Of } from '../support/large-file.ts';
import { keyAccount } from '../support/ssh-account.ts';
import { journalOne } from '../support/journaled.ts';

const MiB = 1024 * 1024;
const SIZE = 200 * MiB;

/** A step that reads its input in chunks (never whole) and passes it on: `meta.bytesSeen` says it read it all. */
const countingStep: StepSpec<Record<string, unknown>> = {
  kind: 'step',
  type: 'test-count-bytes',
  summary: 'test step reading the content in chunks',
  schema: { properties: {} },
  create: () => async (input) => {
    let seen = 0;
    if (input.file) for await (const chunk of input.file.chunks()) seen += chunk.length;
    else seen = input.content.length;
    input.meta = { ...input.meta, bytesSeen: seen };
    return input;
  },
};

/** The channel's messages, newest first, as the journal has them. */
function messagesOf(h: Harness, channel: string) {
  const { items } = h.engine.store.messageSearch.search({ channel });
  return items.map((i) => h.engine.store.journal.message(i.id)!);
}

const blobFiles = (dataDir: string): string[] =>
  fs.readdirSync(path.join(dataDir, 'blobs')).filter((n) => !n.startsWith('.'));

describe('large content kept as files (real engine)', function () {
  this.timeout(300_000);
  let dir: string;
  let h: Harness | undefined;

  before(() => {
    dir = tempDir('onco-large-');
  });
  afterEach(async () => {
    await h?.stop();
    h = undefined;
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('stores, processes and writes out a 200 MB SFTP upload and a 200 MB folder file byte-identical', async function () {
    const port = await freePort();
    h = await startEngine({
      registry: builtinRegistry().register(countingStep),
      directory: { establishments: [{ finess: '750000001', name: 'Lab', kind: 'molecular-lab' }] },
      start: false,
      channels: [
        {
          id: 'big-sftp',
          source: { type: 'sftp-drop', folder: 'molecular', port, maxFileBytes: 300 * MiB },
          steps: [{ type: 'test-count-bytes' }],
          destinations: [{ name: 'out', type: 'file-writer', path: 'out-sftp', fileName: '{meta.fileName}' }],
        },
        {
          id: 'big-folder',
          source: { type: 'folder', path: 'inbox', maxFileBytes: 300 * MiB, stableMs: 200, pollMs: 200 },
          steps: [{ type: 'test-count-bytes' }],
          destinations: [
            { name: 'out', type: 'file-writer', path: 'out-folder', fileName: '{meta.fileName}' },
          ],
        },
      ],
    });
    const key = await keyAccount(h.engine.store, dir, 'lab', 'lab', '750000001');
    await h.engine.start();
    const { dataDir } = h;
    const { journal } = h.engine.store;

    const local = path.join(dir, 'wgs.vcf');
    const expected = await generate(local, SIZE);
    const put = await openssh(port, 'lab', key, [`put ${local} /in/molecular/wgs.vcf`]);
    assert.equal(put.code, 0, put.stderr);
    const viaSftp = path.join(dataDir, 'out-sftp', 'wgs.vcf');
    await until(() => fs.existsSync(viaSftp), 'the SFTP upload written out', 120_000);
    assert.equal(await sha256Of(viaSftp), expected, 'written out byte-identical');

    // The same bytes again, through the folder: one more reference to the same file, not a copy.
    fs.mkdirSync(path.join(dataDir, 'inbox'), { recursive: true });
    fs.copyFileSync(local, path.join(dataDir, 'inbox', 'wgs-copy.vcf'));
    const viaFolder = path.join(dataDir, 'out-folder', 'wgs-copy.vcf');
    await until(() => fs.existsSync(viaFolder), 'the folder file written out', 120_000);
    assert.equal(await sha256Of(viaFolder), expected, 'written out byte-identical');

    for (const channel of ['big-sftp', 'big-folder']) {
      const m = await until(() => {
        const [found] = messagesOf(h!, channel);
        return found && found.status !== 'RECEIVED' && found.status !== 'TRANSFORMED' ? found : null;
      }, `${channel} done`);
      assert.equal(m.status, 'SENT', `${channel}: ${m.error}`);
      assert.equal(m.meta.bytesSeen, SIZE, `${channel}: the step read the whole file in chunks`);
      const raw = journal.content(m.id, 'raw')!;
      assert.deepEqual(raw.blob, { digest: expected, size: SIZE });
      assert.equal(raw.content.length, 0, 'no bytes in the database');
      // The step passed the file on unchanged: the transformed stage is the same blob.
      assert.deepEqual(journal.content(m.id, 'transformed')!.blob, { digest: expected, size: SIZE });
    }
    assert.deepEqual(blobFiles(dataDir), [expected], 'one file for both messages');
    assert.equal(await sha256Of(path.join(dataDir, 'blobs', expected)), expected);
  });

  /** A folder channel whose files go out unchanged: what the smaller cases below journal through. */
  const folderChannel = (id: string) => ({
    id,
    source: { type: 'folder', path: `inbox-${id}`, stableMs: 50, pollMs: 100 },
    destinations: [{ name: 'out', type: 'file-writer', path: `out-${id}` }],
  });

  it('deletes a blob file with the last message that references it, at pruning', async () => {
    h = await startEngine({ channels: [folderChannel('prune')] });
    const { engine, dataDir } = h;
    const content = randomBytes(3 * MiB);
    const digest = createHash('sha256').update(content).digest('hex');
    const done = (n: number) =>
      until(() => {
        const list = messagesOf(h!, 'prune');
        return list.length === n && list.every((m) => m.status !== 'RECEIVED' && m.status !== 'TRANSFORMED')
          ? list
          : null;
      }, `${n} message(s) done`);
    fs.writeFileSync(path.join(dataDir, 'inbox-prune', 'a.bin'), content);
    const [first] = await done(1);
    await until(() => Date.now() > first!.receivedAt + 5, 'a later millisecond');
    fs.writeFileSync(path.join(dataDir, 'inbox-prune', 'b.bin'), content);
    const [second] = await done(2);
    assert.deepEqual(blobFiles(dataDir), [digest]);
    assert.deepEqual(engine.store.journal.content(second!.id, 'raw')!.blob, { digest, size: 3 * MiB });

    const days = engine.config.engine.store.pruneAfterDays * 86_400_000;
    assert.equal(await engine.prune(first!.receivedAt + 1 + days), 1, 'the first message pruned');
    assert.deepEqual(blobFiles(dataDir), [digest], 'kept while a message references it');
    assert.equal(await engine.prune(second!.receivedAt + 1 + days), 1, 'the second message pruned');
    assert.deepEqual(blobFiles(dataDir), [], 'deleted with its last message');
    assert.equal(engine.store.journal.blobKnown(digest), false);
  });

  it('keeps large transformed and sent contents as blobs: no large row, written out byte-identical, deleted at pruning', async () => {
    // A step that makes new bytes as large as its input, held in memory (no `file`): the engine
    // stages them as the received content is, instead of writing them into the journal's row,
    // after the processing steps and after a destination's.
    const reversing: StepSpec<Record<string, unknown>> = {
      kind: 'step',
      type: 'test-reverse',
      summary: 'test step returning its content reversed, as a new Buffer',
      schema: { properties: {} },
      create: () => (input) => ({
        content: Buffer.from(input.content).reverse(),
        contentType: input.contentType,
        meta: input.meta,
      }),
    };
    h = await startEngine({
      channels: [
        {
          ...folderChannel('reverse'),
          steps: [{ type: 'test-reverse' }],
          // Reversed back on the way out: the `sent` stage is the received bytes, the same blob.
          destinations: [
            { name: 'out', type: 'file-writer', path: 'out-reverse', steps: [{ type: 'test-reverse' }] },
          ],
        },
      ],
      registry: builtinRegistry().register(reversing),
    });
    const { engine, dataDir } = h;
    const content = randomBytes(3 * MiB);
    const reversed = Buffer.from(content).reverse();
    const digest = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    fs.writeFileSync(path.join(dataDir, 'inbox-reverse', 'a.bin'), content);
    const [m] = await until(() => {
      const list = messagesOf(h!, 'reverse');
      return list[0]?.status === 'SENT' ? list : null;
    }, 'the message sent');
    const outDir = path.join(dataDir, 'out-reverse');
    const [written] = fs.readdirSync(outDir);
    assert.deepEqual(fs.readFileSync(path.join(outDir, written!)), content, 'written out byte-identical');
    const transformed = engine.store.journal.content(m!.id, 'transformed')!;
    assert.deepEqual(transformed.blob, { digest: digest(reversed), size: 3 * MiB });
    assert.equal(transformed.content.length, 0, 'no bytes in the row');
    const sent = engine.store.journal.content(m!.id, 'sent', 'out')!;
    assert.deepEqual(sent.blob, { digest: digest(content), size: 3 * MiB });
    assert.equal(sent.content.length, 0, 'no bytes in the row');
    assert.deepEqual(blobFiles(dataDir).sort(), [digest(content), digest(reversed)].sort());

    const days = engine.config.engine.store.pruneAfterDays * 86_400_000;
    assert.equal(await engine.prune(m!.receivedAt + 1 + days), 1);
    assert.deepEqual(blobFiles(dataDir), [], 'both files deleted with their message');
  });

  it('leaves no orphan file after a kill -9 between writing a blob and its commit', async () => {
    const dataDir = tempDir('onco-blob-crash-');
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/blob-crash.ts', dataDir], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const signal = await new Promise((resolve) => child.on('exit', (_code, sig) => resolve(sig)));
    assert.equal(signal, 'SIGKILL', stderr);
    assert.equal(blobFiles(dataDir).length, 1, 'the crash left a file no commit references');

    h = await startEngine({ channels: [folderChannel('crash')], dataDir });
    assert.deepEqual(blobFiles(dataDir), [], 'swept at start');
  });

  it('ends a message whose blob is missing or altered in ERROR at start, sending nothing', async () => {
    const dataDir = tempDir('onco-blob-lost-');
    const store = new Store({ dataDir });
    const journaled: Array<{ id: number; digest: string }> = [];
    for (let i = 0; i < 2; i++) {
      const staged = await store.blobs.stage({ buffer: randomBytes(2 * MiB) });
      const messageId = await store.blobs.keep(staged, (blob) =>
        journalOne(store, 'lost', { blob, meta: { fileName: `f${i}.bin` } }),
      );
      journaled.push({ id: messageId, digest: staged.digest });
    }
    await store.close();
    fs.rmSync(path.join(dataDir, 'blobs', journaled[0]!.digest));
    const altered = path.join(dataDir, 'blobs', journaled[1]!.digest);
    const fd = fs.openSync(altered, 'r+');
    fs.writeSync(fd, Buffer.from('X'), 0, 1, 1000);
    fs.closeSync(fd);

    h = await startEngine({ channels: [folderChannel('lost')], dataDir });
    const { journal } = h.engine.store;
    const [missing, corrupt] = journaled.map((j) => journal.message(j.id)!);
    assert.equal(missing!.status, 'ERROR');
    assert.match(missing!.error!, /^BLOB_MISSING: /);
    assert.equal(corrupt!.status, 'ERROR');
    assert.match(corrupt!.error!, /^BLOB_CORRUPT: /);
    for (const j of journaled)
      assert.deepEqual(
        journal.deliveries(j.id).map((d) => d.status),
        ['ERROR'],
      );
    assert.deepEqual(fs.readdirSync(path.join(dataDir, 'out-lost')), [], 'nothing sent from bad bytes');
  });
});
