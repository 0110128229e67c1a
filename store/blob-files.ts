// Large content kept as files beside the database (`<data>/blobs/<sha256>`), so that memory does not
// grow with message size (DESIGN.md, rule 11). Content up to the threshold stays in the journal's
// rows; above it, it is written to a staging file while its SHA-256 is computed, fsynced, then renamed
// to its digest (and the directory fsynced) *before* the commit that references it. Named by content,
// an identical re-upload finds its file already there and keeps a reference, not a second copy.
//
// This class only moves files; which blob is still referenced is the journal's `blobs` table
// (store/journal.ts). A file is deleted only when no row knows it and no write in flight placed it:
// every placement pins its digest until the commit that references it has settled, and deletion
// checks the pin and the table under the same per-digest lock.
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { OncoError } from '../config/errors.ts';
import { reclaimAfter } from '../runtime/buffer-reclaim.ts';
import { syncDirectory, syncDirectorySync } from './sync-directory.ts';

/** A blob as the journal records it: plain data, safe to hand to the writer. */
export interface BlobRef {
  digest: string;
  size: number;
}

/**
 * Content a source handed over, ready to be journaled: held in memory up to the threshold, else a
 * finished, fsynced file in staging (or an existing blob, for a replay). Its digest is known.
 */
export interface StagedContent {
  readonly digest: string;
  readonly size: number;
  /** The bytes, when they are at most the threshold. */
  readonly content?: Buffer;
  /** The finished file, when above the threshold. */
  readonly file?: string;
}

/** What a source hands over: bytes, a finished file (moved when the source no longer needs it), or a stream. */
export type StageFrom =
  { buffer: Buffer } | { file: string; move?: boolean } | { stream: Readable | AsyncIterable<Uint8Array> };

/** A blob that is missing or whose bytes no longer match their digest. */
export class BlobError extends OncoError {
  declare readonly code: 'BLOB_MISSING' | 'BLOB_CORRUPT';
  constructor(code: BlobError['code'], digest: string, detail: string) {
    super(code, { params: { digest, detail } });
  }
}

const DIGEST = /^[0-9a-f]{64}$/;
const STAGING = '.staging';
const CHUNK = 1024 * 1024;
/** Why `link` may fail where a copy works: another file system, or one without hard links. */
const NO_LINK = new Set(['EXDEV', 'EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EMLINK']);

export class BlobFiles {
  readonly dir: string | null;
  /** Content larger than this (bytes) becomes a file; `Infinity` without a directory (`:memory:` stores). */
  readonly threshold: number;
  private readonly staging: string | null;
  /** Digests placed by a write whose commit has not settled yet: never deleted meanwhile. */
  private readonly pins = new Map<string, number>();
  private readonly locks = new Map<string, Promise<void>>();
  /** Whether a committed row references a digest (the journal's `blobs`); without it, only the sweep deletes. */
  private readonly known: ((digest: string) => boolean) | undefined;
  /** Another blob directory whose files `linkNow` keeps here too (the documents': the journal's). */
  private readonly linkSource: string | undefined;

  constructor(
    dir: string | null,
    threshold: number,
    known?: (digest: string) => boolean,
    linkSource?: string,
  ) {
    this.dir = dir;
    this.known = known;
    this.linkSource = linkSource;
    this.threshold = dir === null ? Infinity : threshold;
    this.staging = dir === null ? null : path.join(dir, STAGING);
    if (dir !== null) fs.mkdirSync(this.staging!, { recursive: true, mode: 0o700 });
  }

  /** Where a blob's file is. */
  path(digest: string): string {
    if (this.dir === null || !DIGEST.test(digest)) throw new Error(`no blob file for "${digest}"`);
    return path.join(this.dir, digest);
  }

