import assert from 'node:assert/strict';
import net from 'node:net';
import { Client, Message } from 'node-hl7-client';
import { SendError, type Outbound } from '../../connectors/contract.ts';
import { createMllpListener, createMllpSender, type MllpListener } from '../../connectors/mllp.ts';
import { MllpFramer, frame } from '../../connectors/mllp-framer.ts';
import { buildAck, parseAck } from '../../transformers/hl7v2-ack.ts';
import { get, parse } from '../../transformers/hl7v2.ts';
import { channelContext, type ChannelContext, type ContextOptions } from '../support/channel-context.ts';
import { selfSignedCert } from '../support/self-signed-cert.ts';

function adt(controlId: string, extraMsh = ''): string {
  return (
    `MSH|^~\\&|GAM|CHU-X|DCC|ONCO|20240306111154||ADT^A01^ADT_A01|${controlId}|P|2.5^FRA^2.11|||${extraMsh}||FRA|UNICODE UTF-8\r` +
    'PID|||123^^^CHU-X^PI||DUPONT^Zoé^^^^^L||19700101|F\r'
  );
}

/** The MSA segments found in ACK texts, in order (node-hl7-client may hand us two ACKs as one). */
function msaOf(texts: string[]): { code: string; controlId: string }[] {
  return [...texts.join('\r').matchAll(/(?:^|\r)MSA\|([^|\r]*)\|([^|\r]*)/g)].map((m) => ({
    code: m[1]!,
    controlId: m[2]!,
  }));
}

/** A bare MLLP client: writes `wire`, collects `count` frames (or fewer if the server closes). */
function exchangeRaw(port: number, wire: Buffer, count: number, halfClose = false): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const frames: Buffer[] = [];
    const framer = new MllpFramer();
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write(wire);
      if (halfClose) socket.end();
    });
    socket.on('data', (chunk: Buffer) => {
      for (const e of framer.push(chunk)) if (e.type === 'frame') frames.push(e.payload);
      if (frames.length >= count) socket.destroy();
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(frames));
  });
}

