// An in-memory stand-in for the engine's SourceContext, for connector tests: accounts with passwords
// and keys, a journal that records what receive() got (with de-duplication), scripted outcomes, and a
// shared-service registry that several contexts (channels) can share, as in the engine.
import { createHash, timingSafeEqual } from 'node:crypto';
import ssh2 from 'ssh2';
import type {
  Account,
  Accounts,
  ConnectorState,
  DueAnswer,
  Inbound,
  Logger,
  Outcome,
  Receipt,
  SharedHandle,
  SharedService,
  SourceContext,
} from '../../connectors/contract.ts';

export interface FakeAccount extends Account {
  password?: string;
  /** OpenSSH public key lines (`ssh-ed25519 AAAA… comment`). */
  publicKeys?: string[];
}

export interface Journaled extends Inbound {
  messageId: number;
  duplicateOf?: number;
}

const digest = (s: string | Buffer): Buffer => createHash('sha256').update(s).digest();

export class FakeAccounts implements Accounts {
  private readonly byLogin: Map<string, FakeAccount>;
  constructor(accounts: FakeAccount[]) {
    this.byLogin = new Map(accounts.map((a) => [a.login, a]));
  }
  async verifyPassword(login: string, password: string): Promise<Account | null> {
    const a = this.byLogin.get(login);
    // Compare digests so that unequal lengths take the same path as unequal bytes.
    const ok = a?.password !== undefined && timingSafeEqual(digest(a.password), digest(password));
    return ok && a ? strip(a) : null;
  }
  async verifyPublicKey(login: string, _algorithm: string, key: Buffer): Promise<Account | null> {
    const a = this.byLogin.get(login);
    const known = (a?.publicKeys ?? []).map((line) => {
      const parsed = ssh2.utils.parseKey(line);
      if (parsed instanceof Error) throw parsed;
      return parsed.getPublicSSH();
    });
    return a && known.some((k) => k.equals(key)) ? strip(a) : null;
  }
  async find(login: string): Promise<Account | null> {
    const a = this.byLogin.get(login);
    return a ? strip(a) : null;
  }
}

function strip(a: FakeAccount): Account {
  return { login: a.login, role: a.role, finess: a.finess };
}

/** One per fake engine: contexts built on the same registry share their services. */
export class FakeSharedRegistry {
  private readonly entries = new Map<
    string,
    { service: SharedService; users: number; started: Promise<void> }
  >();

  async acquire<T extends SharedService>(key: string, create: () => T): Promise<SharedHandle<T>> {
    let entry = this.entries.get(key);
    if (!entry) {
      const service = create();
      entry = { service, users: 0, started: service.start() };
      this.entries.set(key, entry);
    }
    entry.users++;
    const current = entry;
    try {
      await current.started;
    } catch (err) {
      this.entries.delete(key);
      throw err;
    }
    let released = false;
    return {
      service: current.service as T,
      release: async () => {
        if (released) return;
        released = true;
        if (--current.users === 0) {
          this.entries.delete(key);
          await current.service.stop();
        }
      },
    };
  }

  get size(): number {
    return this.entries.size;
  }
}

export const silentLog: Logger = { debug() {}, info() {}, warn() {}, error() {} };

export interface FakeContextOptions {
  dataDir: string;
  accounts: FakeAccount[];
  channelId?: string;
  shared?: FakeSharedRegistry;
  /** Decides each message's outcome (default TRANSFORMED, no response). */
  outcome?: (msg: Journaled) => Outcome | Promise<Outcome>;
  /** Runs before a message is journaled; throwing makes receive() fail as a broken journal would. */
  beforeReceive?: (msg: Inbound) => void | Promise<void>;
}

export class FakeSourceContext implements SourceContext {
  readonly channelId: string;
  readonly dataDir: string;
  readonly log: Logger = silentLog;
  readonly accounts: Accounts;
  readonly journal: Journaled[] = [];
  readonly states: ConnectorState[] = [];
  private readonly registry: FakeSharedRegistry;
  private readonly options: FakeContextOptions;
  private readonly outcomes = new Map<number, Promise<Outcome>>();
  private readonly seen = new Map<string, number>();
  private waiting: Array<(msg: Inbound) => void> = [];
  /** When set, receive() waits for it before journaling (a slow journal). */
  gate: Promise<void> | null = null;
  /** When set, receive() throws it (the journal is down). */
  failure: Error | null = null;

  constructor(options: FakeContextOptions) {
    this.options = options;
    this.channelId = options.channelId ?? 'test-channel';
    this.dataDir = options.dataDir;
    this.accounts = new FakeAccounts(options.accounts);
    this.registry = options.shared ?? new FakeSharedRegistry();
  }

  report(state: ConnectorState): void {
    this.states.push(state);
  }

  shared<T extends SharedService>(key: string, create: () => T): Promise<SharedHandle<T>> {
    return this.registry.acquire(key, create);
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
    const messageId = this.journal.length + 1;
    const duplicateOf = msg.dedupKey ? this.seen.get(msg.dedupKey) : undefined;
    if (msg.dedupKey && duplicateOf === undefined) this.seen.set(msg.dedupKey, messageId);
    const entry: Journaled = { ...msg, messageId, ...(duplicateOf ? { duplicateOf } : {}) };
    this.journal.push(entry);
    return { messageId, ...(duplicateOf ? { duplicateOf } : {}) };
  }

  outcome(messageId: number): Promise<Outcome> {
    let known = this.outcomes.get(messageId);
    if (!known) {
      const msg = this.journal[messageId - 1];
      if (!msg) return Promise.reject(new Error(`no message ${messageId}`));
      known = Promise.resolve(this.decide(msg));
      this.outcomes.set(messageId, known);
    }
    return known;
  }

  /** Answers the source recorded as given: message id → code (AA, AE, AR). */
  readonly answers = new Map<number, string>();

  async answersDue(afterId = 0): Promise<DueAnswer[]> {
    return this.journal
      .filter((m) => m.owesAnswer && !m.rejected && m.messageId > afterId && !this.answers.has(m.messageId))
      .map((m) => ({
        messageId: m.messageId,
        content: m.content,
        contentType: m.contentType ?? 'application/octet-stream',
        meta: m.meta ?? {},
        sender: m.sender ?? null,
      }));
  }

  async answered(messageId: number, code: string): Promise<void> {
    this.answers.set(messageId, code);
  }

  private decide(msg: Journaled): Outcome | Promise<Outcome> {
    if (this.options.outcome) return this.options.outcome(msg);
    if (msg.rejected) return { messageId: msg.messageId, status: 'REJECTED', error: msg.rejected };
    if (msg.duplicateOf) return { messageId: msg.messageId, status: 'DUPLICATE' };
    return { messageId: msg.messageId, status: 'TRANSFORMED' };
  }
}
