// The built-in SFTP server (ssh2): one per engine, shared by the channels that take its drop folders.
// It authenticates establishment and lab accounts through the engine (never the store), gives each
// its own chrooted tree and hands complete uploads to the route registered for the drop folder.
import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import ssh2 from 'ssh2';
import type { AuthContext, ClientInfo, Connection, PublicKeyAuthContext } from 'ssh2';
import type { Account, Accounts, ConnectorAct, Logger, SharedService } from './contract.ts';
import { AccountTrees, loginUsableAsDirectory, type AccountTree } from './sftp-account-tree.ts';
import { SftpFileSystem, type UploadBody, type UploadSink } from './sftp-filesystem.ts';
import { SftpServerError } from './sftp-error.ts';
import { defaultConnectionLimits, type ConnectionLimits } from './listener-setup.ts';
import { loadOrCreateHostKey } from './sftp-host-key.ts';
import { SftpRefusal, STATUS, type DropFolder } from './sftp-paths.ts';

export { DROP_FOLDERS, type DropFolder } from './sftp-paths.ts';
export type { AccountTree } from './sftp-account-tree.ts';
export { SftpServerError } from './sftp-error.ts';

/**
 * A complete file in a drop folder, handed to the channel that takes the folder: its bytes when it
 * was small, else its file, which is removed (or moved to `/error`) once the handler settles.
 */
export interface Upload extends UploadBody {
  account: Account;
  folder: DropFolder;
  /** Final name as the client gave it (after the rename, for a `.part` upload). */
  name: string;
  size: number;
  /** The account's tree, to place answers later: `tree.place('out/ack', …)`, `tree.reject(…)`. */
  tree: AccountTree;
  /**
   * The upload's audit row, its outcome to be set: a route that journals the file records it in the
   * same commit (`Inbound.audit`) and says so (`audited`); otherwise the server records it after.
   */
  audit: ConnectorAct;
}

/**
 * `rejected`: the file goes to `/error` with `NAME.error.txt` giving this reason. `audited`: the
 * upload's audit row was committed with the message.
 */
export type TakeResult = { rejected?: string; audited?: boolean } | void;

export interface Route {
  maxFileBytes: number;
  /**
   * Resolves once the upload is journaled (the client's CLOSE or RENAME is answered OK then); a
   * rejection means not taken: the client is told the upload failed and may send it again.
   */
  take(upload: Upload): Promise<TakeResult>;
}

export interface SftpServerSettings {
  /** 0 picks a free port (tests); see address() for the one in use. */
  port: number;
  bind: string;
  hostKeyFile: string;
}

export interface SftpServerLimits extends ConnectionLimits {
  /** A connection not authenticated this long after it opened is closed (OpenSSH's LoginGraceTime). */
  authTimeoutMs: number;
}

export const defaultSftpLimits: SftpServerLimits = { ...defaultConnectionLimits, authTimeoutMs: 30_000 };

export interface SftpServerOptions extends SftpServerSettings {
  limits?: Partial<SftpServerLimits>;
  dataDir: string;
  accounts: Accounts;
  log: Logger;
}

/**
 * Whether ssh2 runs its ciphers through its native binding (built at install by node-gyp when a C++
 * toolchain and Node's headers are there). Without it every packet goes through a Node cipher object
 * made for it, or through JavaScript for chacha20-poly1305 (OpenSSH's first choice): about twice the
 * SSH CPU of a small file, on the server and on the client.
 */
export function ssh2NativeCrypto(): boolean {
  try {
    const internals = createRequire(import.meta.url)('ssh2/lib/protocol/crypto.js') as {
      bindingAvailable?: boolean;
    };
    return internals.bindingAvailable === true;
  } catch {
    return false;
  }
}

/** Roles that may use SFTP; the others log into the dashboard only. */
const SFTP_ROLES: ReadonlyArray<Account['role']> = ['establishment', 'lab'];
/** Failed authentications tolerated on one connection before it is closed. */
const MAX_AUTH_FAILURES = 6;

export class SftpServer implements SharedService {
  readonly settings: SftpServerSettings;
  private readonly accounts: Accounts;
  private readonly log: Logger;
  private readonly trees: AccountTrees;
  private readonly routes = new Map<DropFolder, Route>();
  private readonly clients = new Set<Connection>();
  private server: ssh2.Server | null = null;
  private listener: net.Server | null = null;
  private readonly limits: SftpServerLimits;
  /** Authentication deadlines by remote `address:port`: ssh2 names a connection by its peer only. */
  private readonly deadlines = new Map<string, NodeJS.Timeout>();

