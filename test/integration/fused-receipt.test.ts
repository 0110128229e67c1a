// The fused receipt (issue 14): an A28 over MLLP into the identity store is received, processed and
// filed in one write of the store's writer, one durable commit, and answered with the committed
// outcome. What the journal, the API (read with curl) and the search show of it must be what the
// classic path (receipt commit, mark, steps, result and filing commit) shows of the same kind of
// message.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import net from 'node:net';
import type { FastifyInstance } from 'fastify';
import { listenDashboard } from '../support/dashboard-listen.ts';
import { frame, MllpFramer } from '../../connectors/mllp-framer.ts';
import { parseAck } from '../../transformers/hl7v2-ack.ts';
import { addAccount, startEngine, until, type Harness } from '../support/engine-harness.ts';
import { freePort } from '../support/ports.ts';
import { benchDirectory, newPatientA28 } from '../bench/people.ts';

const ADMIN = { login: 'admin1', password: 'admin-pass-1', role: 'admin' } as const;

function curlJson(url: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-sf', '-u', `${ADMIN.login}:${ADMIN.password}`, url], (err, stdout) =>
      err ? reject(err) : resolve(JSON.parse(stdout)),
    );
  });
}

/** One MLLP connection: each message sent once the previous one is answered. */
class Peer {
  private readonly socket: net.Socket;
  private readonly acks: Buffer[] = [];
  private readonly waiting: Array<(ack: Buffer) => void> = [];

  constructor(port: number) {
    this.socket = net.connect(port, '127.0.0.1');
    const framer = new MllpFramer();
    this.socket.on('data', (chunk: Buffer) => {
      for (const e of framer.push(chunk)) {
        if (e.type !== 'frame') continue;
        const w = this.waiting.shift();
        if (w) w(e.payload);
        else this.acks.push(e.payload);
      }
    });
  }

  send(message: string): Promise<ReturnType<typeof parseAck>> {
    const answer = new Promise<Buffer>((resolve) => this.waiting.push(resolve));
    this.socket.write(frame(Buffer.from(message)));
    return answer.then(parseAck);
  }

  close(): void {
    this.socket.destroy();
  }
}

/** A journal view with what differs between two messages by nature (ids, times, the patient) blanked. */
function shape(view: unknown): unknown {
  const blank = new Set(['id', 'messageId', 'receivedAt', 'updatedAt', 'sentAt', 'text', 'size', 'detail']);
  const walk = (v: unknown, key = ''): unknown => {
    if (Array.isArray(v)) return v.map((x) => walk(x));
    // Metadata by its keys: the remote port and MSH-4 differ, what the steps added must not.
    if (key === 'meta') return Object.keys(v as object).sort();
    if (v !== null && typeof v === 'object')
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x, k)]));
    return blank.has(key) ? typeof v : v;
  };
  return walk(view);
}

