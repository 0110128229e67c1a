// What one A28 costs the journal, counted (not timed) through a real engine: an MLLP listener on a
// raw socket, the pam-fr step and the identity store, the writer inline so that the test's triggers
// see every write. Issue 14 item 2: journal row writes per message 12, then 10, then 6 with the fused
// receipt (message, raw content, de-duplication key, delivery, transformed content, filing response:
// each row written once in its end state). Durable commits per message: 2 before the fused receipt
// (the receipt's, then the result's with its filing), 1 since.
import assert from 'node:assert/strict';
import net from 'node:net';
import { startEngine, until, type Harness } from '../support/engine-harness.ts';
import { freePort } from '../support/ports.ts';
import { frame, MllpFramer } from '../../connectors/mllp-framer.ts';
import { parseAck } from '../../transformers/hl7v2-ack.ts';
import { benchDirectory, newPatientA28 } from '../bench/people.ts';

const JOURNAL_TABLES = ['messages', 'contents', 'deliveries', 'dedup', 'answers', 'blobs'];
const MESSAGES = 20;

describe('journal cost of one A28 filed in the identity store', function () {
  this.timeout(60_000);
  let h: Harness;
  let port: number;

  before(async () => {
    port = await freePort();
    h = await startEngine({
      directory: benchDirectory,
      engine: { store: { writer: 'inline' } },
      channels: [
        {
          id: 'identities',
          source: { type: 'mllp-listener', port },
          steps: [{ type: 'pam-fr' }],
          destinations: [{ name: 'store', type: 'identity-store' }],
        },
      ],
    });
    // Temporary triggers live on this connection only: the inline writer's, the one that writes.
    const { db } = h.engine.store;
    db.exec('CREATE TEMP TABLE journal_writes (n INTEGER NOT NULL)');
    // The message index commits in the background, on its own: each of its commits moves its mark once.
    db.exec('CREATE TEMP TABLE index_commits (n INTEGER NOT NULL)');
    db.exec(`CREATE TEMP TRIGGER count_index_commits AFTER UPDATE ON main.message_index_state
             BEGIN INSERT INTO index_commits VALUES (1); END`);
    for (const table of JOURNAL_TABLES) {
      for (const op of ['INSERT', 'UPDATE', 'DELETE']) {
        db.exec(`CREATE TEMP TRIGGER count_${table}_${op.toLowerCase()} AFTER ${op} ON main.${table}
                 BEGIN INSERT INTO journal_writes VALUES (1); END`);
      }
    }
  });

  after(() => h.stop());

  it('writes at most 6 journal rows and commits once per message', async () => {
    const { db, writer } = h.engine.store;
    const channel = h.engine.channel('identities');
    const socket = net.connect(port, '127.0.0.1');
    const framer = new MllpFramer();
    const acks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => {
      for (const e of framer.push(chunk)) if (e.type === 'frame') acks.push(e.payload);
    });
    await new Promise((resolve) => socket.once('connect', resolve));
    const commits = writer.stats.commits;
    // One at a time, each filed before the next is sent: no message shares a commit with another.
    for (let i = 0; i < MESSAGES; i++) {
      socket.write(frame(Buffer.from(newPatientA28(30_000_000 + i))));
      await until(() => acks.length > i && channel.metrics.sent > i, `message ${i} acknowledged and filed`);
      assert.equal(parseAck(acks[i]!).code, 'AA');
    }
    socket.destroy();
    const rows = db.prepare('SELECT count(*) FROM temp.journal_writes').pluck().get() as number;
    assert.ok(rows <= 6 * MESSAGES, `${rows / MESSAGES} journal row writes per message`);
    // The message index writes in the background, in commits of its own: not counted against a message.
    const index = db.prepare('SELECT count(*) FROM temp.index_commits').pluck().get() as number;
    const ingest = writer.stats.commits - commits - index;
    assert.ok(ingest <= MESSAGES, `${ingest / MESSAGES} commits per message`);
    assert.equal(
      db.prepare(`SELECT count(*) FROM messages WHERE status = 'SENT'`).pluck().get(),
      MESSAGES,
      'every message SENT',
    );
  });
});