describe('MLLP listener', () => {
  let ctx: ChannelContext;
  let listener: MllpListener;

  async function start(
    options: Parameters<typeof createMllpListener>[0] = {},
    // The channel's step (test-upper) fails on content holding "boom": a real processing ERROR.
    context: ContextOptions = {},
  ): Promise<void> {
    ctx = await channelContext({ steps: [{ type: 'test-upper' }], ...context });
    listener = createMllpListener({ port: 0, bind: '127.0.0.1', ...options }, ctx);
    await listener.start();
  }
  afterEach(async () => {
    await listener.stop();
    await ctx.stop();
  });

  describe('with node-hl7-client as the sender', () => {
    let client: Client;
    beforeEach(() => {
      client = new Client({ host: '127.0.0.1' });
    });
    afterEach(() => client.closeAll());

    async function sendAll(messages: string[]): Promise<string[]> {
      const acks: string[] = [];
      let expected = messages.length;
      let done: () => void = () => {};
      const all = new Promise<void>((resolve) => (done = resolve));
      const connection = client.createConnection({ port: listener.port, waitAck: false }, (res) => {
        const text = res.getMessage().toString();
        acks.push(text);
        expected -= msaOf([text]).length;
        if (expected <= 0) done();
      });
      for (const m of messages) await connection.sendMessage(new Message({ text: m }));
      await all;
      return acks;
    }

    it('answers AA for the control id it received, once the message is journaled', async () => {
      await start();
      const acks = await sendAll([adt('3975')]);
      const ack = parseAck(acks[0]!);
      assert.equal(ack.code, 'AA');
      assert.equal(ack.controlId, '3975');
      assert.match(
        acks[0]!,
        /^MSH\|\^~\\&\|DCC\|ONCO\|GAM\|CHU-X\|/,
        'the ACK goes back to the sending application',
      );
      assert.equal(ctx.journal.length, 1);
      const msg = ctx.journal[0]!;
      assert.equal(msg.content.toString('utf8'), adt('3975').trimEnd());
      assert.equal(msg.contentType, 'application/hl7-v2');
      // The sender as authenticated (an unbound listener: the remote address), MSH-4 only narrows the key.
      assert.equal(msg.dedupKey, '127.0.0.1|CHU-X|3975');
      assert.equal(msg.sender, '127.0.0.1');
      assert.equal(msg.meta?.['sendingFacility'], 'CHU-X');
      assert.equal(msg.meta?.['controlId'], '3975');
      assert.equal(msg.meta?.['messageType'], 'ADT^A01');
    });

    it('answers pipelined messages one ACK each, in the order they were sent', async () => {
      await start();
      const ids = Array.from({ length: 20 }, (_, i) => `P${i}`);
      const acks = await sendAll(ids.map((id) => adt(id)));
      assert.deepEqual(
        msaOf(acks),
        ids.map((controlId) => ({ code: 'AA', controlId })),
      );
      assert.deepEqual(
        ctx.journal.map((m) => m.meta?.['controlId']),
        ids,
      );
    });

    it('answers AA to a resend of a stored message, which the journal records as a duplicate', async () => {
      await start();
      await sendAll([adt('77')]);
      const acks = await sendAll([adt('77')]);
      assert.deepEqual(msaOf(acks), [{ code: 'AA', controlId: '77' }]);
      assert.equal(ctx.journal.length, 2);
      assert.equal(ctx.journal[1]!.duplicateOf, ctx.journal[0]!.messageId);
    });
  });

  it('rejects an unreadable message with AR and an ERR segment, and journals it as rejected', async () => {
    await start();
    const bad = 'MSH|^~\\&|GAM|CHU-X|DCC|ONCO|20240306||ADT^A01|42|P|2.5\rnot a segment\r';
    const [ack] = await exchangeRaw(listener.port, frame(Buffer.from(bad)), 1);
    const parsed = parseAck(ack!);
    assert.equal(parsed.code, 'AR');
    assert.equal(parsed.controlId, '42');
    assert.equal(parsed.errors[0]?.code, '100');
    assert.match(parsed.text, /segment 2/);
    assert.equal(ctx.journal.length, 1);
    assert.match(ctx.journal[0]!.rejected ?? '', /^HL7_BAD_SEGMENT/);
    assert.equal(ctx.journal[0]!.dedupKey, undefined);
  });

  it('rejects content that is not HL7 at all with AR', async () => {
    await start();
    const [ack] = await exchangeRaw(listener.port, frame(Buffer.from('hello')), 1);
    assert.equal(parseAck(ack!).code, 'AR');
    assert.match(ctx.journal[0]!.rejected ?? '', /^HL7_NO_MSH/);
  });

  it('rejects a message without MSH-10 with AR naming the field', async () => {
    await start();
    const [ack] = await exchangeRaw(listener.port, frame(Buffer.from(adt(''))), 1);
    const parsed = parseAck(ack!);
    assert.equal(parsed.code, 'AR');
    assert.equal(parsed.errors[0]?.location, 'MSH-10');
  });

  it('answers AR, never AA, when the message cannot be journaled', async () => {
    await start(
      {},
      {
        beforeReceive: () => {
          throw new Error('disk full');
        },
      },
    );
    const [ack] = await exchangeRaw(listener.port, frame(Buffer.from(adt('9'))), 1);
    const parsed = parseAck(ack!);
    assert.equal(parsed.code, 'AR');
    assert.equal(parsed.errors[0]?.code, '207');
    assert.match(parsed.text, /send it again later/);
  });

  it('hands the frames of one connection to the journal one at a time', async () => {
    await start();
    let inFlight = 0;
    let most = 0;
    const receive = ctx.receive.bind(ctx);
    ctx.receive = async (msg) => {
      most = Math.max(most, ++inFlight);
      try {
        return await receive(msg);
      } finally {
        inFlight--;
      }
    };
    const wire = Buffer.concat(['1', '2', '3', '4', '5'].map((id) => frame(Buffer.from(adt(id)))));
    const acks = await exchangeRaw(listener.port, wire, 5);
    assert.deepEqual(
      acks.map((a) => parseAck(a).controlId),
      ['1', '2', '3', '4', '5'],
    );
    assert.equal(most, 1);
  });

  it('answers in enhanced mode with CA, and not at all when MSH-15 is NE', async () => {
    await start();
    const wire = Buffer.concat([frame(Buffer.from(adt('E1', 'NE'))), frame(Buffer.from(adt('E2', 'AL')))]);
    const acks = await exchangeRaw(listener.port, wire, 1);
    const parsed = parseAck(acks[0]!);
    assert.deepEqual([parsed.code, parsed.controlId], ['CA', 'E2']);
    assert.equal(ctx.journal.length, 2);
  });

  it('still answers a sender that half-closed its side after its last message', async () => {
    await start();
    const acks = await exchangeRaw(listener.port, frame(Buffer.from(adt('H1'))), 1, true);
    assert.equal(parseAck(acks[0]!).code, 'AA');
  });

  it('ignores bytes outside frames and still answers the frames', async () => {
    await start();
    const wire = Buffer.concat([Buffer.from('junk'), frame(Buffer.from(adt('G1'))), Buffer.from('\r\n')]);
    const acks = await exchangeRaw(listener.port, wire, 1);
    assert.equal(parseAck(acks[0]!).controlId, 'G1');
    assert.equal(ctx.journal.length, 1, 'the junk is not taken for a message');
  });

  it('closes a connection whose frame exceeds maxFrameBytes, journaling nothing', async () => {
    await start({ maxFrameBytes: 100 });
    const acks = await exchangeRaw(listener.port, frame(Buffer.from(adt('BIG'))), 1);
    assert.deepEqual(acks, []);
    assert.equal(ctx.journal.length, 0);
    assert.ok(ctx.states.some((r) => /exceeds 100 bytes/.test(r.lastError ?? '')));
  });

  it('acknowledges on outcome when asked: AE with the processing error', async () => {
    await start({ respond: 'on-outcome' });
    const [ack] = await exchangeRaw(listener.port, frame(Buffer.from(adt('boom'))), 1);
    const parsed = parseAck(ack!);
    assert.deepEqual([parsed.code, parsed.controlId], ['AE', 'boom']);
    assert.match(parsed.text, /the test step exploded on purpose/);
  });

  it('stops even while a sender keeps its connection open', async () => {
    await start();
    // allowHalfOpen: the peer does not close its side when ours ends, as some senders do not.
    const socket = net.connect({ port: listener.port, host: '127.0.0.1', allowHalfOpen: true });
    const ended = new Promise((resolve) => socket.on('end', resolve));
    await new Promise((resolve) => socket.on('connect', resolve));
    socket.write(frame(Buffer.from(adt('K1'))));
    await new Promise((resolve) => socket.once('data', resolve));
    await listener.stop();
    await ended;
    socket.destroy();
    assert.equal(ctx.journal.length, 1);
  });

  it('on stop, finishes the message being journaled and sends its ACK before closing', async () => {
    let open: () => void = () => {};
    let entered: () => void = () => {};
    const gate = new Promise<void>((resolve) => (open = resolve));
    const receiving = new Promise<void>((resolve) => (entered = resolve));
    await start(
      {},
      {
        beforeReceive: () => {
          entered();
          return gate;
        },
      },
    );
    const answered = exchangeRaw(listener.port, frame(Buffer.from(adt('S1'))), 1);
    await receiving;
    const stopped = listener.stop();
    open();
    await stopped;
    const acks = await answered;
    assert.equal(parseAck(acks[0]!).code, 'AA');
    assert.equal(ctx.journal.length, 1);
  });
});

