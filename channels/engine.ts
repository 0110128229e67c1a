// The engine: the store, the deployed channels and the services they share. It owns the order of
// start (store, destinations, processing, sources) and of shutdown (the reverse), and pruning.
import path from 'node:path';
import type pino from 'pino';
import type {
  Account,
  Accounts as ConnectorAccounts,
  ConnectorContext,
  ConnectorState,
  Inbound,
  Receipt,
  SharedHandle,
  SharedService,
} from '../connectors/contract.ts';
import { loadConfig, type ChannelConfig, type LoadedConfig } from '../config/config.ts';
import { ConfigError } from '../config/loader.ts';
import { Store } from '../store/store.ts';
import { StepPool, poolThreads } from './step-pool.ts';
import { lockDataDir, type DataDirLock } from '../store/db.ts';
import type { BlobError } from '../store/blob-files.ts';
import type { AccountRecord } from '../store/accounts.ts';
import type { AuthResult } from '../store/auth.ts';
import { Channel, type ChannelStatus } from './channel.ts';
import type { Registry } from './registry.ts';
import { MessageIndexer } from './message-index.ts';
import { describeError } from './steps.ts';
import { OncoError } from '../config/errors.ts';
import { validateConfig } from './validate.ts';

/** What deployFromFile did, as the API, the page and the CLI report it. */
export type DeployOutcome = 'deployed' | 'redeployed' | 'undeployed' | 'removed';

export interface EngineOptions {
  config: LoadedConfig;
  dataDir: string;
  registry: Registry;
  log: pino.Logger;
}

export class EngineError extends OncoError {
  declare readonly code:
    'CHANNEL_UNKNOWN' | 'CHANNEL_STATE' | 'CHANNEL_DEPLOY_FAILED' | 'ENGINE_START_FAILED' | 'DATA_DIR_IN_USE';
  constructor(code: EngineError['code'], message: string, hint?: string) {
    super(code, { message, ...(hint === undefined ? {} : { hint }) });
  }
}

interface SharedEntry {
  service: SharedService;
  refs: number;
  ready: Promise<void>;
}

/** One engine per data directory: two would share the journal and fail each other's writes. */
function takeDataDir(dataDir: string): DataDirLock | undefined {
  if (dataDir === ':memory:') return undefined;
  const lock = lockDataDir(dataDir);
  if ('release' in lock) return lock;
  const who = lock.pid === null ? 'another engine' : `the engine of process ${lock.pid}`;
  throw new EngineError(
    'DATA_DIR_IN_USE',
    `data directory ${dataDir} is in use by ${who}${lock.since ? ` (started ${lock.since})` : ''}`,
    lock.pid === null
      ? 'stop the other engine first, or start this one with another --data directory'
      : `stop it first (kill -TERM ${lock.pid}), or start this one with another --data directory`,
  );
}

const toAccount = (r: AccountRecord | null | undefined): Account | null =>
  r ? { login: r.login, role: r.role, finess: r.finess } : null;

export class Engine {
  readonly store: Store;
  readonly channels = new Map<string, Channel>();
  readonly startedAt = Date.now();
  private readonly shared = new Map<string, SharedEntry>();
  /** During start: each channel's deploy, awaited by messages dispatched to it before it is ready. */
  private readonly deploying = new Map<string, Promise<void>>();
  /** Redeploys one at a time: two at once could interleave undeploy and deploy of one channel. */
  private deploys: Promise<void> = Promise.resolve();
  private pruneTimer: NodeJS.Timeout | undefined;
  private readonly accounts: ConnectorAccounts;
  private readonly lock: DataDirLock | undefined;
  private readonly indexer: MessageIndexer;
  private readonly stepPool: StepPool;

  constructor(private readonly o: EngineOptions) {
    this.lock = takeDataDir(o.dataDir);
    try {
      const { synchronous, writer, blobThresholdBytes, writerRestarts } = o.config.engine.store;
      this.store = new Store({
        dataDir: o.dataDir,
        synchronous,
        writer,
        blobThresholdBytes,
        writerRestart: { maxRestarts: writerRestarts },
        log: o.log.child({ service: 'store-writer' }),
      });
    } catch (error) {
      this.lock?.release();
      throw error;
    }
    this.stepPool = new StepPool(poolThreads(o.config.engine.stepPool.threads));
    this.indexer = new MessageIndexer(this.store, { log: o.log.child({ service: 'message-index' }) });
    const { auth, accounts } = this.store;
    const granted = (r: AuthResult): Account | null => (r.ok ? toAccount(r.account) : null);
    this.accounts = {
      verifyPassword: async (login, password, peer) => granted(await auth.password(login, password, peer)),
      verifyPublicKey: async (login, algorithm, key, peer, proof) =>
        granted(await auth.publicKey(login, algorithm, key, peer, proof)),
      find: async (login) => toAccount(accounts.get(login)),
      ofEstablishment: async (finess) =>
        accounts
          .list()
          .filter((a) => a.role === 'establishment' && a.finess === finess && !a.disabled)
          .map(toAccount)
          .filter((a): a is Account => a !== null),
      audit: async (act) => {
        await this.store.write.audit.record(act);
      },
    };
    for (const { config } of o.config.channels) this.channels.set(config.id, this.newChannel(config));
  }

