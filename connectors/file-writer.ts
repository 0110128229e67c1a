// File writer destination: writes to a temporary name and renames, so a reader never sees half a
// file; the name comes from the delivery's idempotency key, so a retry rewrites the same file.
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import Type from 'typebox';
import { SendError, type Destination, type DestinationSpec, type Outbound } from './contract.ts';
import { Default, type OptionsOf } from '../transformers/contract.ts';

const schema = Type.Object({
  path: Type.String({ description: 'Target folder (relative paths resolve against the data directory).' }),
  fileName: Default(
    Type.String({ description: 'Template: {key} (idempotency key), {messageId}, {meta.fileName} …' }),
    '{key}',
  ),
  fsync: Default(Type.Boolean({ description: 'fsync before the rename, for power-loss safety.' }), true),
});

export type FileWriterOptions = OptionsOf<typeof schema>;

/** `{key}`, `{messageId}` and `{meta.NAME}` in the file name template; anything unsafe becomes `_`. */
export function renderFileName(template: string, msg: Outbound): string {
  const name = template.replace(
    /\{(key|messageId|meta\.([A-Za-z0-9_]+))\}/g,
    (_m, what: string, metaName?: string) => {
      if (what === 'key') return msg.idempotencyKey;
      if (what === 'messageId') return String(msg.messageId);
      const v = msg.meta[metaName!];
      return v === undefined || v === null ? '' : String(v);
    },
  );
  const safe = path.basename(name).replace(/[^A-Za-z0-9._-]/g, '_');
  if (!safe || safe === '.' || safe === '..') {
    throw new SendError('FILE_NAME_EMPTY', `file name template "${template}" gave an empty name`, {
      retryable: false,
    });
  }
  return safe;
}

export class FileWriter implements Destination {
  private readonly dir: string;

  constructor(
    private readonly o: FileWriterOptions,
    dataDir: string,
  ) {
    this.dir = path.resolve(dataDir, o.path);
  }

  async start(): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true });
    // Temporary files of writes cut short by a crash: their delivery was not marked SENT, so it runs again.
    for (const name of await fs.readdir(this.dir)) {
      if (name.startsWith('.') && name.endsWith('.tmp'))
        await fs.rm(path.join(this.dir, name), { force: true });
    }
  }

  async send(msg: Outbound): Promise<{ detail: string }> {
    const name = renderFileName(this.o.fileName, msg);
    const target = path.join(this.dir, name);
    const temp = path.join(this.dir, `.${name}.${crypto.randomBytes(4).toString('hex')}.tmp`);
    try {
      // A large file is copied by the kernel from its blob: never read into memory.
      if (msg.file) await fs.copyFile(msg.file.path, temp, fs.constants.COPYFILE_EXCL);
      const handle = await fs.open(temp, msg.file ? 'r+' : 'wx');
      try {
        if (!msg.file) await handle.writeFile(msg.content);
        if (this.o.fsync) await handle.sync();
      } finally {
        await handle.close();
      }
      await fs.rename(temp, target);
    } catch (error) {
      await fs.rm(temp, { force: true });
      throw new SendError('FILE_WRITE_FAILED', `writing ${target}: ${(error as Error).message}`, {
        retryable: true,
        cause: error,
      });
    }
    return { detail: target };
  }
}

export const fileWriterSpec: DestinationSpec<FileWriterOptions> = {
  kind: 'destination',
  type: 'file-writer',
  summary:
    'Writes each message to a local folder (temporary name, then rename). The name comes from a template, by default the idempotency key, so a retry rewrites the same file.',
  schema,
  create: (o, ctx) => new FileWriter(o, ctx.dataDir),
};