describe('fused receipt (MLLP, pam-fr, identity store)', function () {
  this.timeout(60_000);
  let h: Harness;
  let app: FastifyInstance;
  let base: string;
  const ports = { outcome: 0, commit: 0 };

  before(async () => {
    ports.outcome = await freePort();
    ports.commit = await freePort();
    const channel = (id: string, port: number, respond: string) => ({
      id,
      source: { type: 'mllp-listener', port, respond },
      steps: [{ type: 'pam-fr' }],
      destinations: [{ name: 'store', type: 'identity-store', queue: 'ordered' }],
    });
    h = await startEngine({
      directory: benchDirectory,
      channels: [
        channel('on-outcome', ports.outcome, 'on-outcome'),
        channel('on-commit', ports.commit, 'on-commit'),
      ],
    });
    await addAccount(h.engine.store, ADMIN);
    ({ app, base } = await listenDashboard(h.engine));
  });

  after(async () => {
    await app?.close();
    await h?.stop();
  });

  const messageOf = (controlId: string): number =>
    h.engine.store.db
      .prepare(`SELECT id FROM messages WHERE json_extract(meta, '$.controlId') = ?`)
      .pluck()
      .get(controlId) as number;

  it('files an A28 in one durable commit and shows it as the classic path shows its twin', async () => {
    const channel = h.engine.channel('on-outcome');
    const { stats } = h.engine.store.writer;
    const peer = new Peer(ports.outcome);
    // A first message warms up the connection, so that the next one is alone in its commit.
    assert.equal((await peer.send(newPatientA28(41_000_000))).code, 'AA');
    await until(() => channel.metrics.sent === 1, 'the first message filed');
    const commits = stats.commits;
    const ack = await peer.send(newPatientA28(41_000_001));
    assert.equal(ack.code, 'AA', ack.text);
    // Acknowledged after its one commit, filed by then: nothing left to commit for it.
    assert.equal(stats.commits - commits, 1, 'one durable commit for receipt, result and filing');
    assert.equal(channel.metrics.sent, 2);
    peer.close();

    // Its twin by the classic path: the same kind of inbound, from a source that does not take outcomes.
    const twin = newPatientA28(41_000_002);
    await channel.receive({
      content: Buffer.from(twin),
      contentType: 'application/hl7-v2',
      meta: { remote: '127.0.0.1:1', controlId: 'N41000002', messageType: 'ADT^A28', sendingFacility: 'x' },
      sender: '127.0.0.1',
      dedupKey: '127.0.0.1|x|N41000002',
    });
    await until(() => channel.metrics.sent === 3, 'the classic twin filed');

    const fused = await curlJson(`${base}/api/messages/${messageOf('N41000001')}`);
    const classic = await curlJson(`${base}/api/messages/${messageOf('N41000002')}`);
    assert.deepEqual(shape(fused), shape(classic));
    const view = fused as {
      message: { status: string; attempts: number };
      contents: Array<{ stage: string; text?: string }>;
      deliveries: Array<{ status: string; attempts: number; starts: number }>;
    };
    assert.equal(view.message.status, 'SENT');
    assert.deepEqual(
      view.contents.map((c) => c.stage),
      ['raw', 'transformed', 'response'],
    );
    assert.deepEqual(
      view.deliveries.map((d) => [d.status, d.attempts, d.starts]),
      [['SENT', 1, 1]],
    );

    // The identity decision names the fused message: the patient's messages find it.
    const decisions = JSON.parse(view.contents.find((c) => c.stage === 'response')!.text!) as Array<{
      patientId: number;
    }>;
    const patient = decisions[0]!.patientId;
    const byPatient = (await curlJson(`${base}/api/messages?patient=${patient}`)) as {
      items: Array<{ id: number }>;
    };
    assert.deepEqual(
      byPatient.items.map((m) => m.id),
      [messageOf('N41000001')],
    );
    // The search index, filled in the background from the journal, finds it by its MSH-10.
    await until(async () => {
      const found = (await curlJson(`${base}/api/messages?text=N41000001`)) as {
        items: Array<{ id: number }>;
      };
      return found.items.some((m) => m.id === messageOf('N41000001'));
    }, 'the fused message indexed');
  });

  it('answers AE with the step’s reason in on-commit mode too, the message journaled ERROR and nothing filed', async () => {
    const channel = h.engine.channel('on-commit');
    const peer = new Peer(ports.commit);
    // An A28 without PID: pam-fr refuses it.
    const noPid = newPatientA28(41_000_010)
      .split('\r')
      .filter((s) => !s.startsWith('PID|'))
      .join('\r');
    const ack = await peer.send(noPid);
    peer.close();
    assert.equal(ack.code, 'AE');
    assert.match(ack.text, /PID/);
    const id = messageOf('N41000010');
    const view = (await curlJson(`${base}/api/messages/${id}`)) as {
      message: { status: string; error: string };
      deliveries: Array<{ status: string; lastError: string }>;
    };
    assert.equal(view.message.status, 'ERROR');
    assert.match(view.message.error, /PID/);
    assert.ok(ack.text.includes(view.message.error.slice(0, 40)), `${ack.text} / ${view.message.error}`);
    assert.deepEqual(
      view.deliveries.map((d) => d.status),
      ['ERROR'],
    );
    assert.equal(channel.metrics.sent, 0);
  });

  it('answers a resent copy AA as a duplicate and files it once', async () => {
    const channel = h.engine.channel('on-commit');
    const peer = new Peer(ports.commit);
    const a28 = newPatientA28(41_000_020);
    assert.equal((await peer.send(a28)).code, 'AA');
    assert.equal((await peer.send(a28)).code, 'AA');
    peer.close();
    const rows = h.engine.store.db
      .prepare(
        `SELECT status FROM messages WHERE json_extract(meta, '$.controlId') = 'N41000020' ORDER BY id`,
      )
      .pluck()
      .all();
    assert.deepEqual(rows, ['SENT', 'DUPLICATE']);
    assert.equal(channel.metrics.sent, 1);
  });
});
