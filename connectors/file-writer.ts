// File writer destination: writes to a temporary name and renames, so a reader never sees half a
// file; the name comes from the delivery's idempotency key, so a retry rewrites the same file.
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import Type from 'typebox';
import {
  SendError,
  type BatchOutcome,
  type Destination,
  type DestinationSpec,
  type Outbound,
  type SendResult,
} from './contract.ts';
import { Default, type OptionsOf } from '../transformers/contract.ts';
import { syncDirectory } from '../store/sync-directory.ts';

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

  async send(msg: Outbound): Promise<SendResult> {
    const [outcome] = await this.sendBatch([msg], { ordered: true });
    if (outcome && 'result' in outcome) return outcome.result;
    throw outcome && 'error' in outcome ? outcome.error : new Error('file not written');
  }

  /**
   * Writes every file of the batch to a temporary name and fsyncs each (at once: the fsyncs overlap),
   * renames them in order, then fsyncs the folder once, which makes the names durable: a file is
   * reported written only once it would survive a power cut under its name.
   */
  async sendBatch(msgs: Outbound[], { ordered }: { ordered: boolean }): Promise<BatchOutcome[]> {
    const written = await Promise.allSettled(msgs.map((m) => this.writeTemporary(m)));
    const outcomes: BatchOutcome[] = [];
    const renamed: number[] = [];
    let stopped = false;
    for (const [i, w] of written.entries()) {
      if (stopped) {
        if (w.status === 'fulfilled') await fs.rm(w.value.temp, { force: true });
        outcomes.push({ notAttempted: true });
        continue;
      }
      try {
        if (w.status === 'rejected') throw w.reason;
        await fs.rename(w.value.temp, w.value.target).catch(async (error: unknown) => {
          await fs.rm(w.value.temp, { force: true });
          throw writeFailed(w.value.target, error);
        });
        renamed.push(i);
        outcomes.push({ result: { detail: w.value.target } });
      } catch (error) {
        outcomes.push({ error });
        stopped = ordered;
      }
    }
    if (renamed.length > 0 && this.o.fsync) {
      try {
        await syncDirectory(this.dir);
      } catch (error) {
        const failed = writeFailed(this.dir, error);
        for (const i of renamed) outcomes[i] = { error: failed };
      }
    }
    return outcomes;
  }

  /** One file under a temporary name, fsynced; a large file is copied by the kernel from its blob. */
  private async writeTemporary(msg: Outbound): Promise<{ temp: string; target: string }> {
    const name = renderFileName(this.o.fileName, msg);
    const target = path.join(this.dir, name);
    const temp = path.join(this.dir, `.${name}.${crypto.randomBytes(4).toString('hex')}.tmp`);
    try {
      if (msg.file) await fs.copyFile(msg.file.path, temp, fs.constants.COPYFILE_EXCL);
      const handle = await fs.open(temp, msg.file ? 'r+' : 'wx');
      try {
        if (!msg.file) await handle.writeFile(msg.content);
        if (this.o.fsync) await handle.sync();
      } finally {
        await handle.close();
      }
    } catch (error) {
      await fs.rm(temp, { force: true });
      throw writeFailed(target, error);
    }
    return { temp, target };
  }
}

function writeFailed(target: string, error: unknown): SendError {
  return new SendError('FILE_WRITE_FAILED', `writing ${target}: ${(error as Error).message}`, {
    retryable: true,
    cause: error,
  });
}

export const fileWriterSpec: DestinationSpec<FileWriterOptions> = {
  kind: 'destination',
  type: 'file-writer',
  summary:
    'Writes each message to a local folder (temporary name, fsync, then rename; the folder fsynced once per batch of queued messages). The name comes from a template, by default the idempotency key, so a retry rewrites the same file.',
  schema,
  create: (o, ctx) => new FileWriter(o, ctx.dataDir),
};