  constructor(options: SftpServerOptions) {
    this.settings = { port: options.port, bind: options.bind, hostKeyFile: options.hostKeyFile };
    this.accounts = options.accounts;
    this.log = options.log;
    this.limits = { ...defaultSftpLimits, ...options.limits };
    this.trees = new AccountTrees(path.join(options.dataDir, 'sftp'));
  }

  /** An account's tree, for answers owed from an earlier session or an earlier run (ACK files after a crash). */
  accountTree(login: string): Promise<AccountTree> {
    return this.trees.open(login);
  }

  /** Registers the channel taking a drop folder; returns the function that unregisters it. */
  route(folder: DropFolder, route: Route): () => void {
    if (this.routes.has(folder)) {
      throw new SftpServerError('SFTP_FOLDER_TAKEN', `two channels take /in/${folder}`, {
        hint: 'give each drop folder to one sftp-drop source only',
      });
    }
    this.routes.set(folder, route);
    return () => {
      if (this.routes.get(folder) === route) this.routes.delete(folder);
    };
  }

  /** The address actually listened on (the port differs from settings when settings.port is 0). */
  address(): { port: number; bind: string } {
    const addr = this.listener?.address();
    return {
      port: typeof addr === 'object' && addr ? addr.port : this.settings.port,
      bind: this.settings.bind,
    };
  }

  async start(): Promise<void> {
    await this.trees.prepare();
    const hostKey = await loadOrCreateHostKey(this.settings.hostKeyFile);
    const server = new ssh2.Server({ hostKeys: [hostKey], ident: 'OncoRelay' }, (client, info) =>
      this.accept(client, info),
    );
    // Our own TCP listener hands sockets to ssh2 (injectSocket): it caps connections and closes one
    // that does not authenticate in time, even one that never sends its SSH identification.
    const listener = net.createServer((socket) => this.admit(server, socket));
    listener.maxConnections = this.limits.maxConnections;
    await new Promise<void>((resolve, reject) => {
      listener.once('error', (err: NodeJS.ErrnoException) =>
        reject(
          new SftpServerError(
            'SFTP_LISTEN',
            `SFTP server cannot listen on ${this.settings.bind}:${this.settings.port}`,
            {
              hint:
                err.code === 'EADDRINUSE'
                  ? 'another program uses this port: stop it or set ONCO_SFTP_PORT'
                  : 'check ONCO_BIND and ONCO_SFTP_PORT',
              cause: err,
            },
          ),
        ),
      );
      listener.listen(this.settings.port, this.settings.bind, () => resolve());
    });
    listener.on('error', (err: Error) => this.log.error({ err }, 'sftp server error'));
    if (!ssh2NativeCrypto()) {
      this.log.warn(
        {},
        "sftp encryption runs without ssh2's native binding (slower): rebuild it with `npm rebuild ssh2` where g++, make and python3 are installed (README, Dependencies)",
      );
    }
    server.on('error', (err: Error) => this.log.error({ err }, 'sftp server error'));
    this.server = server;
    this.listener = listener;
  }

  private admit(server: ssh2.Server, socket: net.Socket): void {
    const key = `${socket.remoteAddress}:${socket.remotePort}`;
    const deadline = setTimeout(() => {
      this.log.info({ remote: key }, 'sftp connection closed: not authenticated in time');
      socket.destroy();
    }, this.limits.authTimeoutMs);
    deadline.unref();
    this.deadlines.set(key, deadline);
    // SFTP is request and reply: with Nagle's algorithm a small reply waits for the client's delayed
    // ACK of the previous one (up to 40 ms on Linux), which capped small uploads at ~80 files/s.
    socket.setNoDelay(true);
    coalesceWrites(socket);
    socket.setTimeout(this.limits.idleTimeoutMs, () => {
      this.log.info({ remote: key }, 'sftp connection closed: idle');
      socket.destroy();
    });
    socket.once('close', () => {
      clearTimeout(deadline);
      this.deadlines.delete(key);
    });
    server.injectSocket(socket);
  }

  async stop(): Promise<void> {
    const listener = this.listener;
    this.server = null;
    this.listener = null;
    if (!listener) return;
    const closed = new Promise<void>((resolve) => listener.close(() => resolve()));
    for (const client of this.clients) client.end();
    await closed;
  }

