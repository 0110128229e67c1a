import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Outbound } from '../../connectors/contract.ts';
import { SendError } from '../../connectors/contract.ts';
import { createHttpListener, createHttpSender, type HttpListener } from '../../connectors/http.ts';
import { channelContext, type ChannelContext, type ContextOptions } from '../support/channel-context.ts';
import { selfSignedCert } from '../support/self-signed-cert.ts';

const labContext = (options: ContextOptions & { dataDir?: string } = {}) =>
  channelContext({
    accounts: [{ login: 'lab1', password: 's3cret', role: 'lab', finess: '330000001' }],
    ...options,
  });

function outbound(content: string, idempotencyKey = 'key-1'): Outbound {
  return {
    messageId: 1,
    deliveryId: 1,
    idempotencyKey,
    content: Buffer.from(content),
    contentType: 'text/plain',
    meta: {},
    attempt: 1,
  };
}

describe('HTTP listener', () => {
  let ctx: ChannelContext;
  let listener: HttpListener;
  let base: string;

  async function start(
    options: Partial<Parameters<typeof createHttpListener>[0]> = {},
    context: ContextOptions = {},
  ): Promise<void> {
    ctx = await labContext(context);
    listener = createHttpListener({ port: 0, bind: '127.0.0.1', path: '/in', ...options }, ctx);
    await listener.start();
    base = `http://127.0.0.1:${listener.port}`;
  }
  afterEach(async () => {
    await listener.stop();
    await ctx.stop();
  });

  it('journals a POST body and answers 200 with the message id after the commit', async () => {
    await start();
    const res = await fetch(`${base}/in`, {
      method: 'POST',
      headers: { 'content-type': 'application/xml' },
      body: '<doc>é</doc>',
    });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { messageId: 1, duplicateOf: null });
    assert.equal(ctx.journal[0]!.content.toString('utf8'), '<doc>é</doc>');
    assert.equal(ctx.journal[0]!.contentType, 'application/xml');
  });

  it("answers a retry carrying the same Idempotency-Key with the first message's id", async () => {
    await start();
    const post = () =>
      fetch(`${base}/in`, { method: 'POST', headers: { 'idempotency-key': 'abc' }, body: 'x' });
    await (await post()).json();
    assert.deepEqual(await (await post()).json(), { messageId: 2, duplicateOf: 1 });
  });

  it('refuses an oversized body with 413 without journaling it', async () => {
    await start({ maxBodyBytes: 10 });
    const res = await fetch(`${base}/in`, { method: 'POST', body: 'x'.repeat(11) });
    assert.equal(res.status, 413);
    assert.equal(((await res.json()) as { error: string }).error, 'BODY_TOO_LARGE');
    assert.equal(ctx.journal.length, 0);
  });

  it('refuses with 413 a chunked body that grows past the limit', async () => {
    await start({ maxBodyBytes: 10 });
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(`${base}/in`, { method: 'POST' }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.write('x'.repeat(6));
      req.end('x'.repeat(6));
    });
    assert.equal(status, 413);
    assert.equal(ctx.journal.length, 0);
  });

  it('asks for credentials (401) when basic auth is on, and files the message under the account', async () => {
    await start({ auth: 'basic' });
    const anonymous = await fetch(`${base}/in`, { method: 'POST', body: 'x' });
    assert.equal(anonymous.status, 401);
    assert.match(anonymous.headers.get('www-authenticate') ?? '', /^Basic/);
    const wrong = await fetch(`${base}/in`, {
      method: 'POST',
      body: 'x',
      headers: { authorization: `Basic ${Buffer.from('lab1:nope').toString('base64')}` },
    });
    assert.equal(wrong.status, 401);
    const good = await fetch(`${base}/in`, {
      method: 'POST',
      body: 'x',
      headers: { authorization: `Basic ${Buffer.from('lab1:s3cret').toString('base64')}` },
    });
    assert.equal(good.status, 200);
    assert.equal(ctx.journal.length, 1);
    assert.equal(ctx.journal[0]!.sender, 'lab1');
    assert.equal(ctx.journal[0]!.owner, '330000001');
  });

  it('answers 503 when the message cannot be journaled, so that the client resends', async () => {
    await start(
      {},
      {
        beforeReceive: () => {
          throw new Error('disk full');
        },
      },
    );
    const res = await fetch(`${base}/in`, { method: 'POST', body: 'x' });
    assert.equal(res.status, 503);
    assert.equal(res.headers.get('retry-after'), '5');
  });

  it('answers 404 on another path and 405 on another method', async () => {
    await start();
    assert.equal((await fetch(`${base}/other`, { method: 'POST', body: 'x' })).status, 404);
    assert.equal((await fetch(`${base}/in`)).status, 405);
    assert.equal(ctx.journal.length, 0);
  });
});