/** A scripted MLLP peer: answers each frame with `answer(payload)`, or not at all for null. */
async function scriptedPeer(answer: (payload: Buffer) => Buffer | null) {
  const sockets = new Set<net.Socket>();
  let connections = 0;
  const server = net.createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    const framer = new MllpFramer();
    socket.on('data', (chunk: Buffer) => {
      for (const e of framer.push(chunk)) {
        if (e.type !== 'frame') continue;
        const reply = answer(e.payload);
        if (reply) socket.write(frame(reply));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    connections: () => connections,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

function outbound(content: string): Outbound {
  return {
    messageId: 1,
    deliveryId: 1,
    idempotencyKey: 'k',
    content: Buffer.from(content),
    contentType: 'application/hl7-v2',
    meta: {},
    attempt: 1,
  };
}

describe('MLLP sender', () => {
  let ctx: ChannelContext;
  before(async () => (ctx = await channelContext()));
  after(() => ctx.stop());

  it('delivers to our own listener, returns its ACK and reuses one connection', async () => {
    const target = await channelContext();
    const listener = createMllpListener({ port: 0, bind: '127.0.0.1' }, target);
    await listener.start();
    const sender = createMllpSender({ host: '127.0.0.1', port: listener.port }, ctx);
    try {
      for (const id of ['A', 'B', 'C']) {
        const result = await sender.send(outbound(adt(id)));
        const ack = parseAck(result.response!);
        assert.deepEqual([ack.code, ack.controlId], ['AA', id]);
      }
      assert.equal(new Set(target.journal.map((m) => m.meta?.['remote'])).size, 1);
    } finally {
      await sender.stop();
      await listener.stop();
      await target.stop();
    }
  });

  const refusals = [
    ['AE', false],
    ['AR', true],
  ] as const;
  for (const [code, retryable] of refusals) {
    it(`fails ${retryable ? 'retryably' : 'for good'} on ${code}, quoting the peer's error`, async () => {
      const peer = await scriptedPeer(
        (payload) => buildAck(payload, { code, error: { code: '101', text: 'PID-7 missing' } }).bytes,
      );
      const sender = createMllpSender({ host: '127.0.0.1', port: peer.port }, ctx);
      try {
        const err = await sender.send(outbound(adt('R1'))).then(
          () => assert.fail('the send should fail'),
          (e: unknown) => e,
        );
        assert.ok(err instanceof SendError);
        assert.equal(err.code, `MLLP_ACK_${code}`);
        assert.equal(err.retryable, retryable);
        assert.match(err.message, /PID-7 missing/);
      } finally {
        await sender.stop();
        await peer.close();
      }
    });
  }

  it('fails for good on CR and retryably on CE (enhanced mode)', async () => {
    const peer = await scriptedPeer((payload) => {
      const id = get(parse(payload), 'MSH-10');
      return buildAck(payload, { code: id === 'CR1' ? 'AR' : 'AE' }).bytes;
    });
    const sender = createMllpSender({ host: '127.0.0.1', port: peer.port }, ctx);
    try {
      const outcomes = [];
      for (const id of ['CR1', 'CE1']) {
        const err = await sender.send(outbound(adt(id, 'AL'))).catch((e: unknown) => e);
        assert.ok(err instanceof SendError);
        outcomes.push([err.code, err.retryable]);
      }
      assert.deepEqual(outcomes, [
        ['MLLP_ACK_CR', false],
        ['MLLP_ACK_CE', true],
      ]);
    } finally {
      await sender.stop();
      await peer.close();
    }
  });

  it('fails retryably when no ACK comes in time, and sends the next message on a new connection', async () => {
    let silent = true;
    const peer = await scriptedPeer((payload) => (silent ? null : buildAck(payload, { code: 'AA' }).bytes));
    const sender = createMllpSender({ host: '127.0.0.1', port: peer.port, ackTimeoutMs: 200 }, ctx);
    try {
      const err = await sender.send(outbound(adt('T1'))).catch((e: unknown) => e);
      assert.ok(err instanceof SendError);
      assert.equal(err.code, 'MLLP_ACK_TIMEOUT');
      assert.equal(err.retryable, true);
      silent = false;
      const result = await sender.send(outbound(adt('T2')));
      assert.equal(parseAck(result.response!).controlId, 'T2');
      assert.equal(peer.connections(), 2);
    } finally {
      await sender.stop();
      await peer.close();
    }
  });

  it('fails retryably on an ACK for another control id', async () => {
    const peer = await scriptedPeer(() => buildAck(Buffer.from(adt('OTHER')), { code: 'AA' }).bytes);
    const sender = createMllpSender({ host: '127.0.0.1', port: peer.port }, ctx);
    try {
      const err = await sender.send(outbound(adt('W1'))).catch((e: unknown) => e);
      assert.ok(err instanceof SendError);
      assert.equal(err.code, 'MLLP_WRONG_ACK');
      assert.equal(err.retryable, true);
    } finally {
      await sender.stop();
      await peer.close();
    }
  });

  it('fails retryably when nobody listens', async () => {
    const peer = await scriptedPeer(() => null);
    await peer.close();
    const sender = createMllpSender({ host: '127.0.0.1', port: peer.port }, ctx);
    const err = await sender.send(outbound(adt('N1'))).catch((e: unknown) => e);
    await sender.stop();
    assert.ok(err instanceof SendError);
    assert.equal(err.code, 'MLLP_CONNECTION_FAILED');
    assert.equal(err.retryable, true);
  });
});

describe('MLLP over TLS', () => {
  it('delivers from our sender to our listener when the sender trusts the certificate, and not otherwise', async () => {
    const cert = selfSignedCert();
    // One engine on the certificate's directory: the listener's channel and the senders' context.
    const target = await channelContext({ dataDir: cert.dir });
    const listener = createMllpListener(
      { port: 0, bind: '127.0.0.1', tls: { cert: cert.cert, key: cert.key } },
      target,
    );
    await listener.start();
    const ctx = target;
    const trusting = createMllpSender(
      { host: '127.0.0.1', port: listener.port, tls: { ca: cert.cert } },
      ctx,
    );
    const wary = createMllpSender({ host: '127.0.0.1', port: listener.port, tls: {} }, ctx);
    try {
      const result = await trusting.send(outbound(adt('TLS1')));
      assert.equal(parseAck(result.response!).code, 'AA');
      const err = await wary.send(outbound(adt('TLS2'))).catch((e: unknown) => e);
      assert.ok(err instanceof SendError);
      assert.equal(err.code, 'MLLP_CONNECTION_FAILED');
      assert.deepEqual(
        target.journal.map((m) => m.meta?.['controlId']),
        ['TLS1'],
      );
    } finally {
      await trusting.stop();
      await wary.stop();
      await listener.stop();
      await target.stop();
      cert.remove();
    }
  });
});
