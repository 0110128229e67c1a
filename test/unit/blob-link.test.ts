// A document's bytes that the journal holds already are a hard link to the journal's blob (one
// inode, each directory its own name and lifetime), a copy where no link can be made (another file
// system: /dev/shm is a tmpfs); a missing or altered source is refused by name; the sweep of either
// directory deletes only its own name.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BlobError, BlobFiles } from '../../store/blob-files.ts';
import { tempDir } from '../support/engine-harness.ts';

const bytes = randomBytes(256 * 1024);
const ref = { digest: createHash('sha256').update(bytes).digest('hex'), size: bytes.length };

/** The journal's blobs and the documents' in `root`, the journal holding `bytes`. */
async function pair(root: string, journalRoot = root): Promise<{ journal: BlobFiles; documents: BlobFiles }> {
  const journal = new BlobFiles(path.join(journalRoot, 'blobs'), 0);
  const staged = await journal.stage({ buffer: bytes });
  (await journal.place({ ...staged, file: staged.file! })).release();
  const documents = new BlobFiles(path.join(root, 'documents'), 0, undefined, journal.dir!);
  return { journal, documents };
}

describe('document bytes linked from the journal (BlobFiles.linkNow)', function () {
  const made: string[] = [];
  const dir = (base?: string) => {
    const d = base ? fs.mkdtempSync(path.join(base, 'blob-link-')) : tempDir('blob-link-');
    made.push(d);
    return d;
  };
  afterEach(() => {
    for (const d of made.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });

  it('links the journal blob (one inode); bytes the journal holds given whole are linked too', async function () {
    const { journal, documents } = await pair(dir());
    assert.deepEqual(documents.linkNow(ref), ref);
    const [a, b] = [fs.statSync(documents.path(ref.digest)), fs.statSync(journal.path(ref.digest))];
    assert.equal(a.ino, b.ino);
    assert.equal(a.nlink, 2);
    assert.deepEqual(documents.linkNow(ref), ref, 'linking again is a no-op');
    fs.rmSync(documents.path(ref.digest));
    documents.putNow(bytes);
    assert.equal(fs.statSync(documents.path(ref.digest)).ino, b.ino, 'putNow links the same bytes');
  });

  it('copies where no link can be made (another file system), fsynced under its digest', async function () {
    if (!fs.existsSync('/dev/shm') || fs.statSync('/dev/shm').dev === fs.statSync(os.tmpdir()).dev)
      this.skip();
    const { journal, documents } = await pair(dir(), dir('/dev/shm'));
    documents.linkNow(ref);
    const copy = fs.statSync(documents.path(ref.digest));
    assert.notEqual(copy.ino, fs.statSync(journal.path(ref.digest)).ino);
    assert.equal(copy.nlink, 1);
    assert.deepEqual(fs.readFileSync(documents.path(ref.digest)), bytes);
    assert.deepEqual(fs.readdirSync(path.join(documents.dir!, '.staging')), []);
  });

  it('refuses a missing or altered journal blob by name, and keeps nothing', async function () {
    const { journal, documents } = await pair(dir());
    assert.throws(
      () => documents.linkNow({ ...ref, size: ref.size + 1 }),
      (e: unknown) => e instanceof BlobError && e.code === 'BLOB_CORRUPT',
    );
    fs.rmSync(journal.path(ref.digest));
    assert.throws(
      () => documents.linkNow(ref),
      (e: unknown) => e instanceof BlobError && e.code === 'BLOB_MISSING',
    );
    assert.equal(fs.existsSync(documents.path(ref.digest)), false);
  });

  it("each side's sweep deletes its own name only: the other keeps the bytes", async function () {
    const { journal, documents } = await pair(dir());
    documents.linkNow(ref);
    assert.equal(await documents.sweep(() => false, { staging: true }), 1);
    assert.deepEqual(fs.readFileSync(journal.path(ref.digest)), bytes);
    documents.linkNow(ref);
    assert.equal(await journal.sweep(() => false, { staging: true }), 1);
    assert.deepEqual(fs.readFileSync(documents.path(ref.digest)), bytes);
    assert.equal(fs.statSync(documents.path(ref.digest)).nlink, 1);
  });
});