describe('HTTP sender', () => {
  let ctx: ChannelContext;
  before(async () => (ctx = await labContext()));
  after(() => ctx.stop());
  let server: http.Server;
  let url: string;
  let seen: { headers: http.IncomingHttpHeaders; body: string }[];
  let answer: (res: http.ServerResponse) => void;

  beforeEach(async () => {
    seen = [];
    server = http.createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => parts.push(c));
      req.on('end', () => {
        seen.push({ headers: req.headers, body: Buffer.concat(parts).toString() });
        answer(res);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/receive`;
  });
  afterEach(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  async function sendOnce(content: string, timeoutMs = 5000) {
    const sender = createHttpSender({ url, timeoutMs, headers: { 'x-tenant': 'dcc' } }, ctx);
    try {
      return await sender.send(outbound(content));
    } finally {
      await sender.stop();
    }
  }

  async function sendError(content: string, timeoutMs?: number): Promise<SendError> {
    const err = await sendOnce(content, timeoutMs).then(
      () => assert.fail('the send should fail'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof SendError);
    return err;
  }

  it('sends the content with its Idempotency-Key and returns the 2xx body as the response', async () => {
    answer = (res) => res.writeHead(201, { 'content-type': 'application/json' }).end('{"id":7}');
    const result = await sendOnce('hello');
    assert.equal(result.response?.toString(), '{"id":7}');
    assert.equal(result.responseType, 'application/json');
    assert.equal(seen[0]!.body, 'hello');
    assert.equal(seen[0]!.headers['idempotency-key'], 'key-1');
    assert.equal(seen[0]!.headers['x-tenant'], 'dcc');
    assert.equal(seen[0]!.headers['content-type'], 'text/plain');
  });

  it('fails retryably on a 5xx', async () => {
    answer = (res) => res.writeHead(503).end();
    const err = await sendError('x');
    assert.equal(err.retryable, true);
    assert.match(err.message, /503/);
  });

  it("fails for good on a 4xx, quoting the peer's explanation", async () => {
    answer = (res) => res.writeHead(422, { 'content-type': 'text/plain' }).end('missing INS');
    const err = await sendError('x');
    assert.equal(err.retryable, false);
    assert.match(err.message, /422.*missing INS/);
  });

  it('fails retryably when the peer does not answer in time', async () => {
    answer = () => {};
    const err = await sendError('x', 200);
    assert.equal(err.code, 'HTTP_TIMEOUT');
    assert.equal(err.retryable, true);
  });

  it('fails retryably when nobody listens', async () => {
    await new Promise((resolve) => server.close(resolve));
    const err = await sendError('x');
    assert.equal(err.code, 'HTTP_CONNECTION_FAILED');
    assert.equal(err.retryable, true);
    server = http.createServer();
  });

  it('delivers to our own listener exactly once across a resend', async () => {
    const target = await labContext();
    const listener = createHttpListener({ port: 0, bind: '127.0.0.1' }, target);
    await listener.start();
    const sender = createHttpSender({ url: `http://127.0.0.1:${listener.port}/` }, ctx);
    try {
      const first = await sender.send(outbound('doc', 'delivery-42'));
      const again = await sender.send(outbound('doc', 'delivery-42'));
      assert.deepEqual(JSON.parse(first.response!.toString()), { messageId: 1, duplicateOf: null });
      assert.deepEqual(JSON.parse(again.response!.toString()), { messageId: 2, duplicateOf: 1 });
    } finally {
      await sender.stop();
      await listener.stop();
      await target.stop();
    }
  });
});

describe('HTTP over TLS', () => {
  it('delivers to an HTTPS listener when the sender trusts its certificate, and not otherwise', async () => {
    const cert = selfSignedCert();
    // One engine on the certificate's directory: the listener's channel and the senders' context.
    const target = await labContext({ dataDir: cert.dir });
    const listener = createHttpListener(
      { port: 0, bind: '127.0.0.1', tls: { cert: cert.cert, key: cert.key } },
      target,
    );
    await listener.start();
    const ctx = target;
    const url = `https://127.0.0.1:${listener.port}/`;
    const trusting = createHttpSender({ url, tls: { ca: cert.cert } }, ctx);
    const wary = createHttpSender({ url }, ctx);
    try {
      const result = await trusting.send(outbound('doc'));
      assert.deepEqual(JSON.parse(result.response!.toString()), { messageId: 1, duplicateOf: null });
      const err = await wary.send(outbound('doc')).catch((e: unknown) => e);
      assert.ok(err instanceof SendError);
      assert.equal(err.code, 'HTTP_CONNECTION_FAILED');
      assert.equal(target.journal.length, 1);
    } finally {
      await trusting.stop();
      await wary.stop();
      await listener.stop();
      await target.stop();
      cert.remove();
    }
  });
});
