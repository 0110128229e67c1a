// The engine: the store, the deployed channels and the services they share. It owns the order of
// start (store, destinations, processing, sources) and of shutdown (the reverse), and pruning.
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
import type { LoadedConfig } from '../config/config.ts';
import { Store } from '../store/store.ts';
import type { AccountRecord } from '../store/accounts.ts';
import { Channel, type ChannelStatus } from './channel.ts';
import type { Registry } from './registry.ts';
import { describeError } from './steps.ts';
import { OncoError } from '../config/errors.ts';

export interface EngineOptions {
  config: LoadedConfig;
  dataDir: string;
  registry: Registry;
  log: pino.Logger;
}

export class EngineError extends OncoError {
  declare readonly code: 'CHANNEL_UNKNOWN' | 'CHANNEL_STATE';
  constructor(code: 'CHANNEL_UNKNOWN' | 'CHANNEL_STATE', message: string) {
    super(code, { message });
  }
}

interface SharedEntry {
  service: SharedService;
  refs: number;
  ready: Promise<void>;
}

const toAccount = (r: AccountRecord | null | undefined): Account | null =>
  r ? { login: r.login, role: r.role, finess: r.finess } : null;

export class Engine {
  readonly store: Store;
  readonly channels = new Map<string, Channel>();
  readonly startedAt = Date.now();
  private readonly shared = new Map<string, SharedEntry>();
  private pruneTimer: NodeJS.Timeout | undefined;
  private readonly accounts: ConnectorAccounts;

  constructor(private readonly o: EngineOptions) {
    this.store = new Store({ dataDir: o.dataDir, synchronous: o.config.engine.store.synchronous });
    const accounts = this.store.accounts;
    this.accounts = {
      verifyPassword: async (login, password) => toAccount(await accounts.checkPassword(login, password)),
      verifyPublicKey: async (login, algorithm, key) => {
        const a = accounts.get(login);
        return a && !a.disabled && accounts.hasPublicKey(login, algorithm, key) ? toAccount(a) : null;
      },
      find: async (login) => toAccount(accounts.get(login)),
    };
    for (const { config } of o.config.channels) {
      this.channels.set(
        config.id,
        new Channel(config, {
          store: this.store,
          registry: o.registry,
          log: o.log.child({ channel: config.id }),
          defaults: o.config.engine.defaults,
          connectorContext: (id, report) => this.connectorContext(id, report),
          dispatch: (id, msg) => this.dispatch(id, msg),
        }),
      );
    }
  }

  get config(): LoadedConfig {
    return this.o.config;
  }

  get log(): pino.Logger {
    return this.o.log;
  }

  /** Deploys every enabled channel. A channel that fails to deploy is reported, the others still run. */
  async start(): Promise<void> {
    for (const c of this.channels.values()) {
      if (!c.config.enabled) continue;
      await c
        .deploy()
        .catch((e) => this.o.log.error({ channel: c.id, err: describeError(e) }, 'deploy failed'));
    }
    const every = this.o.config.engine.store.pruneEveryMinutes * 60_000;
    this.pruneTimer = setInterval(() => void this.prune(), every);
    this.pruneTimer.unref();
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
    this.store.close();
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
    if (c.state === 'UNDEPLOYED' || c.state === 'FAILED') {
      throw new EngineError(
        'CHANNEL_STATE',
        `channel "${channelId}" is not deployed: deploy it to let messages in`,
      );
    }
    return c.receive(msg);
  }

  /** Deletes finished messages older than the configured age, then gives the space back to the disk. */
  async prune(now = Date.now()): Promise<number> {
    const before = now - this.o.config.engine.store.pruneAfterDays * 86_400_000;
    let total = 0;
    for (;;) {
      const n = await this.store.writer.write(() => this.store.journal.prune(before, 500));
      total += n;
      if (n < 500) break;
    }
    if (total > 0) {
      this.store.reclaimSpace();
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
