// The file system one SFTP session sees: SFTP v3 requests answered over the account's chrooted tree.
// Every request id gets exactly one reply (run() below sends it, whatever happens). A small upload is
// held in memory; one that grows past that goes to a staging file with positional writes. The write
// handle's CLOSE is the moment a file is complete, so that is when it is handed on (and only once it
// is journaled does the CLOSE get its OK).
import type { FileHandle } from 'node:fs/promises';
import fs from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { constants as fsConstants } from 'node:fs';
import type { Attributes, FileEntry, SFTPWrapper } from 'ssh2';
import type { AccountTree } from './sftp-account-tree.ts';
import type { Logger } from './contract.ts';
import {
  childDirs,
  dropFolderOf,
  fileNameProblem,
  isTemporaryName,
  locate,
  mayExist,
  resolvePath,
  SftpRefusal,
  STATUS,
  virtualPath,
  type DropFolder,
} from './sftp-paths.ts';

// SFTP v3 open flags (ssh2's OPEN_MODE).
const OPEN = { READ: 0x01, WRITE: 0x02, APPEND: 0x04, CREAT: 0x08, TRUNC: 0x10, EXCL: 0x20 } as const;
const WRITING = OPEN.WRITE | OPEN.APPEND | OPEN.CREAT | OPEN.TRUNC;
const MAX_READ = 256 * 1024;
const NAMES_PER_READDIR = 64;
/**
 * Bytes of WRITE requests accepted but not yet on disk, per upload. Clients wait for replies (OpenSSH
 * keeps at most 64 × 32 KiB in flight), so only a client ignoring flow control reaches it.
 */
const MAX_PENDING_WRITE_BYTES = 32 * 1024 * 1024;
export const HELD = {
  /**
   * An upload up to this size is held in memory: journaled inline, it never touches the disk on its
   * own (a staging file cost a dozen file system calls per upload, the main thread's largest share).
   */
  maxBytes: 64 * 1024,
  /** Bytes held by every session together; past it, uploads go to staging files whatever their size. */
  budgetBytes: 16 * 1024 * 1024,
};

/** Where complete uploads go: implemented by the server, which knows the channels' routes. */
export interface UploadSink {
  /** Size limit of a drop folder, or null when no channel takes that folder now. */
  limitFor(folder: DropFolder): number | null;
  /**
   * Hands a complete file to the folder's channel. Resolves once it is journaled (its file, if it
   * has one, is then gone) or rejected into `/error`; rejects when it was not taken (the file stays).
   */
  take(tree: AccountTree, folder: DropFolder, name: string, body: UploadBody, size: number): Promise<void>;
}

/** A complete upload's bytes: in memory when it was small, else in a file. */
export interface UploadBody {
  /** The bytes, when the upload was held in memory; null when it is a file. */
  readonly content: Buffer | null;
  /** The upload as a file on disk (written from `content` on the first call when it was held). */
  file(): Promise<string>;
}

interface Held {
  offset: number;
  data: Buffer;
}

type WriteHandle = {
  kind: 'write';
  /** Null while the upload is held in memory (`held`). */
  fh: FileHandle | null;
  staging: string | null;
  /** The writes held in memory, in the order they came; null once the upload is on disk. */
  held: Held[] | null;
  heldBytes: number;
  /** The file's size: the end of its furthest write. */
  end: number;
  folder: DropFolder;
  name: string;
  limit: number;
  /** Writes run one after the other; CLOSE waits for the last. */
  tail: Promise<void>;
  pending: number;
  /** Set once the upload cannot complete; every later request on the handle fails with it. */
  failure: string | null;
};

type Handle =
  | { kind: 'dir'; entries: FileEntry[]; next: number; real: string }
  | { kind: 'read'; fh: FileHandle }
  | WriteHandle;

type Reply =
  | { status: number; message?: string }
  | { handle: Buffer }
  | { data: Buffer }
  | { names: FileEntry[] }
  | { attrs: Attributes };

const OK: Reply = { status: STATUS.OK };