  /** Makes content ready to be journaled: in memory up to the threshold, else a finished staging file. */
  async stage(from: StageFrom): Promise<StagedContent> {
    if ('buffer' in from) {
      const digest = sha256(from.buffer);
      if (from.buffer.length <= this.threshold)
        return { digest, size: from.buffer.length, content: from.buffer };
      return this.writeStaging([from.buffer]);
    }
    if ('file' in from) {
      const { size } = await fsp.stat(from.file);
      if (size <= this.threshold) {
        const content = await fsp.readFile(from.file);
        return { digest: sha256(content), size: content.length, content };
      }
      return from.move
        ? this.adopt(from.file)
        : this.writeStaging(fs.createReadStream(from.file, { highWaterMark: CHUNK }));
    }
    return this.stageStream(from.stream);
  }

  /** A stream stays in memory while it is at most the threshold, and spills to a staging file past it. */
  private async stageStream(source: Readable | AsyncIterable<Uint8Array>): Promise<StagedContent> {
    const it = (source as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
    const held: Uint8Array[] = [];
    let size = 0;
    for (;;) {
      const next = await it.next();
      if (next.done) {
        const content = Buffer.concat(held, size);
        return { digest: sha256(content), size, content };
      }
      held.push(next.value);
      size += next.value.length;
      if (size > this.threshold) break;
    }
    async function* spilled(): AsyncGenerator<Uint8Array> {
      yield* held.splice(0);
      // Iterating the rest through for-await closes the source if writing fails half-way.
      yield* { [Symbol.asyncIterator]: () => it };
    }
    return this.writeStaging(spilled());
  }

  /** An existing blob as staged content (a replay journals the same file again: one more reference). */
  existing(blob: BlobRef): StagedContent {
    return { digest: blob.digest, size: blob.size, file: this.path(blob.digest) };
  }

  /**
   * Keeps bytes as a blob at once, synchronously, for a writer inside its transaction (the
   * documents' filing, in the writer thread): staged, fsynced, renamed to its digest and the
   * directory fsynced before it returns, so before the commit that references it. Not pinned: only
   * for a directory that is swept when no such write is in flight (the documents', at start).
   */
  putNow(bytes: Uint8Array): BlobRef {
    const ref = { digest: sha256(bytes), size: bytes.length };
    const target = this.path(ref.digest);
    if (fs.existsSync(target)) return ref;
    // The same bytes kept by the journal already (a large file received whole): one more name.
    if (this.linkSource !== undefined && fs.existsSync(path.join(this.linkSource, ref.digest)))
      return this.linkNow(ref);
    const file = this.newStagingName();
    const fd = fs.openSync(file, 'wx', 0o600);
    try {
      for (let written = 0; written < bytes.length;)
        written += fs.writeSync(fd, bytes, written, bytes.length - written);
      fs.fsyncSync(fd);
    } catch (error) {
      fs.closeSync(fd);
      fs.rmSync(file, { force: true });
      throw error;
    }
    fs.closeSync(fd);
    fs.renameSync(file, target);
    syncDirectorySync(this.dir!);
    return ref;
  }

  /**
   * Keeps a blob of the `linkSource` directory (the journal's) here too, synchronously and before
   * the commit that names it, like `putNow`: a hard link, so that the bytes are on the disk once
   * while each directory keeps its own lifetime (pruning or a sweep removes one name, the bytes go
   * with the last). Where no link can be made (another file system, EXDEV) the file is copied and
   * fsynced. The source is the journal's committed (or pinned) blob: fsynced already, only the new
   * name needs the directory's fsync.
   */
  linkNow(ref: BlobRef): BlobRef {
    const target = this.path(ref.digest);
    if (this.linkSource === undefined) throw new Error(`no directory to link blob ${ref.digest} from`);
    const source = path.join(this.linkSource, ref.digest);
    let size: number;
    try {
      size = fs.statSync(source).size;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT')
        throw new BlobError('BLOB_MISSING', ref.digest, source);
      throw error;
    }
    if (size !== ref.size)
      throw new BlobError('BLOB_CORRUPT', ref.digest, `${source} holds ${size} bytes, expected ${ref.size}`);
    if (fs.existsSync(target)) return ref;
    try {
      fs.linkSync(source, target);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') return ref;
      if (!NO_LINK.has(code ?? '')) throw error;
      this.copyNow(source, target);
    }
    syncDirectorySync(this.dir!);
    return ref;
  }

  /** A copy where a hard link cannot be: staged, fsynced, then renamed to its name. */
  private copyNow(source: string, target: string): void {
    const file = this.newStagingName();
    try {
      fs.copyFileSync(source, file, fs.constants.COPYFILE_EXCL);
      const fd = fs.openSync(file, 'r+');
      try {
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      fs.renameSync(file, target);
    } catch (error) {
      fs.rmSync(file, { force: true });
      throw error;
    }
  }

  /**
   * Journals staged content: above the threshold its file is first placed (`place`), then `write`
   * commits the reference, the digest pinned meanwhile. When placing or the write fails, the file
   * goes at once (unless a row or another write in flight holds the same bytes): the sender is told
   * to send again, and the next start's sweep would be the only other way out of a full disk.
   */
  async keep<T>(
    staged: StagedContent | undefined,
    write: (blob: BlobRef | undefined) => Promise<T>,
  ): Promise<T> {
    if (!staged || staged.file === undefined) return write(undefined);
    const placed = await this.place({ ...staged, file: staged.file }).catch(async (error: unknown) => {
      await this.discard(staged);
      throw error;
    });
    try {
      return await write(placed.blob);
    } catch (error) {
      placed.release();
      const known = this.known;
      // The write's failure is what the caller must hear: a file that cannot go now is the sweep's.
      if (known) await this.dropUnknown(staged.digest, known).catch(() => false);
      throw error;
    } finally {
      placed.release();
    }
  }

  /**
   * Renames a staged file to its digest (or drops it when that blob exists already) and fsyncs the
   * directory, then pins the digest until `release`: call it once the commit that references the
   * blob has settled, so that no sweep deletes it meanwhile.
   */
  async place(staged: StagedContent & { file: string }): Promise<{ blob: BlobRef; release: () => void }> {
    const { digest, size, file } = staged;
    const target = this.path(digest);
    await this.locked(digest, async () => {
      if (file !== target) {
        if (await exists(target)) await fsp.rm(file, { force: true });
        else {
          await fsp.rename(file, target);
          await syncDirectory(this.dir!);
        }
      } else if (!(await exists(target))) {
        throw new BlobError('BLOB_MISSING', digest, target);
      }
      this.pins.set(digest, (this.pins.get(digest) ?? 0) + 1);
    });
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      const n = (this.pins.get(digest) ?? 1) - 1;
      if (n > 0) this.pins.set(digest, n);
      else this.pins.delete(digest);
    };
    return { blob: { digest, size }, release };
  }

  /** Deletes a staged file nothing will journal (a step's intermediate output). */
  async discard(staged: StagedContent): Promise<void> {
    if (staged.file !== undefined && path.dirname(staged.file) === this.staging)
      await fsp.rm(staged.file, { force: true });
  }

  /**
   * Deletes the blob files no journal row knows (`known` reads the journal), except those a write in
   * flight placed; empties staging when `staging` says no upload is in progress (the engine's start).
   * Returns how many files went.
   */
  async sweep(known: (digest: string) => boolean, options: { staging?: boolean } = {}): Promise<number> {
    if (this.dir === null) return 0;
    if (options.staging) {
      for (const name of await fsp.readdir(this.staging!))
        await fsp.rm(path.join(this.staging!, name), { force: true });
    }
    let removed = 0;
    for (const name of await fsp.readdir(this.dir)) {
      if (DIGEST.test(name) && (await this.dropUnknown(name, known))) removed++;
    }
    if (removed > 0) await syncDirectory(this.dir);
    return removed;
  }

  /** Deletes a blob's file unless a row knows it or a write in flight placed it; true when it went. */
  private async dropUnknown(digest: string, known: (digest: string) => boolean): Promise<boolean> {
    let removed = false;
    await this.locked(digest, async () => {
      // Read under the lock, right before deleting: a commit cannot reference it in between.
      if (this.pins.has(digest) || known(digest)) return;
      await fsp.rm(path.join(this.dir!, digest), { force: true });
      removed = true;
    });
    return removed;
  }

  /** Reads a blob whole, for a consumer that needs a Buffer (a step that does not stream). */
  read(blob: BlobRef): Buffer {
    try {
      return fs.readFileSync(this.path(blob.digest));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT')
        throw new BlobError('BLOB_MISSING', blob.digest, this.path(blob.digest));
      throw error;
    }
  }

  /** The first `bytes` of a blob: enough to answer for it (an HL7 file's MSH) without reading it whole. */
  head(blob: BlobRef, bytes: number): Buffer {
    const fd = fs.openSync(this.path(blob.digest), 'r');
    try {
      const buf = Buffer.alloc(Math.min(bytes, blob.size));
      return buf.subarray(0, fs.readSync(fd, buf, 0, buf.length, 0));
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Reads a blob through and compares its digest and size: null when intact, else why not. */
  async check(blob: BlobRef): Promise<BlobError | null> {
    const file = this.path(blob.digest);
    const hash = createHash('sha256');
    let size = 0;
    try {
      for await (const chunk of fs.createReadStream(file, {
        highWaterMark: CHUNK,
      }) as AsyncIterable<Buffer>) {
        hash.update(chunk);
        size += chunk.length;
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT')
        return new BlobError('BLOB_MISSING', blob.digest, file);
      throw error;
    }
    const digest = hash.digest('hex');
    if (digest === blob.digest && size === blob.size) return null;
    return new BlobError(
      'BLOB_CORRUPT',
      blob.digest,
      `${file} holds ${size} bytes of digest ${digest}, expected ${blob.size} bytes`,
    );
  }

  /** Streams content into a new staging file, hashing it on the way; fsynced before it is returned. */
  private async writeStaging(
    source: Readable | AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  ): Promise<StagedContent> {
    const file = this.newStagingName();
    const hash = createHash('sha256');
    const handle = await fsp.open(file, 'wx', 0o600);
    let size = 0;
    try {
      for await (const chunk of source as AsyncIterable<Uint8Array>) {
        hash.update(chunk);
        let written = 0;
        while (written < chunk.length) {
          const { bytesWritten } = await handle.write(chunk, written, chunk.length - written);
          written += bytesWritten;
        }
        size += chunk.length;
        reclaimAfter(chunk.length);
      }
      await handle.sync();
    } catch (error) {
      await handle.close().catch(() => undefined);
      await fsp.rm(file, { force: true });
      throw error;
    }
    await handle.close();
    return { digest: hash.digest('hex'), size, file };
  }

  /** Takes over a finished file the source is done with: hashed by reading it once, fsynced, moved. */
  private async adopt(from: string): Promise<StagedContent> {
    const hash = createHash('sha256');
    const handle = await fsp.open(from, 'r');
    let size = 0;
    try {
      for await (const chunk of handle.createReadStream({
        highWaterMark: CHUNK,
        autoClose: false,
      }) as AsyncIterable<Buffer>) {
        hash.update(chunk);
        size += chunk.length;
        reclaimAfter(chunk.length);
      }
      await handle.sync();
    } finally {
      await handle.close();
    }
    const file = this.newStagingName();
    try {
      await fsp.rename(from, file);
    } catch (error) {
      // Another file system: copy it, which the stream path does (and fsyncs).
      if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
      return this.writeStaging(fs.createReadStream(from, { highWaterMark: CHUNK }));
    }
    return { digest: hash.digest('hex'), size, file };
  }

  private newStagingName(): string {
    return path.join(this.staging!, randomBytes(12).toString('hex'));
  }

  /** Runs `op` alone for this digest: placing and deleting one blob never interleave. */
  private async locked(digest: string, op: () => Promise<void>): Promise<void> {
    const before = this.locks.get(digest) ?? Promise.resolve();
    const run = before.then(op);
    const settled = run.catch(() => undefined);
    this.locks.set(digest, settled);
    try {
      await run;
    } finally {
      if (this.locks.get(digest) === settled) this.locks.delete(digest);
    }
  }
}

function sha256(content: Uint8Array): string {
  return createHash('sha256').update(content).digest('hex');
}

async function exists(file: string): Promise<boolean> {
  return fsp.stat(file).then(
    () => true,
    () => false,
  );
}
