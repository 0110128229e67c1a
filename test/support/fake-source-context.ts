// A SourceContext without an engine, for connector tests: numbers messages, recognises a repeated
// dedupKey as the engine's journal does, and lets a test hold, fail or inspect each receive().
import type {
  Account,
  ConnectorState,
  Inbound,
  Outcome,
  Receipt,
  SourceContext,
} from '../../connectors/contract.ts';

export interface FakeSourceContext extends SourceContext {
  received: Inbound[];
  reports: ConnectorState[];
  warnings: { obj: object; msg: string | undefined }[];
  /** When set, receive() throws it (the journal is down). */
  failure: Error | null;
  /** When set, receive() waits for it before committing (a slow journal). */
  gate: Promise<void> | null;
  /** Resolves on the next call of receive(), before the gate. */
  nextReceive(): Promise<Inbound>;
  /** What outcome() answers; default TRANSFORMED. */
  outcomeOf: (messageId: number) => Outcome;
}

export function fakeSourceContext(
  accounts: Record<string, { password: string } & Account> = {},
): FakeSourceContext {
  const byKey = new Map<string, number>();
  let waiting: ((msg: Inbound) => void)[] = [];
  const ctx: FakeSourceContext = {
    channelId: 'test-channel',
    dataDir: '/nonexistent',
    received: [],
    reports: [],
    warnings: [],
    failure: null,
    gate: null,
    outcomeOf: (messageId) => ({ messageId, status: 'TRANSFORMED' }),
    log: {
      debug() {},
      info() {},
      warn(obj, msg) {
        ctx.warnings.push({ obj, msg });
      },
      error(obj, msg) {
        ctx.warnings.push({ obj, msg });
      },
    },
    accounts: {
      async verifyPassword(login, password) {
        const account = accounts[login];
        return account && account.password === password
          ? { login: account.login, role: account.role, finess: account.finess }
          : null;
      },
      async verifyPublicKey() {
        return null;
      },
      async find(login) {
        return accounts[login] ?? null;
      },
    },
    report(state) {
      ctx.reports.push(state);
    },
    async shared() {
      throw new Error('shared services are not available in connector tests');
    },
    nextReceive() {
      return new Promise((resolve) => waiting.push(resolve));
    },
    async receive(msg): Promise<Receipt> {
      const callers = waiting;
      waiting = [];
      for (const resolve of callers) resolve(msg);
      if (ctx.gate) await ctx.gate;
      if (ctx.failure) throw ctx.failure;
      ctx.received.push(msg);
      const messageId = ctx.received.length;
      const first = msg.dedupKey === undefined ? undefined : byKey.get(msg.dedupKey);
      if (msg.dedupKey !== undefined && first === undefined) byKey.set(msg.dedupKey, messageId);
      return first === undefined ? { messageId } : { messageId, duplicateOf: first };
    },
    async outcome(messageId) {
      return ctx.outcomeOf(messageId);
    },
  };
  return ctx;
}