function refuse(status: number, code: string, message: string): never {
  throw new SftpRefusal(status, code, message);
}

export class SftpFileSystem {
  private readonly sftp: SFTPWrapper;
  private readonly tree: AccountTree;
  private readonly sink: UploadSink;
  private readonly log: Logger;
  private readonly handles = new Map<number, Handle>();
  private nextHandle = 1;
  /** Requests not yet answered, and whether the client has sent EOF (it waits for us to close). */
  private unanswered = 0;
  private clientDone = false;
  /** Disk paths of `.part` files being taken, so two sessions renaming the same file take it once. */
  private static readonly taking = new Set<string>();
  /** Bytes of uploads held in memory, every session together (HELD.budgetBytes). */
  private static heldBytes = 0;

  constructor(sftp: SFTPWrapper, tree: AccountTree, sink: UploadSink, log: Logger) {
    this.sftp = sftp;
    this.tree = tree;
    this.sink = sink;
    this.log = log;
    this.listen();
  }

  private listen(): void {
    const s = this.sftp;
    s.on('OPEN', (id: number, p: string, flags: number) => this.run(id, () => this.open(p, flags)));
    s.on('READ', (id: number, h: Buffer, offset: number, len: number) =>
      this.run(id, () => this.read(h, offset, len)),
    );
    s.on('WRITE', (id: number, h: Buffer, offset: number, data: Buffer) =>
      this.run(id, () => this.write(h, offset, data)),
    );
    s.on('CLOSE', (id: number, h: Buffer) => this.run(id, () => this.close(h)));
    s.on('FSTAT', (id: number, h: Buffer) => this.run(id, () => this.fstat(h)));
    // Clients set times and modes after an upload; the tree's modes are ours, so this is accepted and ignored.
    s.on('FSETSTAT', (id: number, h: Buffer) => this.run(id, async () => (this.handleOf(h), OK)));
    s.on('SETSTAT', (id: number, p: string) => this.run(id, async () => (await this.statPath(p), OK)));
    s.on('STAT', (id: number, p: string) => this.run(id, () => this.statPath(p)));
    s.on('LSTAT', (id: number, p: string) => this.run(id, () => this.statPath(p)));
    s.on('OPENDIR', (id: number, p: string) => this.run(id, () => this.opendir(p)));
    s.on('READDIR', (id: number, h: Buffer) => this.run(id, () => this.readdir(h)));
    s.on('REALPATH', (id: number, p: string) => this.run(id, () => this.realpath(p)));
    s.on('REMOVE', (id: number, p: string) => this.run(id, () => this.remove(p)));
    s.on('RENAME', (id: number, from: string, to: string) => this.run(id, () => this.rename(from, to)));
    s.on('READLINK', (id: number, p: string) => this.run(id, () => this.readlink(p)));
    const fixedTree = async (): Promise<Reply> =>
      refuse(
        STATUS.PERMISSION_DENIED,
        'SFTP_FIXED_TREE',
        'the directory tree is fixed: directories cannot be made or removed',
      );
    s.on('MKDIR', (id: number) => this.run(id, fixedTree));
    s.on('RMDIR', (id: number) => this.run(id, fixedTree));
    s.on('SYMLINK', (id: number) =>
      this.run(id, async () =>
        refuse(STATUS.PERMISSION_DENIED, 'SFTP_SYMLINK', 'symbolic links cannot be created here'),
      ),
    );
    // The client's EOF means "no more requests": close the channel once the last one is answered.
    s.on('end', () => {
      this.clientDone = true;
      this.closeIfDone();
    });
    s.on('close', () => void this.release());
  }

  /** Runs one request and sends its single reply: a refusal's status, or FAILURE for anything unexpected. */
  private run(id: number, op: () => Promise<Reply>): void {
    this.unanswered++;
    op()
      .catch((err: unknown): Reply => {
        if (err instanceof SftpRefusal) return { status: err.status, message: err.message };
        this.log.error({ err, login: this.tree.login }, 'sftp request failed');
        return { status: STATUS.FAILURE, message: 'the server failed on this request; try again later' };
      })
      .then((reply) => {
        this.send(id, reply);
        this.unanswered--;
        this.closeIfDone();
      });
  }

