// Journaled content as steps and destinations see it. Content kept as a file (a blob, above the
// engine's threshold) is handed over as `file`, readable in chunks; `content` still works for
// consumers that need a Buffer, and reads the file whole only when first touched.
import fs from 'node:fs';
import type { ContentFile } from '../transformers/contract.ts';
import type { BlobFiles, BlobRef } from '../store/blob-files.ts';
import type { StoredContent } from '../store/journal.ts';

const CHUNK = 1024 * 1024;

/** The file of a blob, as steps and destinations read it. */
export function contentFile(blobs: BlobFiles, blob: BlobRef): ContentFile {
  const file = blobs.path(blob.digest);
  return {
    path: file,
    size: blob.size,
    digest: blob.digest,
    chunks: () => fs.createReadStream(file, { highWaterMark: CHUNK }),
  };
}

/**
 * `fields` plus the content of a journal row: its bytes, or for a blob its `file` and a `content`
 * that loads the file on first read. `unchanged(out)` says whether a step's output is still that
 * very file, so that the result references the blob instead of storing a copy.
 */
export function withContent<T extends object>(
  blobs: BlobFiles,
  stored: StoredContent,
  fields: T,
): {
  value: T & { content: Buffer; file?: ContentFile };
  unchanged: (out: { content: Buffer; file?: ContentFile }) => boolean;
} {
  if (!stored.blob) return { value: { ...fields, content: stored.content }, unchanged: () => false };
  const blob = stored.blob;
  const file = contentFile(blobs, blob);
  let loaded: Buffer | undefined;
  const value = { ...fields, file } as T & { content: Buffer; file: ContentFile };
  Object.defineProperty(value, 'content', {
    enumerable: true,
    configurable: true,
    get: () => (loaded ??= blobs.read(blob)),
  });
  return {
    value,
    // A step that returned its input, or spread it (which read `content`), without new bytes.
    unchanged: (out) => out.file === file && (out === value || out.content === loaded),
  };
}

/**
 * `fields` with the `content` of a step's output, passed on without reading it (spreading would):
 * for a blob it stays the getter that loads the file when a destination touches it.
 */
export function withContentOf<T extends object>(
  input: { content: Buffer },
  fields: T,
): T & { content: Buffer } {
  const described = Object.getOwnPropertyDescriptor(input, 'content') ?? { value: input.content };
  return Object.defineProperty(fields, 'content', { ...described, enumerable: true }) as T & {
    content: Buffer;
  };
}
