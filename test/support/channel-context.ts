// The context a connector test drives a source with: the real engine underneath (a real store on a
// temporary directory, its journal and de-duplication, scrypt accounts, a deployed channel whose
// processing steps and destination run, the engine's shared services). Only what a test injects on
// purpose — a slow or a broken journal — is not the real thing.
import ssh2 from 'ssh2';
import { builtinRegistry } from '../../channels/builtins.ts';
import type { Engine } from '../../channels/engine.ts';
import type {
  ConnectorState,
  Inbound,
  Receipt,
  SourceContext,
  SourceSpec,
} from '../../connectors/contract.ts';
import type { Role } from '../../store/accounts.ts';
import { addAccount, startEngine, type Harness } from './engine-harness.ts';
import { idleSource, makeSink, upperStep, type Sink } from './sink.ts';

export interface TestAccount {
  login: string;
  role: Role;
  finess?: string;
  password?: string;
  /** OpenSSH public key lines (`ssh-ed25519 AAAA… comment`). */
  publicKeys?: string[];
}

/**
 * A message as the source handed it over, with what the real journal answered; `content` is the
 * staged bytes for a source that staged them (empty for a file above the threshold: see `staged`).
 */
export interface Journaled extends Omit<Inbound, 'content'> {
  content: Buffer;
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
  /** The context the engine gave the channel's source when it deployed it. */
  sourceContext(channelId: string): SourceContext;
  stop(): Promise<void>;
}

export interface ContextOptions {
  /** Runs before the message is journaled; throwing makes receive() fail as a broken journal would. */
  beforeReceive?: (msg: Inbound) => void | Promise<void>;
}

/**
 * An engine whose channels have an idle source: the test's own connector is their way in, through
 * the very context the engine gave that source.
 */
export async function startConnectorEngine(options: {
  accounts?: TestAccount[];
  channels?: ChannelSetup[];
  /** Where relative paths of connector options resolve (default: a new temporary directory). */
  dataDir?: string;
}): Promise<ConnectorEngine> {
  const sink = makeSink();
  const given = new Map<string, SourceContext>();
  const capturing: SourceSpec = {
    ...idleSource,
    type: 'test-context',
    create: (o, ctx) => (given.set(ctx.channelId, ctx), idleSource.create()),
  };
  const harness = await startEngine({
    dataDir: options.dataDir,
    registry: builtinRegistry().register(sink.spec, upperStep, capturing),
    channels: (options.channels ?? [{ id: 'test-channel' }]).map((c) => ({
      id: c.id,
      source: { type: 'test-context' },
      steps: c.steps ?? [],
      destinations: [{ name: 'out', type: 'test-sink' }],
    })),
  });
  for (const a of options.accounts ?? []) {
    await addAccount(harness.engine.store, {
      login: a.login,
      role: a.role,
      finess: a.finess ?? null,
      password: a.password ?? null,
      publicKeys: (a.publicKeys ?? []).map(publicKey),
    });
  }
  const sourceContext = (channelId: string): SourceContext => {
    const ctx = given.get(channelId);
    if (!ctx) throw new Error(`no channel "${channelId}" in this engine: list it in channels`);
    return ctx;
  };
  return {
    engine: harness.engine,
    harness,
    sink,
    sourceContext,
    context: (channelId, contextOptions = {}) =>
      hooked(harness.engine, sourceContext(channelId), contextOptions),
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
  return hooked(e.engine, e.sourceContext('test-channel'), { ...options, onStop: () => e.stop() });
}

function publicKey(line: string): { algorithm: string; key: Buffer } {
  const parsed = ssh2.utils.parseKey(line);
  if (parsed instanceof Error) throw parsed;
  return { algorithm: parsed.type, key: parsed.getPublicSSH() };
}

/** What a test adds to the channel's own source context. */
export interface ContextHooks {
  readonly engine: Engine;
  /** Every state the connector reported, in order. */
  readonly states: ConnectorState[];
  /** Every message handed to receive() and journaled, oldest first, with the journal's receipt. */
  readonly journal: Journaled[];
  /** When set, receive() waits for it before journaling (a slow journal). */
  gate: Promise<void> | null;
  /** When set, receive() throws it (the journal is down). */
  failure: Error | null;
  /** Resolves on the next call of receive(), before the gate. */
  nextReceive(): Promise<Inbound>;
  /** Stops the engine of a context made by channelContext(). */
  stop(): Promise<void>;
}

export type ChannelContext = SourceContext & ContextHooks;

/**
 * The context the engine gave the channel's source, with the test's hooks in front of receive()
 * and report(); every other member (outcome, accounts, shared services…) is the channel's own.
 */
function hooked(
  engine: Engine,
  real: SourceContext,
  options: ContextOptions & { onStop?: () => Promise<void> },
): ChannelContext {
  let waiting: Array<(msg: Inbound) => void> = [];
  const ctx: ChannelContext = Object.assign(Object.create(real) as SourceContext, {
    engine,
    states: [] as ConnectorState[],
    journal: [] as Journaled[],
    gate: null as Promise<void> | null,
    failure: null as Error | null,
    nextReceive: () => new Promise<Inbound>((resolve) => waiting.push(resolve)),
    stop: async () => options.onStop?.(),
    report: (state: ConnectorState) => {
      ctx.states.push(state);
      real.report(state);
    },
    receive: async (msg: Inbound): Promise<Receipt> => {
      const callers = waiting;
      waiting = [];
      for (const resolve of callers) resolve(msg);
      if (ctx.gate) await ctx.gate;
      if (ctx.failure) throw ctx.failure;
      await options.beforeReceive?.(msg);
      const receipt = await real.receive(msg);
      ctx.journal.push({
        ...msg,
        content: msg.content ?? msg.staged?.content ?? Buffer.alloc(0),
        ...receipt,
      });
      return receipt;
    },
  });
  return ctx;
}