  private closeIfDone(): void {
    if (this.clientDone && this.unanswered === 0) this.sftp.end();
  }

  private send(id: number, reply: Reply): void {
    try {
      if ('status' in reply) this.sftp.status(id, reply.status, reply.message);
      else if ('handle' in reply) this.sftp.handle(id, reply.handle);
      else if ('data' in reply) this.sftp.data(id, reply.data);
      else if ('names' in reply) this.sftp.name(id, reply.names);
      else this.sftp.attrs(id, reply.attrs);
    } catch (err) {
      // The channel closed under us: nobody is left to answer.
      this.log.debug({ err, login: this.tree.login }, 'sftp reply not sent');
    }
  }

  private newHandle(h: Handle): Reply {
    const id = this.nextHandle++;
    this.handles.set(id, h);
    const buf = Buffer.alloc(4);
    buf.writeUInt32BE(id);
    return { handle: buf };
  }

  private handleOf(buf: Buffer): Handle {
    const h = buf.length === 4 ? this.handles.get(buf.readUInt32BE(0)) : undefined;
    if (!h) refuse(STATUS.FAILURE, 'SFTP_BAD_HANDLE', 'unknown handle');
    return h;
  }

  private async open(p: string, flags: number): Promise<Reply> {
    const segments = resolvePath(p);
    const where = locate(segments);
    if (flags & WRITING) return this.openForWrite(segments, flags);
    if (where.kind !== 'file') {
      return refuse(
        where.kind === 'dir' ? STATUS.FAILURE : STATUS.NO_SUCH_FILE,
        'SFTP_NOT_FILE',
        `${p}: no such file`,
      );
    }
    const real = this.tree.real(segments);
    const fh = await fs
      .open(real, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW)
      .catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT' || err.code === 'ELOOP')
          refuse(STATUS.NO_SUCH_FILE, 'SFTP_NO_FILE', `${p}: no such file`);
        throw err;
      });
    return this.newHandle({ kind: 'read', fh });
  }

  private async openForWrite(segments: string[], flags: number): Promise<Reply> {
    const where = locate(segments);
    const folder = where.kind === 'file' ? dropFolderOf(where.dir) : null;
    if (where.kind !== 'file' || folder === null) {
      return refuse(
        STATUS.PERMISSION_DENIED,
        'SFTP_WRITE_OUTSIDE_IN',
        'files are written to /in/identity, /in/pathology or /in/molecular only',
      );
    }
    const problem = fileNameProblem(where.name);
    if (problem) refuse(STATUS.PERMISSION_DENIED, 'SFTP_BAD_NAME', problem);
    const limit = this.sink.limitFor(folder);
    if (limit === null) {
      refuse(
        STATUS.FAILURE,
        'SFTP_NO_CHANNEL',
        `no channel takes /in/${folder} at the moment; send the file later`,
      );
    }
    const existing = mayExist(where) && (await this.lstatOrNull(this.tree.real(segments)));
    if (existing && (flags & OPEN.EXCL || !(flags & OPEN.TRUNC))) {
      refuse(
        STATUS.FAILURE,
        'SFTP_EXISTS',
        `${virtualPath(segments)} exists: resuming is not supported, upload the whole file again`,
      );
    }
    return this.newHandle({
      kind: 'write',
      fh: null,
      staging: null,
      held: [],
      heldBytes: 0,
      end: 0,
      folder,
      name: where.name,
      limit,
      tail: Promise.resolve(),
      pending: 0,
      failure: null,
    });
  }

  private async read(buf: Buffer, offset: number, len: number): Promise<Reply> {
    const h = this.handleOf(buf);
    if (h.kind !== 'read') return refuse(STATUS.FAILURE, 'SFTP_NOT_READABLE', 'handle not open for reading');
    const out = Buffer.alloc(Math.min(len, MAX_READ));
    const { bytesRead } = await h.fh.read(out, 0, out.length, offset);
    return bytesRead === 0 ? { status: STATUS.EOF } : { data: out.subarray(0, bytesRead) };
  }

  private async write(buf: Buffer, offset: number, data: Buffer): Promise<Reply> {
    const h = this.handleOf(buf);
    if (h.kind !== 'write') return refuse(STATUS.FAILURE, 'SFTP_NOT_WRITABLE', 'handle not open for writing');
    if (h.failure) return { status: STATUS.FAILURE, message: h.failure };
    if (offset + data.length > h.limit) {
      // Answer at once, before the rest arrives: the client stops sending a file we would not keep.
      h.failure = tooLarge(h.limit, h.folder);
      await h.tail;
      await this.discard(h);
      await this.tree.reject(h.name, null, h.failure);
      return { status: STATUS.FAILURE, message: h.failure };
    }
    if (h.pending + data.length > MAX_PENDING_WRITE_BYTES) {
      return refuse(
        STATUS.FAILURE,
        'SFTP_FLOOD',
        'too many writes in flight: wait for replies before sending more',
      );
    }
    h.pending += data.length;
    const written = h.tail.then(() => this.put(h, data, offset));
    h.tail = written.then(
      () => {
        h.pending -= data.length;
      },
      (err: unknown) => {
        h.pending -= data.length;
        h.failure ??= 'the server could not store the file; upload it again later';
        this.log.error({ err, login: this.tree.login }, 'sftp upload write failed');
      },
    );
    await h.tail;
    return h.failure ? { status: STATUS.FAILURE, message: h.failure } : OK;
  }

  private async close(buf: Buffer): Promise<Reply> {
    const h = this.handleOf(buf);
    this.handles.delete(buf.readUInt32BE(0));
    if (h.kind === 'dir') return OK;
    if (h.kind === 'read') {
      await h.fh.close();
      return OK;
    }
    await h.tail;
    if (h.failure) {
      await this.discard(h);
      return { status: STATUS.FAILURE, message: h.failure };
    }
    try {
      if (isTemporaryName(h.name)) {
        // It waits on our disk for its rename, which may come after a restart: make it durable now.
        const fh = await this.onDisk(h);
        await fh.sync();
        await fh.close();
        await fs.rename(h.staging!, this.tree.real(['in', h.folder, h.name]));
      } else {
        await h.fh?.close();
        const body: UploadBody = {
          content: h.held && assemble(h.held, h.end),
          file: async () => {
            if (h.staging === null) await (await this.onDisk(h)).close();
            return h.staging!;
          },
        };
        await this.sink.take(this.tree, h.folder, h.name, body, h.end);
      }
      return OK;
    } finally {
      await this.discard(h);
    }
  }

  /** Keeps one write: in memory while the upload is small and the budget allows, else on disk. */
  private async put(h: WriteHandle, data: Buffer, offset: number): Promise<void> {
    const end = Math.max(h.end, offset + data.length);
    if (h.held && end <= HELD.maxBytes && SftpFileSystem.heldBytes + data.length <= HELD.budgetBytes) {
      h.held.push({ offset, data });
      h.heldBytes += data.length;
      SftpFileSystem.heldBytes += data.length;
    } else {
      const fh = await this.onDisk(h);
      await fh.write(data, 0, data.length, offset);
    }
    h.end = end;
  }

  /** The upload's staging file, created and given the held writes (in their order) on the first call. */
  private async onDisk(h: WriteHandle): Promise<FileHandle> {
    if (h.fh) return h.fh;
    const { file, handle } = await this.tree.createStaging();
    h.fh = handle;
    h.staging = file;
    const held = h.held ?? [];
    this.unhold(h);
    for (const w of held) await handle.write(w.data, 0, w.data.length, w.offset);
    return handle;
  }

  /** Gives back the upload's share of the held budget. */
  private unhold(h: WriteHandle): void {
    SftpFileSystem.heldBytes -= h.heldBytes;
    h.heldBytes = 0;
    h.held = null;
  }

  /** Forgets an upload's bytes and staging file (closing twice and removing a moved file are harmless). */
  private async discard(h: WriteHandle): Promise<void> {
    this.unhold(h);
    await h.fh?.close().catch(() => undefined);
    if (h.staging !== null) await fs.rm(h.staging, { force: true });
  }

  private async fstat(buf: Buffer): Promise<Reply> {
    const h = this.handleOf(buf);
    if (h.kind === 'dir') return { attrs: toAttrs(await fs.lstat(h.real)) };
    if (h.kind === 'write' && h.fh === null) return { attrs: heldAttrs(h.end) };
    return { attrs: toAttrs(await h.fh!.stat()) };
  }

  /** Stats what a path names in the tree; symbolic links are never followed (the tree has none). */
  private async statPath(p: string): Promise<Reply> {
    const segments = resolvePath(p);
    const stats = mayExist(locate(segments)) ? await this.lstatOrNull(this.tree.real(segments)) : null;
    if (!stats || stats.isSymbolicLink())
      return refuse(STATUS.NO_SUCH_FILE, 'SFTP_NO_FILE', `${p}: no such file`);
    return { attrs: toAttrs(stats) };
  }

  private async opendir(p: string): Promise<Reply> {
    const segments = resolvePath(p);
    const where = locate(segments);
    if (where.kind !== 'dir') return refuse(STATUS.NO_SUCH_FILE, 'SFTP_NO_DIR', `${p}: no such directory`);
    const real = this.tree.real(segments);
    const entries: FileEntry[] = [];
    for (const name of childDirs(where.dir))
      entries.push(entry(name, await fs.lstat(this.tree.real([...segments, name]))));
    for (const d of await fs.readdir(real, { withFileTypes: true })) {
      if (!d.isFile() || locate([...segments, d.name]).kind !== 'file') continue;
      const stats = await this.lstatOrNull(this.tree.real([...segments, d.name]));
      if (stats) entries.push(entry(d.name, stats));
    }
    return this.newHandle({ kind: 'dir', entries, next: 0, real });
  }

  /** Lists in slices, then answers EOF: without the EOF graphical clients ask again forever. */
  private async readdir(buf: Buffer): Promise<Reply> {
    const h = this.handleOf(buf);
    if (h.kind !== 'dir') return refuse(STATUS.FAILURE, 'SFTP_NOT_DIR', 'handle is not a directory');
    if (h.next >= h.entries.length) return { status: STATUS.EOF };
    const names = h.entries.slice(h.next, h.next + NAMES_PER_READDIR);
    h.next += names.length;
    return { names };
  }

  private async realpath(p: string): Promise<Reply> {
    const normalised = virtualPath(resolvePath(p));
    return { names: [{ filename: normalised, longname: normalised, attrs: {} as Attributes }] };
  }

  private async remove(p: string): Promise<Reply> {
    const segments = resolvePath(p);
    const where = locate(segments);
    if (where.kind === 'dir') {
      return refuse(
        STATUS.PERMISSION_DENIED,
        'SFTP_FIXED_TREE',
        'the directory tree is fixed: directories cannot be removed',
      );
    }
    const real = this.tree.real(segments);
    const stats = where.kind === 'file' ? await this.lstatOrNull(real) : null;
    if (!stats?.isFile()) return refuse(STATUS.NO_SUCH_FILE, 'SFTP_NO_FILE', `${p}: no such file`);
    await fs.rm(real);
    return OK;
  }

  /**
   * Renames inside the drop folders. A rename to a final name is the end of a `.part` upload: the file
   * is taken then, and the rename answered once it is journaled.
   */
  private async rename(fromPath: string, toPath: string): Promise<Reply> {
    const from = resolvePath(fromPath);
    const to = resolvePath(toPath);
    const src = locate(from);
    const dst = locate(to);
    const folder = dst.kind === 'file' ? dropFolderOf(dst.dir) : null;
    if (src.kind !== 'file' || dropFolderOf(src.dir) === null || dst.kind !== 'file' || folder === null) {
      return refuse(
        STATUS.PERMISSION_DENIED,
        'SFTP_RENAME_OUTSIDE_IN',
        'files can be renamed inside /in only',
      );
    }
    const problem = fileNameProblem(dst.name);
    if (problem) refuse(STATUS.PERMISSION_DENIED, 'SFTP_BAD_NAME', problem);
    const source = this.tree.real(from);
    const target = this.tree.real(to);
    const stats = await this.lstatOrNull(source);
    if (!stats?.isFile()) return refuse(STATUS.NO_SUCH_FILE, 'SFTP_NO_FILE', `${fromPath}: no such file`);
    if (await this.lstatOrNull(target)) {
      return refuse(
        STATUS.FAILURE,
        'SFTP_EXISTS',
        `${toPath} exists: remove it first or choose another name`,
      );
    }
    if (isTemporaryName(dst.name)) {
      await fs.rename(source, target);
      return OK;
    }
    if (SftpFileSystem.taking.has(source)) {
      return refuse(STATUS.FAILURE, 'SFTP_BEING_TAKEN', `${fromPath} is already being taken`);
    }
    SftpFileSystem.taking.add(source);
    try {
      const limit = this.sink.limitFor(folder);
      if (limit !== null && stats.size > limit) {
        const reason = tooLarge(limit, folder);
        await this.tree.reject(dst.name, source, reason);
        return { status: STATUS.FAILURE, message: reason };
      }
      await this.sink.take(
        this.tree,
        folder,
        dst.name,
        { content: null, file: async () => source },
        stats.size,
      );
      return OK;
    } finally {
      SftpFileSystem.taking.delete(source);
    }
  }

  private async readlink(p: string): Promise<Reply> {
    await this.statPath(p);
    return refuse(STATUS.FAILURE, 'SFTP_NOT_LINK', `${p} is not a symbolic link`);
  }

  private async lstatOrNull(real: string): Promise<Stats | null> {
    return fs.lstat(real).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return null;
      throw err;
    });
  }

  /** Session ended: close what the client left open; unfinished uploads were never acknowledged. */
  private async release(): Promise<void> {
    const open = [...this.handles.values()];
    this.handles.clear();
    for (const h of open) {
      if (h.kind === 'write') await this.discard(h);
      else if (h.kind === 'read') await h.fh.close().catch(() => undefined);
    }
  }
}

