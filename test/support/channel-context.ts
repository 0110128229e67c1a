// The context a connector test drives a source with: the real engine underneath (a real store on a
// temporary directory, its journal and de-duplication, scrypt accounts, a deployed channel whose
// processing steps and destination run, the engine's shared services). Only what a test injects on
// purpose — a slow or a broken journal — is not the real thing.
import ssh2 from 'ssh2';
import { builtinRegistry } from '../../channels/builtins.ts';
import type { Engine } from '../../channels/engine.ts';
import type {
  ConnectorContext,
  ConnectorState,
  Inbound,
  Receipt,
  SharedHandle,
  SharedService,
  SourceContext,
} from '../../connectors/contract.ts';
import type { Role } from '../../store/accounts.ts';
import { startEngine, type Harness } from './engine-harness.ts';
import { idleSource, makeSink, upperStep, type Sink } from './sink.ts';

export interface TestAccount {
  login: string;
  role: Role;
  finess?: string;
  password?: string;
  /** OpenSSH public key lines (`ssh-ed25519 AAAA… comment`). */
  publicKeys?: string[];
}

/** A message as the source handed it over, with what the real journal answered. */
export interface Journaled extends Inbound {
  messageId: number;
  duplicateOf?: number;
}

export interface ChannelSetup {
  id: string;
  /** Processing steps; `test-upper` (support/sink.ts) fails on content holding "boom". */
  steps?: object[];
}

export interface ConnectorEngine {
  engine: Engine;
  harness: Harness;
  /** The channels' one destination (`out`). */
  sink: Sink;
  context(channelId: string, options?: ContextOptions): ChannelContext;
  stop(): Promise<void>;
}

export interface ContextOptions {
  /** Runs before the message is journaled; throwing makes receive() fail as a broken journal would. */
  beforeReceive?: (msg: Inbound) => void | Promise<void>;
}

/** An engine whose channels have an idle source: the test's own connector is their way in. */
export async function startConnectorEngine(options: {
  accounts?: TestAccount[];
  channels?: ChannelSetup[];
  /** Where relative paths of connector options resolve (default: a new temporary directory). */
  dataDir?: string;
}): Promise<ConnectorEngine> {
  const sink = makeSink();
  const harness = await startEngine({
    dataDir: options.dataDir,
    registry: builtinRegistry().register(sink.spec, upperStep, idleSource),
    channels: (options.channels ?? [{ id: 'test-channel' }]).map((c) => ({
      id: c.id,
      source: { type: 'test-idle' },
      steps: c.steps ?? [],
      destinations: [{ name: 'out', type: 'test-sink' }],
    })),
  });
  const { accounts } = harness.engine.store;
  for (const a of options.accounts ?? []) {
    accounts.add({
      login: a.login,
      role: a.role,
      finess: a.finess ?? null,
      password: a.password ?? null,
      publicKeys: (a.publicKeys ?? []).map(publicKey),
    });
  }
  return {
    engine: harness.engine,
    harness,
    sink,
    context: (channelId, contextOptions = {}) =>
      new ChannelContext(harness.engine, channelId, contextOptions),
    stop: () => harness.stop(),
  };
}

/** One engine with one channel, and the context of that channel. */
export async function channelContext(
  options: { accounts?: TestAccount[]; steps?: object[]; dataDir?: string } & ContextOptions = {},
): Promise<ChannelContext> {
  const e = await startConnectorEngine({
    accounts: options.accounts,
    dataDir: options.dataDir,
    channels: [{ id: 'test-channel', steps: options.steps }],
  });
  return new ChannelContext(e.engine, 'test-channel', { ...options, onStop: () => e.stop() });
}

function publicKey(line: string): { algorithm: string; key: Buffer } {
  const parsed = ssh2.utils.parseKey(line);
  if (parsed instanceof Error) throw parsed;
  return { algorithm: parsed.type, key: parsed.getPublicSSH() };
}

export class ChannelContext implements SourceContext {
  readonly states: ConnectorState[] = [];
  /** Every message handed to receive() and journaled, oldest first. */
  readonly journal: Journaled[] = [];
  /** When set, receive() waits for it before journaling (a slow journal). */
  gate: Promise<void> | null = null;
  /** When set, receive() throws it (the journal is down). */
  failure: Error | null = null;
  private readonly base: ConnectorContext;
  private waiting: Array<(msg: Inbound) => void> = [];

  constructor(
    readonly engine: Engine,
    readonly channelId: string,
    private readonly options: ContextOptions & { onStop?: () => Promise<void> } = {},
  ) {
    this.base = engine.connectorContext(channelId, (s) => this.states.push(s));
  }

  get dataDir(): string {
    return this.base.dataDir;
  }

  get log(): ConnectorContext['log'] {
    return this.base.log;
  }

  get accounts(): ConnectorContext['accounts'] {
    return this.base.accounts;
  }

  report(state: ConnectorState): void {
    this.base.report(state);
  }

  shared<T extends SharedService>(key: string, create: () => T): Promise<SharedHandle<T>> {
    return this.base.shared(key, create);
  }

  /** Resolves on the next call of receive(), before the gate. */
  nextReceive(): Promise<Inbound> {
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  async receive(msg: Inbound): Promise<Receipt> {
    const callers = this.waiting;
    this.waiting = [];
    for (const resolve of callers) resolve(msg);
    if (this.gate) await this.gate;
    if (this.failure) throw this.failure;
    await this.options.beforeReceive?.(msg);
    const receipt = await this.engine.channel(this.channelId).receive(msg);
    this.journal.push({ ...msg, ...receipt });
    return receipt;
  }

  outcome(messageId: number): ReturnType<SourceContext['outcome']> {
    return this.engine.channel(this.channelId).outcome(messageId);
  }

  answersDue(afterId?: number): ReturnType<SourceContext['answersDue']> {
    return this.engine.channel(this.channelId).answersDue(afterId);
  }

  answered(messageId: number, code: string): Promise<void> {
    return this.engine.channel(this.channelId).answered(messageId, code);
  }

  /** Stops the engine of a context made by channelContext(). */
  async stop(): Promise<void> {
    await this.options.onStop?.();
  }
}
