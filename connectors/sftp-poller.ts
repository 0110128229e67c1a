// Remote SFTP source: polls a folder on a hospital's or a lab's server and takes each file once its size
// and mtime held across two polls. The remote file is deleted (or moved aside) only after the journal
// commit, so a crash or a dropped connection at any point leaves it there to be taken again; the content
// digest as dedupKey makes that second take a recorded duplicate, not a second filing.
import crypto from 'node:crypto';
import { posix } from 'node:path';
import type { Source, SourceContext, SourceSpec } from './contract.ts';
import { ConnectorSetupError } from './listener-setup.ts';
import Type, { type Static } from 'typebox';
import { Default, readOptions, type OptionsOf } from '../transformers/contract.ts';
import { describeFailure, sftpCredentialRequired, sftpServerSchema, SftpSession } from './sftp-connect.ts';
import { reconnectDelay, Sleeper } from './poll-loop.ts';

const schema = Type.Object(
  {
    ...sftpServerSchema.properties,
    /** Remote folder to poll (relative to the login's home unless absolute). */
    path: Type.String({ minLength: 1, description: 'Remote folder to poll.' }),
    afterRead: Type.Enum(['delete', 'move'], {
      description: 'What happens to a remote file once journaled: deleted, or renamed into moveTo.',
    }),
    /** Remote folder taken files are renamed into when afterRead is `move`. */
    moveTo: Type.Optional(Type.String({ minLength: 1, description: "Remote folder for afterRead: 'move'." })),
    include: Default(Type.String({ description: 'Regular expression a file name must match.' }), '.*'),
    pollMs: Default(Type.Integer({ minimum: 100, description: 'Time between two looks.' }), 5000),
    maxFileBytes: Default(
      Type.Integer({ minimum: 1, description: 'Larger remote files are left where they are and reported.' }),
      52428800,
    ),
    contentType: Default(
      Type.String({ description: 'Content type recorded for every file taken.' }),
      'application/octet-stream',
    ),
    reconnectMinMs: Default(
      Type.Integer({
        minimum: 10,
        description: 'First wait before reconnecting after a lost connection, in milliseconds.',
      }),
      1000,
    ),
    reconnectMaxMs: Default(
      Type.Integer({
        minimum: 10,
        description: 'Longest wait between reconnection attempts (the wait doubles up to it).',
      }),
      60000,
    ),
  },
  {
    anyOf: sftpCredentialRequired,
    if: { properties: { afterRead: { const: 'move' } } },
    then: { required: ['moveTo'] },
  },
);

export type SftpPollOptions = OptionsOf<typeof schema>;

/** Names still being written by a cooperating client: taken only once renamed. */
const inProgress = /\.(part|tmp)$/i;

/** The journal refused or failed: the connection is fine, the file stays for the next poll. */
class JournalFailure extends Error {}

export class SftpPoller implements Source {
  private session: SftpSession | undefined;
  private readonly seen = new Map<string, { size: number; modifyTime: number }>();
  private readonly include: RegExp;
  private readonly where: string;
  private loop: Promise<void> | undefined;
  private stopped = false;
  private readonly sleeper = new Sleeper();
  private failures = 0;

  constructor(
    private readonly o: SftpPollOptions,
    private readonly ctx: SourceContext,
  ) {
    this.include = new RegExp(o.include);
    this.where = `sftp://${o.username}@${o.host}:${o.port}/${o.path.replace(/^\//, '')}`;
  }

