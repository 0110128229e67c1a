// Local folder source: takes a file once it is stable, journals it, and only then moves it out of
// the inbox (to archive/, or to error/ with NAME.error.txt when it is refused).
//
// Watching is node's fs.watch on the one directory, as a hint, plus a periodic listing as a safety
// net. Not chokidar: it re-lists and lstat()s the whole directory on every change event, which is
// quadratic on a crowded inbox (measured here: 3,000 waiting files taken at ~60 files/s).
import { watch, type FSWatcher } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Source, SourceContext, SourceSpec } from './contract.ts';
import Type from 'typebox';
import { Default, type OptionsOf } from '../transformers/contract.ts';

const schema = Type.Object({
  path: Type.String({ description: 'Inbox folder (relative paths resolve against the data directory).' }),
  archive: Default(
    Type.Union([Type.String(), Type.Null()], {
      description: 'Where taken files go; null deletes them (the journal keeps the content).',
    }),
    null,
  ),
  error: Default(Type.String({ description: 'Where refused files go, each with NAME.error.txt.' }), 'error'),
  include: Default(Type.String({ description: 'Regular expression a file name must match.' }), '.*'),
  stableMs: Default(Type.Integer({ minimum: 0, description: 'Size and mtime must hold this long.' }), 500),
  maxFileBytes: Default(
    Type.Integer({
      minimum: 1,
      description:
        'Larger files are moved to the error folder instead of being journaled (a policy: large files are streamed, never held in memory).',
    }),
    52428800,
  ),
  contentType: Default(
    Type.String({ description: 'Content type recorded for every file of this folder.' }),
    'application/octet-stream',
  ),
  concurrency: Default(
    Type.Integer({ minimum: 1, description: 'Files journaled at once (group commit).' }),
    8,
  ),
  pollMs: Default(
    Type.Integer({ minimum: 50, description: 'Rescan period, a safety net for missed events.' }),
    2000,
  ),
});

export type FolderSourceOptions = OptionsOf<typeof schema>;

/** Names still being written by a cooperating client: taken only once renamed. */
const inProgress = /\.(part|tmp)$/i;

/** How many names, oldest first, one pass looks at: bounds the cost of a pass in a crowded inbox. */
const LOOK_AHEAD = 256;

export class FolderSource implements Source {
  private watcher: FSWatcher | undefined;
  /** Names announced by the watcher or the rescan, with what the last look saw. */
  private readonly candidates = new Map<string, { size: number; mtimeMs: number } | null>();
  /** Candidate names in name order (sorted again only when new names arrive): oldest sequence first. */
  private order: string[] = [];
  private unsorted = false;
  private readonly busy = new Set<string>();
  private readonly active = new Set<Promise<void>>();
  private pumpTimer: NodeJS.Timeout | undefined;
  private rescanTimer: NodeJS.Timeout | undefined;
  private pumping = false;
  private pumpAgain = false;
  private stopped = false;
  private readonly inbox: string;
  private readonly archiveDir: string | null;
  private readonly errorDir: string;
  private readonly takingDir: string;
  private readonly include: RegExp;

  constructor(
    private readonly o: FolderSourceOptions,
    private readonly ctx: SourceContext,
  ) {
    const resolve = (p: string): string => path.resolve(ctx.dataDir, p);
    this.inbox = resolve(o.path);
    this.archiveDir = o.archive === null ? null : resolve(o.archive);
    this.errorDir = resolve(o.error);
    this.takingDir = path.join(this.inbox, '.taking');
    this.include = new RegExp(o.include);
  }

  async start(): Promise<void> {
    for (const dir of [this.inbox, this.takingDir, this.errorDir, this.archiveDir]) {
      if (dir) await fs.mkdir(dir, { recursive: true });
    }
    await this.recoverClaimed();
    // An event only says a name changed; whether the file is complete is judged by our own size/mtime
    // looks, since write-finish heuristics fire mid-copy on large files.
    this.watcher = watch(this.inbox, { persistent: false }, (_event, name) => name && this.announce(name));
    this.watcher.on('error', (e) => this.ctx.report({ lastError: `watching ${this.inbox}: ${String(e)}` }));
    await this.rescan();
    this.ctx.report({ connected: true, detail: this.inbox });
    this.rescanTimer = setInterval(() => void this.rescan(), this.o.pollMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.pumpTimer);
    clearInterval(this.rescanTimer);
    this.watcher?.close();
    await Promise.allSettled([...this.active]);
  }

  private announce(name: string): void {
    if (inProgress.test(name) || !this.include.test(name)) return;
    if (this.candidates.has(name)) return;
    this.candidates.set(name, null);
    this.order.push(name);
    this.unsorted = true;
    void this.pump();
  }

  /** A safety net for events the watcher missed (network file systems, overflowing queues). */
  private async rescan(): Promise<void> {
    try {
      for (const name of await fs.readdir(this.inbox)) this.announce(name);
    } catch (error) {
      this.ctx.report({ lastError: `reading ${this.inbox}: ${(error as Error).message}` });
    }
  }

