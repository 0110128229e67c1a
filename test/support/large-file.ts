// Large test files, made and compared a MiB at a time: never held whole in the test's memory.
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { pipeline } from 'node:stream/promises';

const MiB = 1024 * 1024;

/** Writes `size` pseudo-random bytes chunk by chunk; returns their SHA-256. */
export async function generate(file: string, size: number): Promise<string> {
  const hash = createHash('sha256');
  async function* chunks(): AsyncGenerator<Buffer> {
    for (let left = size; left > 0; left -= MiB) {
      const chunk = randomBytes(Math.min(MiB, left));
      hash.update(chunk);
      yield chunk;
    }
  }
  await pipeline(chunks(), fs.createWriteStream(file));
  return hash.digest('hex');
}

export async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(fs.createReadStream(file), hash);
  return hash.digest('hex');
}