  async start(): Promise<void> {
    if (this.o.afterRead === 'move' && !this.o.moveTo) {
      throw new ConnectorSetupError(
        'SFTP_MOVE_TO_MISSING',
        `SFTP poller ${this.where}: afterRead is 'move' but no moveTo folder is given`,
        "set option moveTo to a remote folder, or afterRead: 'delete'",
      );
    }
    this.stopped = false;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.sleeper.wake();
    await this.loop;
    await this.session?.close();
    this.session = undefined;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      let delay = this.o.pollMs;
      try {
        await this.poll(await this.connected());
        this.failures = 0;
      } catch (error) {
        if (error instanceof JournalFailure) this.ctx.report({ lastError: describeFailure(error) });
        else delay = await this.disconnect(error);
      }
      if (!this.stopped) await this.sleeper.sleep(delay);
    }
  }

  private async connected(): Promise<SftpSession> {
    if (this.session?.alive) return this.session;
    await this.session?.close();
    this.session = undefined;
    this.session = await SftpSession.open(this.o, this.ctx.dataDir);
    this.ctx.report({ connected: true, lastError: null, detail: this.where });
    return this.session;
  }

  /** Drops the session after a failure; returns the backoff delay before the next attempt. */
  private async disconnect(error: unknown): Promise<number> {
    await this.session?.close();
    this.session = undefined;
    this.failures++;
    const lastError = describeFailure(error);
    this.ctx.report({ connected: false, lastError, detail: this.where });
    this.ctx.log.warn({ channelId: this.ctx.channelId, where: this.where, lastError }, 'sftp poll failed');
    return reconnectDelay(this.failures, this.o.reconnectMinMs, this.o.reconnectMaxMs);
  }

  /** One look at the folder: takes the files unchanged since the previous look, remembers the others. */
  private async poll(session: SftpSession): Promise<void> {
    const entries = await session.client.list(this.o.path);
    const present = new Set<string>();
    for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      if (entry.type !== '-' || inProgress.test(entry.name) || !this.include.test(entry.name)) continue;
      present.add(entry.name);
      const before = this.seen.get(entry.name);
      this.seen.set(entry.name, { size: entry.size, modifyTime: entry.modifyTime });
      if (!before || before.size !== entry.size || before.modifyTime !== entry.modifyTime) continue;
      if (this.stopped) return;
      if (entry.size > this.o.maxFileBytes) {
        this.ctx.report({
          lastError: `${this.where}/${entry.name} is ${entry.size} bytes, over maxFileBytes (${this.o.maxFileBytes}): left on the server`,
        });
        continue;
      }
      await this.take(session, entry.name, entry.size);
    }
    for (const name of this.seen.keys()) if (!present.has(name)) this.seen.delete(name);
  }

  private async take(session: SftpSession, name: string, size: number): Promise<void> {
    const remotePath = posix.join(this.o.path, name);
    const content = (await session.client.get(remotePath)) as Buffer;
    // Written to between the listing and the read: not stable after all, look again next poll.
    if (content.length !== size) return;
    const digest = crypto.createHash('sha256').update(content).digest('hex');
    let receipt;
    try {
      receipt = await this.ctx.receive({
        content,
        contentType: this.o.contentType,
        meta: { fileName: name, remotePath, size },
        sender: `sftp://${this.o.username}@${this.o.host}:${this.o.port}`,
        dedupKey: `sha256:${digest}`,
      });
    } catch (cause) {
      throw new JournalFailure(
        `${this.where}/${name} was not journaled, it stays on the server: ${describeFailure(cause)}`,
        {
          cause,
        },
      );
    }
    // The journal holds the content now: removing the remote file is the acknowledgement.
    if (this.o.afterRead === 'move') await this.moveAside(session, remotePath, name, receipt.messageId);
    else await session.client.delete(remotePath, true);
    this.seen.delete(name);
    this.ctx.log.debug(
      { channelId: this.ctx.channelId, messageId: receipt.messageId, duplicateOf: receipt.duplicateOf },
      'sftp file taken',
    );
  }

  /** Renames into moveTo; a name already there (a re-sent file) gets the message id appended. */
  private async moveAside(
    session: SftpSession,
    from: string,
    name: string,
    messageId: number,
  ): Promise<void> {
    const target = posix.join(this.o.moveTo!, name);
    if ((await session.client.exists(target)) === false) await session.client.rename(from, target);
    else await session.client.rename(from, `${target}.${messageId}`);
  }
}

export const sftpPollSpec: SourceSpec<Static<typeof schema>> = {
  kind: 'source',
  type: 'sftp-poll',
  summary:
    "Polls a folder on a remote SFTP server. A file is taken once its size and mtime held across two polls (`.part`/`.tmp` names wait for their rename); it is deleted or moved to `moveTo` only after the journal commit. Reconnects with backoff. The server's host key must be pinned (hostKeySha256 or knownHostsFile).",
  schema,
  // Read here too, so that a source built without the registry (tests) gets the same defaults.
  create: (input, ctx) => new SftpPoller(readOptions(schema, input), ctx),
};
