// The bytes of filed documents, as files beside the database rather than BLOB columns: a report of
// many megabytes never sits in the database pages, and a read streams from disk. Files are named by
// the SHA-256 of their content (`ab/abcdef…`), so the same bytes are kept once and a file, once
// written, never changes. Each is written to a temporary name, fsynced, renamed and its folder
// fsynced before the transaction that references it commits: a committed row never names a missing
// file. A transaction rolled back leaves an unreferenced file behind, harmless (same name, same bytes
// when the document comes again).
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export class DocumentFiles {
  constructor(readonly dir: string) {}

  /** Keeps the bytes (once per content) and returns their SHA-256, the key to read them back. */
  put(bytes: Uint8Array): string {
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const file = this.pathOf(sha256);
    if (fs.existsSync(file)) return sha256;
    const folder = path.dirname(file);
    // A new shard folder is itself an entry of its parent: synced too, or a crash could lose it.
    if (fs.mkdirSync(folder, { recursive: true }) !== undefined) syncDir(this.dir);
    const temp = `${file}.${process.pid}.tmp`;
    const fd = fs.openSync(temp, 'w', 0o600);
    try {
      fs.writeSync(fd, bytes);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(temp, file);
    syncDir(folder);
    return sha256;
  }

  /** Absolute path of the file holding these bytes (it exists once `put` returned). */
  pathOf(sha256: string): string {
    if (!/^[0-9a-f]{64}$/.test(sha256)) throw new Error(`not a SHA-256: ${sha256}`);
    return path.join(this.dir, sha256.slice(0, 2), sha256);
  }

  read(sha256: string): Buffer {
    return fs.readFileSync(this.pathOf(sha256));
  }
}

function syncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