  private newChannel(config: ChannelConfig): Channel {
    return new Channel(config, {
      store: this.store,
      registry: this.o.registry,
      log: this.o.log.child({ channel: config.id }),
      defaults: this.o.config.engine.defaults,
      connectorContext: (id, report) => this.connectorContext(id, report),
      dispatch: (id, msg) => this.dispatch(id, msg),
      stepPool: this.stepPool,
    });
  }

  get config(): LoadedConfig {
    return this.o.config;
  }

  get log(): pino.Logger {
    return this.o.log;
  }

  /**
   * Deploys every enabled channel with its source closed (destinations and processing resume their
   * journaled work: recovery), then opens the sources. A channel writer resuming work towards a
   * channel deployed after its own therefore meets a target that takes messages, and no source
   * takes a message before every channel can. If a channel cannot deploy or open its source (a port
   * in use), everything opened is stopped and the start fails: a half-started appliance would
   * acknowledge on some channels while silently missing others.
   */
  async start(): Promise<void> {
    await this.recoverBlobs();
    const enabled = [...this.channels.values()].filter((c) => c.config.enabled);
    const failures: string[] = [];
    const failed = (c: Channel) => (e: unknown) => {
      failures.push(`channel "${c.id}": ${describeError(e)}`);
      this.o.log.error({ channel: c.id, err: describeError(e) }, 'deploy failed');
    };
    // Registered before the first deploy runs, so that dispatch() can wait for a target not deployed yet.
    let previous: Promise<void> = Promise.resolve();
    for (const c of enabled) {
      previous = previous.then(() => c.deploy({ paused: true }).catch(failed(c)));
      this.deploying.set(c.id, previous);
    }
    await previous;
    this.deploying.clear();
    for (const c of enabled) {
      if (failures.length > 0) break;
      await c.resume().catch(failed(c));
    }
    if (failures.length > 0) {
      await this.stop();
      throw new EngineError(
        'ENGINE_START_FAILED',
        `not started, ${failures.length} channel(s) failed: ${failures.join('; ')}`,
        'fix the cause named above (for a port in use: stop the other process or choose another port), then start again',
      );
    }
    const every = this.o.config.engine.store.pruneEveryMinutes * 60_000;
    this.pruneTimer = setInterval(() => void this.prune(), every);
    this.pruneTimer.unref();
    this.indexer.start();
  }

  /** Layer order: every source first (nothing new comes in), then processing and destinations, then the store. */
  async stop(): Promise<void> {
    if (this.pruneTimer) clearInterval(this.pruneTimer);
    const running = [...this.channels.values()];
    await Promise.all(running.map((c) => c.pause()));
    await Promise.all(running.map((c) => c.undeploy()));
    for (const [key, entry] of this.shared) {
      await entry.service
        .stop()
        .catch((e) => this.o.log.error({ service: key, err: describeError(e) }, 'stop failed'));
    }
    this.shared.clear();
    // The channels have drained: no step is waiting on a pool thread any more.
    await this.stepPool.close();
    await this.indexer.stop();
    await this.store.close();
    this.lock?.release();
  }

