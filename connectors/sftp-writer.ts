// Remote SFTP destination: uploads NAME.part then renames it to NAME, so the receiver never sees half a
// file. NAME comes from the delivery's idempotency key (through a template), so a retry after a cut
// connection rewrites the same .part and a completed earlier attempt is recognised by its size.
import { createReadStream } from 'node:fs';
import { posix } from 'node:path';
import {
  SendError,
  type ConnectorContext,
  type Destination,
  type DestinationSpec,
  type Outbound,
  type SendResult,
} from './contract.ts';
import { renderFileName } from './file-writer.ts';
import {
  describeFailure,
  isMissing,
  isRefusal,
  sftpCredentialRequired,
  sftpServerSchema,
  SftpSession,
} from './sftp-connect.ts';
import Type, { type Static } from 'typebox';
import { Default, readOptions, type OptionsOf } from '../transformers/contract.ts';

const schema = Type.Object(
  {
    ...sftpServerSchema.properties,
    /** Remote folder (relative to the login's home unless absolute). */
    path: Type.String({ minLength: 1, description: 'Remote folder.' }),
    fileName: Default(
      Type.String({ description: 'Template: {key} (idempotency key), {messageId}, {meta.fileName} …' }),
      '{key}',
    ),
  },
  { anyOf: sftpCredentialRequired },
);

export type SftpPushOptions = OptionsOf<typeof schema>;

export class SftpWriter implements Destination {
  private session: SftpSession | undefined;
  private opening: Promise<SftpSession> | undefined;
  private readonly where: string;

  constructor(
    private readonly o: SftpPushOptions,
    private readonly ctx: ConnectorContext,
  ) {
    this.where = `sftp://${o.username}@${o.host}:${o.port}`;
  }

  async send(msg: Outbound): Promise<SendResult> {
    const name = renderFileName(this.o.fileName, msg);
    const target = posix.join(this.o.path, name);
    const session = await this.connected();
    const { client } = session;
    try {
      const existing = await client.stat(target).catch((error: unknown) => {
        if (isMissing(error)) return null;
        throw error;
      });
      const size = msg.file?.size ?? msg.content.length;
      if (existing && msg.attempt > 1 && existing.size === size) {
        return { detail: `${this.where}${posix.resolve('/', target)} (completed by an earlier attempt)` };
      }
      const part = `${target}.part`;
      // A large file is streamed from its blob, never held in memory.
      await client.put(msg.file ? createReadStream(msg.file.path) : msg.content, part);
      const written = await client.stat(part);
      if (written.size !== size) {
        throw new Error(`${part} holds ${written.size} bytes after upload, expected ${size}`);
      }
      // SFTP v3 rename refuses an existing target on OpenSSH: replace it (same name = same delivery).
      if (existing) await client.delete(target, true);
      await client.rename(part, target);
    } catch (cause) {
      throw await this.failure(session, target, cause);
    }
    return { detail: `${this.where}${posix.resolve('/', target)}` };
  }

  async stop(): Promise<void> {
    await this.opening?.catch(() => undefined);
    await this.session?.close();
    this.session = undefined;
  }

  /** The open session, or a new one; concurrent sends share one connection attempt. */
  private async connected(): Promise<SftpSession> {
    if (this.session?.alive) return this.session;
    this.opening ??= this.open().finally(() => (this.opening = undefined));
    return this.opening;
  }

  private async open(): Promise<SftpSession> {
    await this.session?.close();
    this.session = undefined;
    try {
      this.session = await SftpSession.open(this.o, this.ctx.dataDir);
    } catch (cause) {
      const lastError = describeFailure(cause);
      this.ctx.report({ connected: false, lastError, detail: this.where });
      // Host key and login failures are retryable too: once an admin fixes the server or the pin,
      // the queued deliveries go out without a manual replay.
      throw new SendError('SFTP_CONNECT_FAILED', lastError, { retryable: true, cause });
    }
    this.ctx.report({ connected: true, lastError: null, detail: this.where });
    return this.session;
  }

  /** A refusal by the server is final; anything else is the connection failing, and the next send reconnects. */
  private async failure(session: SftpSession, target: string, cause: unknown): Promise<SendError> {
    const where = `${this.where}${posix.resolve('/', target)}`;
    if (isRefusal(cause)) {
      return new SendError(
        'SFTP_REFUSED',
        `SFTP server refused writing ${where}: ${(cause as Error).message} (fix: check that option path exists and that ${this.o.username} may write, rename and delete there)`,
        { retryable: false, cause },
      );
    }
    // The failed call may be reported before the connection's close event: do not trust the session again.
    if (this.session === session) this.session = undefined;
    await session.close();
    const lastError = `writing ${where} failed, connection dropped: ${(cause as Error).message}`;
    this.ctx.report({ connected: false, lastError });
    return new SendError('SFTP_TRANSFER_FAILED', `${lastError}; a retry rewrites the file`, {
      retryable: true,
      cause,
    });
  }
}

export const sftpPushSpec: DestinationSpec<Static<typeof schema>> = {
  kind: 'destination',
  type: 'sftp-push',
  summary:
    "Uploads each message to a folder on a remote SFTP server as NAME.part, then renames it to NAME. The name comes from a template, by default the idempotency key, so a retry rewrites the same file. The server's host key must be pinned (hostKeySha256 or knownHostsFile).",
  schema,
  // Read here too, so that a destination built without the registry (tests) gets the same defaults.
  create: (input, ctx) => new SftpWriter(readOptions(schema, input), ctx),
};
