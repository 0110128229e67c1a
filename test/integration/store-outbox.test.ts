import assert from 'node:assert/strict';
import { builtinRegistry } from '../../channels/builtins.ts';
import { startEngine, until, type Harness } from '../support/engine-harness.ts';
import { makeSink, type Sink } from '../support/sink.ts';
import type { Store } from '../../store/store.ts';

// A poll far longer than any wait below: a row journaled promptly was woken by its commit.
const channel = {
  id: 'orders-out',
  source: { type: 'store-outbox', pollMs: 600_000 },
  destinations: [{ name: 'out', type: 'test-sink' }],
};

const add = (store: Store, text: string, channelId = 'orders-out') =>
  store.write.outbox.add({
    channel: channelId,
    content: Buffer.from(text),
    contentType: 'text/plain',
    meta: { orderId: text },
    owner: '310000001',
    now: Date.now(),
  });

describe('store outbox source', () => {
  let h: Harness | undefined;
  let sink: Sink;
  const start = async (dataDir?: string): Promise<Harness> => {
    sink = makeSink();
    h = await startEngine({ channels: [channel], registry: builtinRegistry().register(sink.spec), dataDir });
    return h;
  };

  afterEach(async () => {
    await h?.stop();
    h = undefined;
  });

  it('journals the rows of its channel, in order, as soon as they are committed, and delivers them', async () => {
    const { store } = (await start()).engine;
    const ids = [await add(store, 'a'), await add(store, 'b'), await add(store, 'c')];
    const other = await add(store, 'not mine', 'molecular-orders');
    await until(() => sink.received.length === 3, 'three deliveries');
    assert.deepEqual(
      sink.received.map((m) => m.content.toString()),
      ['a', 'b', 'c'],
    );
    const taken = ids.map((id) => store.outbox.row(id)!);
    assert.ok(taken.every((r) => r.messageId !== null));
    const m = store.journal.message(taken[0]!.messageId!)!;
    assert.equal(m.channel, 'orders-out');
    assert.equal(m.owner, '310000001');
    assert.deepEqual(m.meta, { orderId: 'a', outboxId: ids[0] });
    assert.equal(store.journal.content(m.id, 'raw')!.content.toString(), 'a');
    assert.equal(store.outbox.row(other)!.messageId, null, 'another channel’s row stays');
  });

  it('journals a row once: offered again after it was taken, it answers with the message that carries it', async () => {
    const { engine } = await start();
    const id = await add(engine.store, 'once');
    const row = await until(() => engine.store.outbox.row(id)?.messageId, 'row taken');
    const again = await engine.dispatch('orders-out', {
      content: Buffer.from('once'),
      contentType: 'text/plain',
      outboxId: id,
    });
    assert.equal(again.messageId, row);
    assert.equal(engine.store.journal.backlog('orders-out', 0, 10).length, 0);
    const all = engine.store.db.prepare("SELECT count(*) FROM messages WHERE channel = 'orders-out'").pluck();
    assert.equal(all.get(), 1);
  });

  it('takes after a restart the rows written while it was stopped, and never the ones taken before', async () => {
    const first = await start();
    await add(first.engine.store, 'before');
    await until(() => sink.received.length === 1, 'first delivery');
    const dataDir = first.dataDir;
    await first.stop();
    h = undefined;
    // Written with no engine running: the store alone, as the CLI import would.
    const { Store } = await import('../../store/store.ts');
    const offline = new Store({ dataDir });
    await add(offline, 'while stopped');
    await offline.close();
    const second = await start(dataDir);
    await until(() => sink.received.length === 1, 'the waiting row delivered');
    assert.equal(sink.received[0]!.content.toString(), 'while stopped');
    const count = second.engine.store.db
      .prepare("SELECT count(*) FROM messages WHERE channel = 'orders-out'")
      .pluck();
    assert.equal(count.get(), 2);
  });
});
