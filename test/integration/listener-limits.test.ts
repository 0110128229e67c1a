// Connection caps, idle timeouts and the MLLP memory bound, probed with raw sockets: a peer that
// opens connections and never speaks, or leaves huge frames unterminated, must not exhaust the process.
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { createHttpListener, type HttpListener } from '../../connectors/http.ts';
import { createMllpListener, type MllpListener } from '../../connectors/mllp.ts';
import { frame } from '../../connectors/mllp-framer.ts';
import { SftpServer } from '../../connectors/sftp-server.ts';
import { channelContext, type ChannelContext } from '../support/channel-context.ts';

/** A connected socket; `closed` resolves when the server closes it. */
async function open(port: number): Promise<{ socket: net.Socket; closed: Promise<void> }> {
  const socket = net.connect(port, '127.0.0.1');
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  socket.on('error', () => undefined);
  // Flowing: the end of a stream whose data nobody reads is never reported (an SSH banner would stay unread).
  socket.resume();
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return { socket, closed };
}

/** Resolves with true once the socket is closed, false if it is still open when `probe` settles. */
const closedFirst = (closed: Promise<void>, probe: Promise<unknown>): Promise<boolean> =>
  Promise.race([closed.then(() => true), probe.then(() => false)]);

function ackOf(socket: net.Socket): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    const onData = (chunk: Buffer): void => {
      text += chunk.toString('latin1');
      if (text.includes('\x1c\r')) {
        socket.off('data', onData);
        resolve(text);
      }
    };
    socket.on('data', onData);
  });
}

const adt = (id: string): Buffer =>
  Buffer.from(
    `MSH|^~\\&|GAM|CHU-X|DCC|ONCO|20240306111154||ADT^A01^ADT_A01|${id}|P|2.5\rPID|||123^^^CHU-X^PI\r`,
  );

describe('listener limits', () => {
  let ctx: ChannelContext;
  beforeEach(async () => {
    ctx = await channelContext();
  });
  afterEach(() => ctx.stop());
  describe('MLLP', () => {
    let listener: MllpListener | undefined;
    afterEach(async () => {
      await listener?.stop();
      listener = undefined;
    });

    it('closes a connection beyond maxConnections at once; the others still get their ACK', async () => {
      listener = createMllpListener({ port: 0, bind: '127.0.0.1', maxConnections: 3 }, ctx);
      await listener.start();
      const kept = await Promise.all([1, 2, 3].map(() => open(listener!.port)));
      const extra = await open(listener.port);
      await extra.closed;
      kept[0]!.socket.write(frame(adt('C1')));
      assert.match(await ackOf(kept[0]!.socket), /MSA\|AA\|C1/);
      for (const k of kept) k.socket.destroy();
    });

    it('closes a connection silent for idleTimeoutMs', async () => {
      listener = createMllpListener({ port: 0, bind: '127.0.0.1', idleTimeoutMs: 200 }, ctx);
      await listener.start();
      const idle = await open(listener.port);
      await idle.closed;
    });

    it('bounds the bytes of unfinished frames across connections, and gives them back when one closes', async () => {
      const mib = 1024 * 1024;
      listener = createMllpListener(
        { port: 0, bind: '127.0.0.1', maxFrameBytes: mib, maxBufferedBytes: mib },
        ctx,
      );
      await listener.start();
      const part = Buffer.concat([Buffer.of(0x0b), Buffer.alloc(400 * 1024, 0x41)]);
      const first = await open(listener.port);
      const second = await open(listener.port);
      first.socket.write(part);
      second.socket.write(part);
      // A complete message on a third connection is the probe: answered only once the two others were read.
      const probe = await open(listener.port);
      probe.socket.write(frame(adt('P1')));
      assert.match(await ackOf(probe.socket), /MSA\|AA\|P1/);
      const third = await open(listener.port);
      third.socket.write(part);
      await third.closed;
      assert.equal(
        await closedFirst(
          first.closed,
          (async () => {
            first.socket.write(frame(adt('X')).subarray(1));
            await ackOf(first.socket);
          })(),
        ),
        false,
        'the connections within the bound stay open',
      );
      second.socket.destroy();
      await second.closed;
      const fourth = await open(listener.port);
      fourth.socket.write(part);
      fourth.socket.write(Buffer.of(0x1c, 0x0d));
      // The 400 KiB frame is taken (and refused as unreadable HL7 with an AR): the budget was freed.
      assert.match(await ackOf(fourth.socket), /MSA\|AR/);
      for (const s of [first, probe, fourth]) s.socket.destroy();
    });
  });

  describe('HTTP listener', () => {
    let listener: HttpListener | undefined;
    afterEach(async () => {
      await listener?.stop();
      listener = undefined;
    });

    it('closes a silent connection after idleTimeoutMs and one beyond maxConnections at once', async () => {
      listener = createHttpListener(
        { port: 0, bind: '127.0.0.1', idleTimeoutMs: 200, maxConnections: 2 },
        ctx,
      );
      await listener.start();
      const a = await open(listener.port);
      const b = await open(listener.port);
      const c = await open(listener.port);
      await c.closed;
      await Promise.all([a.closed, b.closed]);
    });
  });

  describe('SFTP server', () => {
    let server: SftpServer | undefined;
    afterEach(async () => {
      await server?.stop();
      server = undefined;
    });

    it('closes a connection that does not authenticate in time, and one beyond maxConnections', async () => {
      server = new SftpServer({
        port: 0,
        bind: '127.0.0.1',
        hostKeyFile: path.join(ctx.dataDir, 'host_key'),
        dataDir: ctx.dataDir,
        accounts: ctx.accounts,
        log: ctx.log,
        limits: { authTimeoutMs: 300, maxConnections: 2 },
      });
      await server.start();
      const { port } = server.address();
      const a = await open(port);
      const b = await open(port);
      const c = await open(port);
      await c.closed;
      // a sends its SSH identification and stops there; b sends nothing at all.
      a.socket.write('SSH-2.0-probe\r\n');
      await Promise.all([a.closed, b.closed]);
    });
  });
});