  /** The sink one account's sessions hand their uploads to. */
  private sinkFor(account: Account, address: string): UploadSink {
    const act = (object: string, size: number): ConnectorAct => ({
      actor: account.login,
      action: 'sftp-upload',
      object,
      source: address,
      establishment: account.finess,
      detail: { size },
    });
    return {
      limitFor: (folder) => this.routes.get(folder)?.maxFileBytes ?? null,
      take: async (tree, folder, name, body, size) => {
        const route = this.routes.get(folder);
        if (!route) {
          throw new SftpRefusal(
            STATUS.FAILURE,
            'SFTP_NO_CHANNEL',
            `no channel takes /in/${folder} now; send the file later`,
          );
        }
        const audit = act(`sftp:/in/${folder}/${name}`, size);
        let result: TakeResult;
        try {
          result = await route.take({ account, folder, name, size, tree, audit, ...body });
        } catch (err) {
          await this.accounts.audit?.({ ...audit, outcome: 'failed' });
          throw err;
        }
        if (!result?.audited) await this.accounts.audit?.(uploadAudit(audit, result?.rejected));
        if (result?.rejected) await tree.reject(name, await body.file(), result.rejected);
        else if (body.content === null) await fs.rm(await body.file(), { force: true });
      },
    };
  }

  private accept(client: Connection, info: ClientInfo): void {
    const address = info.ip;
    const deadline = `${info.ip}:${info.port}`;
    this.clients.add(client);
    client.on('close', () => this.clients.delete(client));
    client.on('error', (err: Error) => this.log.debug({ err }, 'sftp client connection error'));
    let session: { tree: AccountTree; sink: UploadSink } | null = null;
    let failures = 0;
    client.on('authentication', (ctx: AuthContext) => {
      this.authenticate(ctx, address)
        .then(async (account) => {
          if (!account) {
            // OpenSSH clients always try `none` first: that is a question, not a failed attempt.
            if (ctx.method !== 'none' && ++failures >= MAX_AUTH_FAILURES) client.end();
            else ctx.reject(['publickey', 'password']);
            return;
          }
          if (account === 'key-acceptable') return ctx.accept();
          session = { tree: await this.trees.open(account.login), sink: this.sinkFor(account, address) };
          clearTimeout(this.deadlines.get(deadline));
          ctx.accept();
        })
        .catch((err: unknown) => {
          this.log.error({ err }, 'sftp authentication failed on our side');
          client.end();
        });
    });
    client.on('ready', () => {
      client.on('session', (acceptSession) => {
        // No shell, exec or forwarding listeners: ssh2 refuses those requests by itself.
        acceptSession().on('sftp', (acceptSftp) => {
          if (session) new SftpFileSystem(acceptSftp(), session.tree, session.sink, this.log);
        });
      });
    });
  }

  /**
   * The account when the credentials are good, 'key-acceptable' when a client only asks whether a key
   * would do (it then signs), null otherwise. The comparison itself (constant time) is the engine's.
   */
  private async authenticate(ctx: AuthContext, address: string): Promise<Account | 'key-acceptable' | null> {
    if (!loginUsableAsDirectory(ctx.username)) return null;
    // Staff accounts log into the dashboard only: the service refuses (and audits) them here.
    const peer = { address, protocol: 'sftp', roles: SFTP_ROLES } as const;
    if (ctx.method === 'password') return this.accounts.verifyPassword(ctx.username, ctx.password, peer);
    if (ctx.method !== 'publickey') return null;
    const proof = !ctx.signature ? 'query' : signatureValid(ctx) ? 'signed' : 'bad-signature';
    const account = await this.accounts.verifyPublicKey(
      ctx.username,
      ctx.key.algo,
      ctx.key.data,
      peer,
      proof,
    );
    return account && proof === 'query' ? 'key-acceptable' : account;
  }
}

/**
 * SSH packets written in one turn of the event loop leave in one system call: a group commit answers
 * many CLOSEs of a connection at once, and each reply is a packet of its own.
 */
function coalesceWrites(socket: net.Socket): void {
  const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
  let corked = false;
  socket.write = ((...args: unknown[]) => {
    if (!corked) {
      corked = true;
      socket.cork();
      setImmediate(() => {
        corked = false;
        socket.uncork();
      });
    }
    return write(...args);
  }) as typeof socket.write;
}

/** An upload's audit row once its fate is known: taken, or refused with the reason. */
export function uploadAudit(act: ConnectorAct, rejected: string | undefined): ConnectorAct {
  return rejected === undefined
    ? { ...act, outcome: 'ok' }
    : { ...act, outcome: 'refused', detail: { ...act.detail, rejected } };
}

/** Proves the client holds the private half of the offered key. */
function signatureValid(ctx: PublicKeyAuthContext): boolean {
  if (!ctx.signature || !ctx.blob) return false;
  const key = ssh2.utils.parseKey(ctx.key.data);
  if (key instanceof Error) return false;
  return key.verify(ctx.blob, ctx.signature, ctx.hashAlgo) === true;
}
