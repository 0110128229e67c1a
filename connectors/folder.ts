// Local folder source (chokidar): takes a file once it is stable, journals it, and only then moves it
// out of the inbox (to archive/, or to error/ with NAME.error.txt when it is refused).
import fs from 'node:fs/promises';
import path from 'node:path';
import chokidar, { type FSWatcher } from 'chokidar';
import type { Source, SourceContext, SourceSpec } from './contract.ts';

export interface FolderSourceOptions {
  path: string;
  archive: string | null;
  error: string;
  include: string;
  stableMs: number;
  maxFileBytes: number;
  contentType: string;
  concurrency: number;
  pollMs: number;
}

/** Names still being written by a cooperating client: taken only once renamed. */
const inProgress = /\.(part|tmp)$/i;

export class FolderSource implements Source {
  private watcher: FSWatcher | undefined;
  private readonly seen = new Map<string, { size: number; mtimeMs: number }>();
  private readonly busy = new Set<string>();
  private readonly active = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly inbox: string;
  private readonly archiveDir: string | null;
  private readonly errorDir: string;
  private readonly include: RegExp;

  constructor(
    private readonly o: FolderSourceOptions,
    private readonly ctx: SourceContext,
  ) {
    const resolve = (p: string): string => path.resolve(ctx.dataDir, p);
    this.inbox = resolve(o.path);
    this.archiveDir = o.archive === null ? null : resolve(o.archive);
    this.errorDir = resolve(o.error);
    this.include = new RegExp(o.include);
  }

  async start(): Promise<void> {
    for (const dir of [this.inbox, this.errorDir, this.archiveDir]) {
      if (dir) await fs.mkdir(dir, { recursive: true });
    }
    // chokidar only tells us a name changed; stability is judged by our own size/mtime polls, since
    // awaitWriteFinish fires mid-copy on large files.
    this.watcher = chokidar.watch(this.inbox, { depth: 0, ignoreInitial: false, persistent: true });
    this.watcher.on('add', () => this.scheduleScan(0));
    this.watcher.on('change', () => this.scheduleScan(0));
    this.watcher.on('error', (e) => this.ctx.report({ lastError: `watching ${this.inbox}: ${String(e)}` }));
    await new Promise<void>((resolve) => this.watcher!.once('ready', () => resolve()));
    this.ctx.report({ connected: true, detail: this.inbox });
    this.scheduleScan(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.watcher?.close();
    await Promise.allSettled([...this.active]);
  }

  private scheduleScan(ms: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.scan(), ms);
  }

  /** Looks at every file in the inbox; a file is taken when two looks `stableMs` apart agree. */
  private async scan(): Promise<void> {
    this.timer = undefined;
    let names: string[];
    try {
      names = await fs.readdir(this.inbox);
    } catch (error) {
      this.ctx.report({ lastError: `reading ${this.inbox}: ${(error as Error).message}` });
      this.scheduleScan(this.o.pollMs);
      return;
    }
    let waiting = false;
    for (const name of names.sort()) {
      if (this.stopped) return;
      if (this.busy.has(name) || inProgress.test(name) || !this.include.test(name)) continue;
      const full = path.join(this.inbox, name);
      const st = await fs.stat(full).catch(() => null);
      if (!st?.isFile()) continue;
      const before = this.seen.get(name);
      this.seen.set(name, { size: st.size, mtimeMs: st.mtimeMs });
      if (
        !before ||
        before.size !== st.size ||
        before.mtimeMs !== st.mtimeMs ||
        Date.now() - st.mtimeMs < this.o.stableMs
      ) {
        waiting = true;
        continue;
      }
      if (this.busy.size >= this.o.concurrency) {
        waiting = true;
        break;
      }
      this.take(name, st.size);
    }
    // Files seen once are looked at again after stableMs; otherwise a slow poll backs up the watcher.
    this.scheduleScan(waiting ? this.o.stableMs : this.o.pollMs);
  }

  private take(name: string, size: number): void {
    this.busy.add(name);
    const job = this.file(name, size)
      .catch((error) => this.ctx.report({ lastError: `${name}: ${(error as Error).message}` }))
      .finally(() => {
        this.busy.delete(name);
        this.seen.delete(name);
        this.active.delete(job);
        if (!this.stopped) this.scheduleScan(0);
      });
    this.active.add(job);
  }

  private async file(name: string, size: number): Promise<void> {
    const full = path.join(this.inbox, name);
    const meta = { fileName: name, size };
    if (size > this.o.maxFileBytes) {
      const reason = `file is ${size} bytes, over the limit of ${this.o.maxFileBytes} bytes (maxFileBytes)`;
      await this.ctx.receive({
        content: Buffer.alloc(0),
        contentType: this.o.contentType,
        meta,
        rejected: reason,
      });
      await this.refuse(name, reason);
      return;
    }
    const content = await fs.readFile(full);
    const receipt = await this.ctx.receive({ content, contentType: this.o.contentType, meta });
    // The journal holds the content now: moving the file is the acknowledgement.
    if (this.archiveDir) await moveAside(full, this.archiveDir, name);
    else await fs.rm(full, { force: true });
    this.ctx.log.debug({ messageId: receipt.messageId, duplicateOf: receipt.duplicateOf }, 'file taken');
  }

  private async refuse(name: string, reason: string): Promise<void> {
    const target = await moveAside(path.join(this.inbox, name), this.errorDir, name);
    await fs.writeFile(`${target}.error.txt`, `${reason}\n`);
  }
}

/** Moves a file into `dir`, adding a counter if that name is taken there already (a re-sent file). */
async function moveAside(from: string, dir: string, name: string): Promise<string> {
  for (let n = 0; ; n++) {
    const target = path.join(dir, n === 0 ? name : `${name}.${n}`);
    try {
      await fs.link(from, target);
      await fs.rm(from);
      return target;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') continue;
      if (code !== 'EXDEV' && code !== 'EPERM') throw error;
      await fs.copyFile(from, target, fs.constants.COPYFILE_EXCL);
      await fs.rm(from);
      return target;
    }
  }
}

export const folderSourceSpec: SourceSpec<FolderSourceOptions> = {
  kind: 'source',
  type: 'folder',
  summary:
    'Watches a local folder. A file is taken once its size and mtime are stable; `.part`/`.tmp` names wait for their rename. After the journal commit it moves to `archive` (or is deleted); refused files go to `error` with NAME.error.txt.',
  schema: {
    required: ['path'],
    properties: {
      path: {
        type: 'string',
        description: 'Inbox folder (relative paths resolve against the data directory).',
      },
      archive: {
        type: ['string', 'null'],
        default: null,
        description: 'Where taken files go; null deletes them (the journal keeps the content).',
      },
      error: {
        type: 'string',
        default: 'error',
        description: 'Where refused files go, each with NAME.error.txt.',
      },
      include: { type: 'string', default: '.*', description: 'Regular expression a file name must match.' },
      stableMs: {
        type: 'integer',
        minimum: 0,
        default: 500,
        description: 'Size and mtime must hold this long.',
      },
      maxFileBytes: { type: 'integer', minimum: 1, default: 52428800 },
      contentType: { type: 'string', default: 'application/octet-stream' },
      concurrency: {
        type: 'integer',
        minimum: 1,
        default: 8,
        description: 'Files journaled at once (group commit).',
      },
      pollMs: {
        type: 'integer',
        minimum: 50,
        default: 2000,
        description: 'Rescan period, a safety net for missed events.',
      },
    },
  },
  create: (o, ctx) => new FolderSource(o, ctx),
};