  /**
   * Takes the candidates that two looks `stableMs` apart agree on, oldest name first, up to
   * `concurrency` at once. Never runs twice at the same time, so a file is never taken twice.
   */
  private async pump(): Promise<void> {
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    let unstable = false;
    try {
      if (this.unsorted) {
        this.order = this.order.filter((n) => this.candidates.has(n)).sort();
        this.unsorted = false;
      }
      for (const name of this.order.slice(0, LOOK_AHEAD)) {
        if (this.stopped || this.busy.size >= this.o.concurrency) break;
        if (this.busy.has(name) || !this.candidates.has(name)) continue;
        const st = await fs.stat(path.join(this.inbox, name)).catch(() => null);
        if (!st?.isFile()) {
          this.forget(name);
          continue;
        }
        const before = this.candidates.get(name);
        const stable =
          before &&
          before.size === st.size &&
          before.mtimeMs === st.mtimeMs &&
          Date.now() - st.mtimeMs >= this.o.stableMs;
        if (!stable) {
          this.candidates.set(name, { size: st.size, mtimeMs: st.mtimeMs });
          unstable = true;
          continue;
        }
        this.take(name, st.size);
      }
    } finally {
      this.pumping = false;
    }
    if (this.stopped) return;
    if (this.pumpAgain) {
      this.pumpAgain = false;
      void this.pump();
    } else if (unstable) {
      clearTimeout(this.pumpTimer);
      this.pumpTimer = setTimeout(() => void this.pump(), this.o.stableMs);
    }
  }

  private forget(name: string): void {
    this.candidates.delete(name);
    const i = this.order.indexOf(name);
    if (i >= 0) this.order.splice(i, 1);
  }

  private take(name: string, size: number): void {
    this.busy.add(name);
    const job = this.file(name, size)
      .catch((error) => {
        const lastError = `${name}: ${(error as Error).message}`;
        this.ctx.log.warn(
          { file: name, err: (error as Error).message },
          'file not taken; it stays in the inbox',
        );
        this.ctx.report({ lastError });
      })
      .finally(() => {
        this.busy.delete(name);
        this.forget(name);
        this.active.delete(job);
        if (!this.stopped) void this.pump();
      });
    this.active.add(job);
  }

  /**
   * Claims the file by renaming it into `.taking/` first: whatever the client writes under the same
   * name afterwards is a new file, never the one being journaled nor one deleted unread.
   */
  private async file(name: string, size: number): Promise<void> {
    const claimed = path.join(this.takingDir, name);
    await fs.rename(path.join(this.inbox, name), claimed);
    await this.journal(name, claimed, size);
  }

  private async journal(name: string, claimed: string, size: number): Promise<void> {
    const meta = { fileName: name, size };
    if (size > this.o.maxFileBytes) {
      const reason = `file is ${size} bytes, over the limit of ${this.o.maxFileBytes} bytes (maxFileBytes)`;
      await this.ctx.receive({
        content: Buffer.alloc(0),
        contentType: this.o.contentType,
        meta,
        rejected: reason,
      });
      const target = await moveAside(claimed, this.errorDir, name);
      await fs.writeFile(`${target}.error.txt`, `${reason}\n`);
      return;
    }
    // Copied to the journal's side (hashed on the way) when large: the claimed file stays until the commit.
    const staged = await this.ctx.stage({ file: claimed });
    const receipt = await this.ctx.receive({ staged, contentType: this.o.contentType, meta });
    // The journal holds the content now: moving the file is the acknowledgement.
    if (this.archiveDir) await moveAside(claimed, this.archiveDir, name);
    else await fs.rm(claimed, { force: true });
    this.ctx.log.debug({ messageId: receipt.messageId, duplicateOf: receipt.duplicateOf }, 'file taken');
  }

  /** Files claimed before a crash: journaled again (a duplicate if the commit had happened), then moved on. */
  private async recoverClaimed(): Promise<void> {
    for (const name of (await fs.readdir(this.takingDir)).sort()) {
      const claimed = path.join(this.takingDir, name);
      const st = await fs.stat(claimed);
      await this.journal(name, claimed, st.size);
    }
  }
}

/** Moves one of our claimed files into `dir`, adding a counter if that name is taken there already. */
async function moveAside(from: string, dir: string, name: string): Promise<string> {
  for (let n = 0; ; n++) {
    const target = path.join(dir, n === 0 ? name : `${name}.${n}`);
    if (await fs.stat(target).catch(() => null)) continue;
    try {
      await fs.rename(from, target);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
      await fs.copyFile(from, target, fs.constants.COPYFILE_EXCL);
      await fs.rm(from);
    }
    return target;
  }
}

export const folderSourceSpec: SourceSpec<FolderSourceOptions> = {
  kind: 'source',
  type: 'folder',
  summary:
    'Watches a local folder. A file is taken once its size and mtime are stable; `.part`/`.tmp` names wait for their rename. After the journal commit it moves to `archive` (or is deleted); refused files go to `error` with NAME.error.txt.',
  schema,
  create: (o, ctx) => new FolderSource(o, ctx),
};
