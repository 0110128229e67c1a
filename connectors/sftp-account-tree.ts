// The SFTP account trees on disk: `<dataDir>/sftp/<login>/{in/*,out,out/ack,error}` plus one staging
// directory where uploads are written until they are complete. Staging lives outside every account's
// tree (logins never start with a dot), on the same file system so that placing a file is a rename.
import { randomBytes } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import fs from 'node:fs/promises';
import path from 'node:path';
import { TREE_DIRS, type TreeDir } from './sftp-paths.ts';

const STAGING = '.uploads';
const LOGIN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Whether a login can name a directory of its own (the store may allow logins that cannot). */
export function loginUsableAsDirectory(login: string): boolean {
  return LOGIN.test(login) && !login.includes('..');
}

export class AccountTrees {
  readonly root: string;
  readonly staging: string;
  /** Trees made since start: each answer to an upload asks for its account's tree again. */
  private readonly made = new Map<string, Promise<AccountTree>>();

  constructor(root: string) {
    this.root = root;
    this.staging = path.join(root, STAGING);
  }

  /** Creates the root and empties staging: what is left there was never acknowledged to anyone. */
  async prepare(): Promise<void> {
    await fs.mkdir(this.root, { recursive: true, mode: 0o750 });
    await fs.rm(this.staging, { recursive: true, force: true });
    await fs.mkdir(this.staging, { mode: 0o700 });
  }

  /** The account's tree, created on first use. */
  open(login: string): Promise<AccountTree> {
    let tree = this.made.get(login);
    if (!tree) {
      tree = this.make(login);
      this.made.set(login, tree);
      // A failure (disk full) is not kept: the next use tries again.
      tree.catch(() => this.made.delete(login));
    }
    return tree;
  }

  private async make(login: string): Promise<AccountTree> {
    if (!loginUsableAsDirectory(login))
      throw new Error(`login ${JSON.stringify(login)} cannot name a directory`);
    const tree = new AccountTree(login, path.join(this.root, login), this.staging);
    for (const dir of TREE_DIRS) await fs.mkdir(tree.real([dir]), { recursive: true, mode: 0o750 });
    return tree;
  }
}

export class AccountTree {
  readonly login: string;
  readonly root: string;
  private readonly staging: string;

  constructor(login: string, root: string, staging: string) {
    this.login = login;
    this.root = root;
    this.staging = staging;
  }

  /** Disk path of normalised segments (resolvePath's output: no `..`, no separators inside). */
  real(segments: readonly string[]): string {
    return path.join(this.root, ...segments);
  }

  /** A new empty file in staging, for an upload in progress. */
  async createStaging(): Promise<{ file: string; handle: FileHandle }> {
    const file = path.join(this.staging, `${this.login}-${randomBytes(12).toString('hex')}`);
    return { file, handle: await fs.open(file, 'wx', 0o600) };
  }

  /** Writes a whole file into a directory of the tree; it appears complete or not at all. */
  async place(dir: TreeDir, name: string, content: Buffer | string): Promise<void> {
    const { file, handle } = await this.createStaging();
    try {
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(file, this.real([dir, name]));
  }

  /**
   * Puts a refused file into `/error` next to `NAME.error.txt` saying why. `file` is null when there
   * is nothing worth keeping (an upload cut off at the size limit).
   */
  async reject(name: string, file: string | null, reason: string): Promise<void> {
    if (file !== null) await fs.rename(file, this.real(['error', name]));
    const note = `${name}\nrefused ${new Date().toISOString()}\n\n${reason}\n`;
    await this.place('error', `${name}.error.txt`, note);
  }
}
