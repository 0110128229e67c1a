// The engine with its step pool (channels/step-pool.ts): a step that may leave the main thread runs
// on a pool thread inside a real engine; its failure is the message's error, an ordered queue stays
// ordered, and stopping the engine mid-batch loses no message and sends none twice.
import assert from 'node:assert/strict';
import { threadId } from 'node:worker_threads';
import { builtinRegistry } from '../../channels/builtins.ts';
import { startEngine, until, type Harness } from '../support/engine-harness.ts';
import { idleSource, makeSink, type Sink } from '../support/sink.ts';
import { poolTestStep } from '../support/pool-steps.ts';

const channel = (destination: object = {}): object => ({
  id: 'c1',
  source: { type: 'test-idle' },
  destinations: [{ name: 'out', type: 'test-sink', steps: [{ type: 'test-pool' }], ...destination }],
});

describe('engine step pool', () => {
  let h: Harness | undefined;
  let sink: Sink;
  const start = async (
    ch: object,
    more: Partial<Parameters<typeof startEngine>[0]> = {},
  ): Promise<Harness> => {
    h = await startEngine({
      channels: [ch],
      registry: builtinRegistry().register(sink.spec, poolTestStep, idleSource),
      engine: { stepPool: { threads: 2 } },
      ...more,
    });
    return h;
  };
  const send = (text: string) =>
    h!.engine.dispatch('c1', { content: Buffer.from(text), contentType: 'text/plain' });
  /** Sends until a delivery ran on a pool thread: the pool's threads are warm (the cold pool runs steps here). */
  const warm = async (): Promise<void> => {
    for (let n = 0; ; n++) {
      const before = sink.received.length;
      await send(`warm${n}`);
      await until(() => sink.received.length > before, 'a warm-up delivery', 60_000);
      if (sink.received.at(-1)!.meta.threadId !== threadId) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    sink.received.length = 0;
  };

  beforeEach(() => {
    sink = makeSink();
  });
  afterEach(async () => {
    await h?.stop();
    h = undefined;
  });

  it('runs the step on a pool thread, and a step that throws there errors the message with its reason', async function () {
    this.timeout(120_000);
    await start({ ...channel(), steps: [{ type: 'test-pool', suffix: '' }] });
    await warm();
    const ok = await send('ok');
    const bad = await send('boom');
    const ch = h!.engine.channel('c1');
    const failed = await ch.outcome(bad.messageId);
    assert.equal(failed.status, 'ERROR');
    assert.match(failed.error!, /TEST_POOL_REFUSED: the pool step refused "boom"/);
    assert.match(failed.error!, /Hint: send something else/);
    const { journal } = h!.engine.store;
    await until(() => journal.message(ok.messageId)?.status === 'SENT', 'the good message sent');
    assert.equal(sink.received[0]!.content.toString(), 'OK!');
    assert.notEqual(sink.received[0]!.meta.threadId, threadId);
  });

  it('keeps an ordered queue in order through the pool', async function () {
    this.timeout(120_000);
    await start(channel({ queue: 'ordered' }));
    await warm();
    const texts = Array.from({ length: 30 }, (_, i) => `m${i}`);
    for (const t of texts) await send(t);
    await until(() => sink.received.length === texts.length, 'every message delivered');
    assert.deepEqual(
      sink.received.map((m) => m.content.toString()),
      texts.map((t) => `${t.toUpperCase()}!`),
    );
  });

  it('stopped mid-batch, loses no message and sends none twice once started again', async function () {
    // Two engines, each starting its pool threads (each loads the step's module afresh).
    this.timeout(240_000);
    await start(channel({ queue: 'parallel', concurrency: 8 }));
    await warm();
    // A peer that takes 25 ms a message: 80 messages at 8 at a time outlast the stop, on any machine
    // (on a quiet one the whole batch used to go before the stop came).
    sink.behaviour = () => new Promise((resolve) => setTimeout(() => resolve(undefined), 25));
    const { dataDir, configDir } = h!;
    const texts = Array.from({ length: 80 }, (_, i) => `m${i}`);
    for (const t of texts) await send(t);
    await until(() => sink.received.length >= 5, 'the first deliveries');
    await h!.stop();
    h = undefined;
    const before = sink.received.length;
    assert.ok(before < texts.length, 'the whole batch went before the stop: nothing was in flight');
    await start(channel({ queue: 'parallel', concurrency: 8 }), { dataDir, configDir });
    await until(() => sink.received.length >= texts.length, 'the rest delivered after the restart', 60_000);
    const got = sink.received.map((m) => m.content.toString()).sort();
    assert.deepEqual(got, texts.map((t) => `${t.toUpperCase()}!`).sort());
  });
});