function tooLarge(limit: number, folder: DropFolder): string {
  return `file refused: larger than the ${limit} bytes /in/${folder} accepts; split it or ask for a higher limit`;
}

/** A held upload's bytes in one buffer of their own (a write's data is a view of its SSH packet). */
function assemble(held: readonly Held[], size: number): Buffer {
  const out = Buffer.alloc(size);
  for (const w of held) w.data.copy(out, w.offset);
  return out;
}

/** What FSTAT says of an upload held in memory: a file of ours, as a staging file would be. */
function heldAttrs(size: number): Attributes {
  const now = Math.floor(Date.now() / 1000);
  return {
    mode: 0o100600,
    uid: process.getuid?.() ?? 0,
    gid: process.getgid?.() ?? 0,
    size,
    atime: now,
    mtime: now,
  };
}

function toAttrs(s: Stats): Attributes {
  return {
    mode: s.mode,
    uid: s.uid,
    gid: s.gid,
    size: s.size,
    atime: Math.floor(s.atimeMs / 1000),
    mtime: Math.floor(s.mtimeMs / 1000),
  };
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** `ls -l` style long name: some graphical clients (FileZilla) read type and size from it. */
function entry(name: string, s: Stats): FileEntry {
  const type = s.isDirectory() ? 'd' : '-';
  const perms = s.isDirectory() ? 'rwxr-xr-x' : 'rw-r--r--';
  const d = s.mtime;
  const when = `${MONTHS[d.getUTCMonth()]} ${String(d.getUTCDate()).padStart(2, ' ')} ${String(d.getUTCHours()).padStart(2, '0')}:${String(d.getUTCMinutes()).padStart(2, '0')}`;
  return {
    filename: name,
    longname: `${type}${perms} 1 owner group ${String(s.size).padStart(10)} ${when} ${name}`,
    attrs: toAttrs(s),
  };
}
