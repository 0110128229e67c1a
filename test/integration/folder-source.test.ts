// The local folder source against a real directory: what a hospital script dropping files relies on.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { builtinRegistry } from '../../channels/builtins.ts';
import { startEngine, until, type Harness } from '../support/engine-harness.ts';
import { makeSink, type Sink } from '../support/sink.ts';

describe('folder source', () => {
  let h: Harness;
  let sink: Sink;
  let inbox: string;

  beforeEach(async () => {
    sink = makeSink();
    h = await startEngine({
      registry: builtinRegistry().register(sink.spec),
      channels: [
        {
          id: 'drop',
          source: {
            type: 'folder',
            path: 'in',
            archive: 'archive',
            error: 'error',
            stableMs: 300,
            pollMs: 200,
            maxFileBytes: 1000,
          },
          destinations: [{ name: 'out', type: 'test-sink' }],
        },
      ],
    });
    inbox = path.join(h.dataDir, 'in');
  });
  afterEach(() => h.stop());

  it('takes a file, journals it, then moves it to the archive', async () => {
    fs.writeFileSync(path.join(inbox, 'report.txt'), 'content');
    await until(() => sink.received.length === 1, 'delivery');
    assert.equal(sink.received[0]!.content.toString(), 'content');
    assert.equal(sink.received[0]!.meta.fileName, 'report.txt');
    await until(
      () =>
        fs.existsSync(path.join(h.dataDir, 'archive', 'report.txt')) &&
        !fs.existsSync(path.join(inbox, 'report.txt')),
      'file moved from the inbox to the archive',
    );
  });

  it('leaves NAME.part and NAME.tmp alone until they are renamed', async () => {
    fs.writeFileSync(path.join(inbox, 'big.hl7.part'), 'first half');
    fs.writeFileSync(path.join(inbox, 'other.tmp'), 'x');
    // Written after them and named after them in sort order: once it is delivered, the source has
    // judged the two others stable too, and would have taken them first.
    fs.writeFileSync(path.join(inbox, 'zz-after.txt'), 'after');
    await until(() => sink.received.length > 0, 'the file written after them delivered');
    await until(
      () => fs.existsSync(path.join(h.dataDir, 'archive', 'zz-after.txt')),
      'zz-after.txt archived',
    );
    assert.deepEqual(
      sink.received.map((m) => m.meta.fileName),
      ['zz-after.txt'],
    );
    sink.received.length = 0;
    assert.ok(fs.existsSync(path.join(inbox, 'big.hl7.part')));
    assert.ok(fs.existsSync(path.join(inbox, 'other.tmp')));
    fs.appendFileSync(path.join(inbox, 'big.hl7.part'), ', second half');
    fs.renameSync(path.join(inbox, 'big.hl7.part'), path.join(inbox, 'big.hl7'));
    await until(() => sink.received.length === 1, 'delivery after rename');
    assert.equal(sink.received[0]!.content.toString(), 'first half, second half');
  });

  it('waits while a file is still growing, and takes it whole', async () => {
    const file = path.join(inbox, 'growing.txt');
    fs.writeFileSync(file, 'a');
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setTimeout(r, 20));
      fs.appendFileSync(file, 'a');
    }
    await until(() => sink.received.length === 1, 'delivery');
    assert.equal(sink.received[0]!.content.toString(), 'aaaaaa');
  });

  it('refuses an oversize file into error/ with NAME.error.txt, and records it as REJECTED', async () => {
    fs.writeFileSync(path.join(inbox, 'huge.bin'), Buffer.alloc(2000));
    const note = path.join(h.dataDir, 'error', 'huge.bin.error.txt');
    await until(() => fs.existsSync(note), 'error note');
    assert.match(fs.readFileSync(note, 'utf8'), /2000 bytes, over the limit of 1000 bytes \(maxFileBytes\)/);
    assert.ok(fs.existsSync(path.join(h.dataDir, 'error', 'huge.bin')));
    const [m] = h.engine.store.messageSearch.search({ channel: 'drop' }, {}).items;
    assert.equal(m?.status, 'REJECTED');
    assert.equal(sink.received.length, 0);
  });

  it('records the same file dropped again as a duplicate, archived under another name', async () => {
    fs.writeFileSync(path.join(inbox, 'same.txt'), 'twice');
    await until(() => fs.existsSync(path.join(h.dataDir, 'archive', 'same.txt')), 'first archive');
    fs.writeFileSync(path.join(inbox, 'same.txt'), 'twice');
    await until(() => fs.existsSync(path.join(h.dataDir, 'archive', 'same.txt.1')), 'second archive');
    assert.equal(sink.received.length, 1);
  });
});
