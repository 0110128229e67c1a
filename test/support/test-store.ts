// A store of its own for each unit test that files and reads through the store's modules.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Store } from '../../store/store.ts';

export interface TestStore {
  dir: string;
  store: Store;
}

/**
 * A store on a fresh temporary data directory, or on `dir` to reopen one. Inline writer: the test
 * writes and reads on one connection, synchronously; no fsync, as a test's data need not outlive it.
 */
export function openTestStore(dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onco-store-'))): TestStore {
  return { dir, store: new Store({ dataDir: dir, synchronous: 'OFF', writer: 'inline' }) };
}

/** Closes the store and deletes its data directory. */
export async function removeTestStore({ dir, store }: TestStore): Promise<void> {
  await store.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
