import assert from 'node:assert/strict';
import { builtinRegistry } from '../../channels/builtins.ts';
import { startEngine, until, type Harness } from '../support/engine-harness.ts';
import { journalOne } from '../support/journaled.ts';
import { idleSource, makeSink, permanent, transient, upperStep, type Sink } from '../support/sink.ts';
import type { StepInput } from '../../transformers/contract.ts';
import pino from 'pino';

const raise = (e: Error): never => {
  throw e;
};

const fastRetry = { maxAttempts: 3, initialDelayMs: 20, maxDelayMs: 50, multiplier: 2, jitter: 0 };

function channel(extra: object = {}, destination: object = {}): object {
  return {
    id: 'c1',
    source: { type: 'test-idle' },
    steps: [{ type: 'test-upper' }],
    destinations: [{ name: 'out', type: 'test-sink', retry: fastRetry, ...destination }],
    ...extra,
  };
}

describe('channel runtime', () => {
  let h: Harness | undefined;
  let sink: Sink;
  const start = async (
    ch: object,
    more: Partial<Parameters<typeof startEngine>[0]> = {},
  ): Promise<Harness> => {
    sink = makeSink();
    const registry = builtinRegistry().register(sink.spec, upperStep, idleSource);
    h = await startEngine({ channels: [ch], registry, ...more });
    return h;
  };
  const send = (text: string, extra: object = {}) =>
    h!.engine.dispatch('c1', { content: Buffer.from(text), contentType: 'text/plain', ...extra });

  afterEach(async () => {
    await h?.stop();
    h = undefined;
  });

  it('journals, transforms and delivers a message, keeping every stage', async () => {
    await start(channel());
    const { messageId } = await send('hello');
    await until(() => sink.received.length === 1, 'delivery');
    const { journal } = h!.engine.store;
    await until(() => journal.message(messageId)?.status === 'SENT', 'SENT status');
    const stages = journal.contents(messageId).map((c) => `${c.stage}:${c.destination}:${c.content}`);
    assert.deepEqual(stages.sort(), ['raw::hello', 'response:out:ok c1-1-out', 'transformed::HELLO'].sort());
    assert.equal(sink.received[0]!.idempotencyKey, `c1-${messageId}-out`);
  });

  it('records the same content sent twice as a duplicate and delivers it once', async () => {
    await start(channel());
    const first = await send('same');
    const second = await send('same');
    assert.equal(second.duplicateOf, first.messageId);
    await until(() => sink.received.length === 1, 'delivery');
    assert.equal(h!.engine.store.journal.message(second.messageId)?.status, 'DUPLICATE');
  });

  it('filters and fails in the processing stage without reaching destinations', async () => {
    await start(channel());
    const dropped = await send('drop me');
    const broken = await send('boom');
    const ch = h!.engine.channel('c1');
    assert.equal((await ch.outcome(dropped.messageId)).status, 'FILTERED');
    const o = await ch.outcome(broken.messageId);
    assert.equal(o.status, 'ERROR');
    assert.match(o.error!, /exploded on purpose/);
    assert.equal(sink.received.length, 0);
  });

  it('retries a transient failure with backoff, then delivers', async () => {
    await start(channel());
    let calls = 0;
    sink.behaviour = () => (++calls < 3 ? transient() : undefined);
    const { messageId } = await send('retry me');
    await until(() => sink.received.length === 1, 'delivery after retries');
    const [d] = h!.engine.store.journal.deliveries(messageId);
    await until(() => h!.engine.store.journal.delivery(d!.id)?.status === 'SENT', 'SENT');
    assert.equal(h!.engine.store.journal.delivery(d!.id)?.attempts, 3);
  });

  it('ends in ERROR after the retry limit, and a replay of the delivery sends it', async () => {
    await start(channel());
    sink.behaviour = () => transient('hospital server down');
    const { messageId } = await send('doomed');
    const { journal } = h!.engine.store;
    await until(() => journal.message(messageId)?.status === 'ERROR', 'ERROR status');
    const [d] = journal.deliveries(messageId);
    assert.equal(d!.status, 'ERROR');
    assert.equal(d!.attempts, 3);
    assert.match(d!.lastError!, /TEST_DOWN: hospital server down/);
    sink.behaviour = () => undefined;
    await h!.engine.channel('c1').replayDelivery(d!.id);
    await until(() => journal.message(messageId)?.status === 'SENT', 'SENT after replay');
    assert.equal(sink.received.length, 1);
  });

  it('does not retry a failure the peer calls permanent', async () => {
    await start(channel());
    let calls = 0;
    sink.behaviour = () => (calls++, permanent());
    const { messageId } = await send('refused');
    await until(() => h!.engine.store.journal.message(messageId)?.status === 'ERROR', 'ERROR');
    assert.equal(calls, 1);
  });

  it('keeps an ordered queue in order: a failing head blocks the messages behind it', async () => {
    await start(channel({}, { queue: 'ordered', retry: { ...fastRetry, maxAttempts: 5 } }));
    let failures = 2;
    sink.behaviour = (m) => (m.content.toString() === 'A' && failures-- > 0 ? transient() : undefined);
    for (const t of ['a', 'b', 'c', 'd']) await send(t);
    await until(() => sink.received.length === 4, 'four deliveries');
    assert.deepEqual(
      sink.received.map((m) => m.content.toString()),
      ['A', 'B', 'C', 'D'],
    );
  });

  it('lets a parallel queue overtake a failing message and runs several sends at once', async () => {
    await start(channel({}, { queue: 'parallel', concurrency: 4, retry: { ...fastRetry, maxAttempts: 5 } }));
    let active = 0;
    let peak = 0;
    let failures = 1;
    let overlap!: () => void;
    const overlapped = new Promise<void>((r) => (overlap = r));
    sink.behaviour = async (m) => {
      active++;
      peak = Math.max(peak, active);
      if (active > 1) overlap();
      // Sends hold until two run at once: one at a time, this test would never finish.
      await overlapped;
      active--;
      return m.content.toString() === 'A' && failures-- > 0 ? transient() : undefined;
    };
    for (const t of ['a', 'b', 'c', 'd', 'e']) await send(t);
    await until(() => sink.received.length === 5, 'five deliveries');
    assert.notEqual(sink.received[0]!.content.toString(), 'A');
    assert.ok(peak > 1, `expected concurrent sends, peak was ${peak}`);
  });

  it('replays a whole message as a new message linked to the original', async () => {
    await start(channel());
    const { messageId } = await send('again');
    await until(() => sink.received.length === 1, 'first delivery');
    const replay = await h!.engine.channel('c1').replayMessage(messageId);
    await until(() => sink.received.length === 2, 'replayed delivery');
    assert.equal(h!.engine.store.journal.message(replay.messageId)?.replayOf, messageId);
    assert.notEqual(sink.received[1]!.idempotencyKey, sink.received[0]!.idempotencyKey);
  });

  it('recovers on start: work journaled before a stop is processed and delivered after', async () => {
    await start(channel());
    sink.behaviour = () => transient();
    const { messageId } = await send('survivor');
    const { dataDir, configDir } = h!;
    await h!.stop();
    const registry = builtinRegistry().register(sink.spec, upperStep, idleSource);
    sink.behaviour = () => undefined;
    h = await startEngine({ channels: [channel()], registry, dataDir, configDir });
    await until(
      () => h!.engine.store.journal.message(messageId)?.status === 'SENT',
      'SENT after restart',
      5000,
    );
    assert.ok(sink.received.some((m) => m.content.toString() === 'SURVIVOR'));
  });

  it('applies back-pressure: receive waits while the queue is over its limit', async () => {
    await start(channel({ queueLimit: 2 }));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    sink.behaviour = async () => (await gate, undefined);
    await send('one');
    await send('two');
    const third = send('three');
    // Without back-pressure the third receive queues its write in this turn of the event loop, so
    // a write queued on the next turn commits after it: yet no third message is journaled.
    await new Promise((r) => setImmediate(r));
    await h!.engine.store.write.journal.prune(0, 1);
    assert.equal(h!.engine.store.journal.message(3), undefined, 'the third receive should wait for room');
    release();
    await third;
    await until(() => sink.received.length === 3, 'all three delivered');
  });

  it('pauses and resumes the source while queued work keeps flowing', async () => {
    await start(channel());
    const ch = h!.engine.channel('c1');
    await ch.pause();
    assert.equal(ch.state, 'PAUSED');
    await ch.resume();
    assert.equal(ch.state, 'STARTED');
    await ch.undeploy();
    await assert.rejects(send('x'), /not deployed/);
    await ch.deploy();
    await send('x');
    await until(() => sink.received.length === 1, 'delivery after redeploy');
  });

  it('gives the event loop a turn while a backlog of slow messages drains (ACKs, health, SIGTERM)', async () => {
    let processed = 0;
    let processedAtFirstTurn: number | undefined;
    const busyStep = {
      ...upperStep,
      type: 'test-busy',
      create: () => (input: StepInput) => {
        if (processed++ === 0) setImmediate(() => (processedAtFirstTurn = processed));
        // A step that holds the CPU for 5 ms, as a costly transform does.
        for (const end = Date.now() + 5; Date.now() < end;);
        return input;
      },
    };
    sink = makeSink();
    const registry = builtinRegistry().register(sink.spec, busyStep, idleSource);
    h = await startEngine({
      channels: [channel({ steps: [{ type: 'test-busy' }] })],
      registry,
      start: false,
    });
    const total = 100;
    await Promise.all(
      Array.from({ length: total }, (_, i) =>
        journalOne(h!.engine.store, 'c1', { content: Buffer.from(`m${i}`) }),
      ),
    );
    await h.engine.start();
    await until(() => sink.received.length === total, 'the backlog delivered');
    assert.ok(
      processedAtFirstTurn !== undefined && processedAtFirstTurn < total,
      `the event loop had its first turn after ${processedAtFirstTurn} of ${total} messages`,
    );
  });

  it('backs off while the journal cannot be written (disk full), logging once per step, then delivers', async () => {
    const lines: Array<{ code?: string; delayMs?: number }> = [];
    const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    // The writer in this thread, so that this test can make its journal fail.
    await start(channel(), { log, engine: { store: { writer: 'inline' } } });
    const sends: number[] = [];
    sink.behaviour = () => void sends.push(Date.now());
    const { journal } = h!.engine.store;
    const full = Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
    let failing = 3;
    const { sent, failed } = journal;
    // The delivery's outcome cannot be journaled, whatever it is: sent or failed.
    journal.sent = (r) => (failing > 0 ? (failing--, raise(full)) : sent.call(journal, r));
    journal.failed = (r, p) => (failing > 0 ? raise(full) : failed.call(journal, r, p));
    const { messageId } = await send('disk full');
    await until(() => journal.message(messageId)?.status === 'SENT', 'SENT once the disk has room', 15_000);
    const steps = lines.filter((l) => l.code === 'JOURNAL_WRITE_FAILED');
    assert.equal(steps.length, 3, 'one log line per failed attempt, each a backoff step');
    assert.equal(sends.length, 4, 'three sends the journal could not record, then the one recorded');
    steps.forEach((s, i) => {
      if (i > 0) assert.ok(s.delayMs! > steps[i - 1]!.delayMs!, 'the delay grows');
      assert.ok(sends[i + 1]! - sends[i]! >= s.delayMs!, `send ${i + 2} waited out the backoff`);
    });
  });

  it('keeps only metadata once complete under storage policy "metadata", but everything of a failure', async () => {
    await start(channel({ storage: 'metadata' }));
    const ok = await send('fine');
    const bad = await send('boom');
    const { journal } = h!.engine.store;
    await until(() => journal.message(ok.messageId)?.status === 'SENT', 'SENT');
    await h!.engine.channel('c1').outcome(bad.messageId);
    assert.deepEqual(journal.contents(ok.messageId), []);
    assert.equal(journal.content(bad.messageId, 'raw')?.content.toString(), 'boom');
  });
});