  /**
   * Re-reads channel `id`'s file and makes the running engine match it, without a restart: a new
   * file is deployed, an edited one replaces the running version (drained first, paused stays
   * paused), a removed one is undeployed and forgotten. An invalid file is refused with its
   * problems (ConfigError) and the running version is left untouched. If the new version cannot
   * start (a port in use), the previous one is deployed again and the error says so.
   */
  deployFromFile(id: string): Promise<DeployOutcome> {
    const run = this.deploys.then(() => this.applyChannelFile(id));
    this.deploys = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private async applyChannelFile(id: string): Promise<DeployOutcome> {
    const fresh = loadConfig(this.o.config.dir, { ...process.env, ONCO_DATA_DIR: this.o.dataDir });
    const entry = fresh.channels.find((c) => c.config.id === id);
    const index = this.o.config.channels.findIndex((c) => c.config.id === id);
    const current = this.o.config.channels[index];
    // Only this channel's file decides; with neither version known, any broken channel file may be it.
    const concerned = (file: string) =>
      entry || current
        ? file === entry?.file.file || file === current?.file.file
        : path.dirname(file) === path.join(this.o.config.dir, 'channels');
    const problems = validateConfig(fresh, this.o.registry).filter((p) => concerned(p.file));
    if (problems.length > 0) throw new ConfigError(problems);
    const channel = this.channels.get(id);
    if (!entry) {
      if (!channel || !current) {
        throw new EngineError(
          'CHANNEL_UNKNOWN',
          `no channel "${id}" is running and no file in ${path.join(this.o.config.dir, 'channels')} has this id`,
          `add a channel file with "id: ${id}", or use one of: ${[...this.channels.keys()].join(', ')}`,
        );
      }
      await channel.undeploy();
      this.channels.delete(id);
      this.o.config.channels.splice(index, 1);
      return 'removed';
    }
    if (!channel) {
      const added = this.newChannel(entry.config);
      this.channels.set(id, added);
      this.o.config.channels.push(entry);
      if (entry.config.enabled) await added.deploy();
      return entry.config.enabled ? 'deployed' : 'undeployed';
    }
    const paused = channel.state === 'PAUSED';
    await channel.undeploy();
    this.o.config.channels[index] = entry;
    channel.config = entry.config;
    if (!entry.config.enabled) return 'undeployed';
    try {
      await channel.deploy({ paused });
    } catch (error) {
      this.o.config.channels[index] = current!;
      channel.config = current!.config;
      const restored = await channel.deploy({ paused }).then(
        () => 'the previous version runs again',
        (e) => `the previous version failed too (${describeError(e)})`,
      );
      throw new EngineError(
        'CHANNEL_DEPLOY_FAILED',
        `the new version of channel "${id}" could not start: ${describeError(error)}; ${restored}`,
        'fix the cause in the channel file (for a port in use: another port), then deploy again',
      );
    }
    return 'redeployed';
  }

  channel(id: string): Channel {
    const c = this.channels.get(id);
    if (!c)
      throw new EngineError(
        'CHANNEL_UNKNOWN',
        `no channel "${id}"; known: ${[...this.channels.keys()].join(', ')}`,
      );
    return c;
  }

  status(): ChannelStatus[] {
    return [...this.channels.values()].map((c) => c.status());
  }

  /** The channel writer's way in: the target channel journals the message as its own source would. */
  async dispatch(channelId: string, msg: Inbound): Promise<Receipt> {
    const c = this.channel(channelId);
    await this.deploying.get(channelId);
    if (c.state === 'UNDEPLOYED' || c.state === 'FAILED') {
      throw new EngineError(
        'CHANNEL_STATE',
        `channel "${channelId}" is not deployed: deploy it to let messages in`,
      );
    }
    return c.receive(msg);
  }

  /**
   * Recovery of large content, before any channel runs: blob files of commits that never happened
   * (a crash between writing the file and the commit) are deleted, and every blob that work still
   * needs is read through; a missing or altered one ends its message in ERROR with the reason.
   */
  private async recoverBlobs(): Promise<void> {
    const { blobs, journal } = this.store;
    const swept = await blobs.sweep((digest) => journal.blobKnown(digest), { staging: true });
    if (swept > 0) this.o.log.info({ swept }, 'content files of unfinished commits deleted');
    const { documentFiles, documents } = this.store;
    const orphans = await documentFiles?.sweep((digest) => documents.holdsBlob(digest), { staging: true });
    if (orphans) this.o.log.info({ swept: orphans }, 'document files of unfinished filings deleted');
    const checked = new Map<string, BlobError | null>();
    for (const use of journal.blobsInUse()) {
      if (!checked.has(use.digest)) checked.set(use.digest, await blobs.check(use));
      const problem = checked.get(use.digest);
      if (!problem) continue;
      const error = describeError(problem);
      await this.store.write.journal.contentLost({ messageId: use.messageId, error, now: Date.now() });
      this.o.log.error({ code: problem.code, messageId: use.messageId }, error);
    }
  }

  /**
   * Deletes finished messages older than the configured age, then the content files no message
   * references any more, then gives the space back to the disk.
   */
  async prune(now = Date.now()): Promise<number> {
    const before = now - this.o.config.engine.store.pruneAfterDays * 86_400_000;
    let total = 0;
    for (;;) {
      const n = await this.store.write.journal.prune(before, 500);
      total += n;
      if (n < 500) break;
    }
    const { blobs, journal } = this.store;
    const released = await this.store.write.journal.releaseBlobs();
    const removed = await blobs.sweep((digest) => journal.blobKnown(digest));
    if (released.length > 0 || removed > 0)
      this.o.log.info({ released: released.length, removed }, 'content files pruned');
    if (total > 0) {
      await this.store.reclaimSpace();
      this.o.log.info({ pruned: total }, 'journal pruned');
    }
    return total;
  }

  private connectorContext(channelId: string, report: (s: ConnectorState) => void): ConnectorContext {
    return {
      channelId,
      dataDir: this.o.dataDir,
      log: this.o.log.child({ channel: channelId }),
      accounts: this.accounts,
      report,
      shared: (key, create) => this.acquire(key, create),
      directory: this.o.config.directory,
    };
  }

  private async acquire<T extends SharedService>(key: string, create: () => T): Promise<SharedHandle<T>> {
    let entry = this.shared.get(key);
    if (!entry) {
      const service = create();
      entry = { service, refs: 0, ready: service.start() };
      this.shared.set(key, entry);
      entry.ready.catch(() => this.shared.delete(key));
    }
    entry.refs++;
    await entry.ready;
    const e = entry;
    let released = false;
    return {
      service: e.service as T,
      release: async () => {
        if (released) return;
        released = true;
        e.refs--;
        if (e.refs === 0 && this.shared.get(key) === e) {
          this.shared.delete(key);
          await e.service.stop();
        }
      },
    };
  }
}
