// Store outbox source: the messages the core store wrote for this channel (a validated RCP form or
// PPS for documents-out, a molecular order), taken into the journal in the order written. Each row
// is journaled and marked taken in one transaction (store/outbox.ts), so a crash at any moment
// neither loses a row nor journals it twice. Woken by every store commit; a poll is the safety net.
import Type from 'typebox';
import type { OutboxAccess, Source, SourceContext, SourceSpec } from './contract.ts';
import { Default, type OptionsOf } from '../transformers/contract.ts';

const schema = Type.Object({
  batch: Default(Type.Integer({ minimum: 1, description: 'Rows read from the outbox at a time.' }), 100),
  pollMs: Default(
    Type.Integer({ minimum: 50, description: 'Reads the outbox this often even when no commit woke it.' }),
    5000,
  ),
});

export type StoreOutboxOptions = OptionsOf<typeof schema>;

export class StoreOutboxSource implements Source {
  private stopped = false;
  private loop: Promise<void> | undefined;
  private unsubscribe: (() => void) | undefined;
  private wake: (() => void) | undefined;
  private dirty = true;

  constructor(
    private readonly o: StoreOutboxOptions,
    private readonly ctx: SourceContext,
    private readonly outbox: OutboxAccess,
  ) {}

  async start(): Promise<void> {
    // The journal's own commits never add outbox rows: they would only wake the loop for nothing.
    this.unsubscribe = this.outbox.onCommit((module) => {
      if (module !== 'journal') this.poke();
    });
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    this.poke();
    await this.loop;
  }

  private poke(): void {
    this.dirty = true;
    this.wake?.();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      if (!this.dirty) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, this.o.pollMs);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.wake = undefined;
        continue;
      }
      this.dirty = false;
      try {
        await this.drain();
        this.ctx.report({ connected: true, lastError: null });
      } catch (error) {
        // The journal could not take a row (disk full): it stays in the outbox, tried again next turn.
        this.ctx.report({ lastError: error instanceof Error ? error.message : String(error) });
        this.ctx.log.error({ err: String(error) }, 'outbox rows could not be journaled');
      }
    }
  }

  private async drain(): Promise<void> {
    let after = 0;
    while (!this.stopped) {
      const rows = this.outbox.waiting(this.ctx.channelId, after, this.o.batch);
      if (rows.length === 0) return;
      // One receive per row, all in flight together: they share the writer's group commits.
      await Promise.all(
        rows.map((r) =>
          this.ctx.receive({
            content: r.content,
            contentType: r.contentType,
            meta: r.meta,
            owner: r.owner ?? undefined,
            sender: 'store',
            outboxId: r.id,
          }),
        ),
      );
      after = rows[rows.length - 1]!.id;
    }
  }
}

export const storeOutboxSpec: SourceSpec<StoreOutboxOptions> = {
  kind: 'source',
  type: 'store-outbox',
  summary:
    'Takes the messages the core store wrote for this channel (validated RCP forms and PPS, molecular orders) into the journal, each exactly once across a crash.',
  schema,
  create: (o, ctx) => {
    if (!ctx.outbox) throw new Error('store-outbox reads the core store: deploy it in an engine');
    return new StoreOutboxSource(o, ctx, ctx.outbox);
  },
};
