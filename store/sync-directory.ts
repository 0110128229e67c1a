// Making a folder's renames and deletions durable: a file renamed into place survives a power cut
// only once its folder is fsynced too. Both the store (blobs) and the connectors (file writer) need
// it, and connectors may import the store: it lives here, a leaf that imports nothing of ours
// (eslint.config.js keeps it so), rather than as one copy per layer.
import fs from 'node:fs';
import fsp from 'node:fs/promises';

/** fsyncs a folder: the entries created, renamed or removed in it so far outlive a crash. */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await fsp.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** `syncDirectory` for a caller that must not yield: a writer inside its transaction, the store's opening. */
export function syncDirectorySync(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
