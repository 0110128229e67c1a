// The poison guard of the fused receipt, under real kill -9: a step that kills the engine on a marked
// A28, sent over MLLP to a channel that receives, processes and files in one write. Such a message is
// never journaled before its steps; the in-flight file counts its attempts instead. The sender resends
// after each death (it never got an ACK); after three deaths the resend is journaled QUARANTINED and
// answered AE, and the messages behind it flow.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import Database from 'better-sqlite3';
import YAML from 'yaml';
import { startChildEngine, type ChildEngine } from '../support/child-engine.ts';
import { tempDir } from '../support/engine-harness.ts';
import { freePort } from '../support/ports.ts';
import { a28, type PamPatient } from '../support/pam.ts';
import { frame, MllpFramer } from '../../connectors/mllp-framer.ts';
import { parseAck } from '../../transformers/hl7v2-ack.ts';
import { benchDirectory } from '../bench/people.ts';

const person = (birthName: string, ipp: string): PamPatient => ({
  birthName,
  given: 'CAMILLE',
  birthDate: '19720415',
  sex: 'F',
  ipp,
  finess: benchDirectory.establishments[0]!.finess,
});

/** Sends one message on a new connection: its ACK, or null when the connection closed first (the engine died). */
function exchange(port: number, message: string): Promise<ReturnType<typeof parseAck> | null> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const framer = new MllpFramer();
    socket.on('data', (chunk: Buffer) => {
      for (const e of framer.push(chunk)) {
        if (e.type !== 'frame') continue;
        socket.destroy();
        resolve(parseAck(e.payload));
      }
    });
    socket.on('error', () => resolve(null));
    socket.on('close', () => resolve(null));
    socket.write(frame(Buffer.from(message)));
  });
}

describe('poison guard of the fused receipt (MLLP, kill -9)', function () {
  this.timeout(180_000);
  let child: ChildEngine | undefined;
  after(() => child?.kill('SIGKILL'));

  it('quarantines an A28 that kills the engine in a step after exactly 3 deaths, answers AE, and files the next', async () => {
    const configDir = tempDir('onco-fused-poison-config-');
    const dataDir = tempDir('onco-fused-poison-data-');
    const port = await freePort();
    fs.mkdirSync(path.join(configDir, 'channels'), { recursive: true });
    fs.writeFileSync(path.join(configDir, 'engine.yaml'), YAML.stringify({ http: { port: 0 } }));
    fs.writeFileSync(path.join(configDir, 'directory.yaml'), YAML.stringify(benchDirectory));
    fs.writeFileSync(
      path.join(configDir, 'channels', 'feed.yaml'),
      YAML.stringify({
        id: 'feed',
        source: { type: 'mllp-listener', port, respond: 'on-outcome' },
        steps: [{ type: 'test-crash' }, { type: 'pam-fr' }],
        destinations: [{ name: 'identities', type: 'identity-store', queue: 'ordered' }],
      }),
    );
    const start = () =>
      startChildEngine([configDir, dataDir], process.env, {
        entry: ['--import', 'tsx', path.resolve('test/support/poison-engine.ts')],
      });

    child = await start();
    assert.equal((await exchange(port, a28(person('AVANT', 'G-1'), 'G1')))?.code, 'AA');
    const poison = a28(person('POISON-STEP', 'P-1'), 'P1');
    let deaths = 0;
    let answer: ReturnType<typeof parseAck> | null = null;
    while (answer === null) {
      assert.ok(deaths <= 5, `the engine died ${deaths} times: the poison was never quarantined`);
      answer = await exchange(port, poison);
      if (answer !== null) break;
      await child.exited;
      deaths++;
      child = await start();
    }
    assert.equal(deaths, 3, 'quarantined after exactly three deaths, not before, not later');
    assert.equal(answer.code, 'AE');
    assert.match(answer.text, /POISON_RESENT: processing of this message began 3 times/);
    assert.equal((await exchange(port, a28(person('APRES', 'G-2'), 'G2')))?.code, 'AA');

    const d = new Database(path.join(dataDir, 'onco-relay.db'), { readonly: true });
    const rows = d
      .prepare(
        `SELECT json_extract(m.meta, '$.controlId') AS controlId, m.status, m.error,
           (SELECT group_concat(status) FROM deliveries WHERE message_id = m.id) AS deliveries
         FROM messages m ORDER BY m.id`,
      )
      .all() as Array<{ controlId: string; status: string; error: string | null; deliveries: string }>;
    d.close();
    // The poison journaled once, as QUARANTINED, nothing of it filed; the others filed.
    assert.deepEqual(
      rows.map((r) => [r.controlId, r.status, r.deliveries]),
      [
        ['G1', 'SENT', 'SENT'],
        ['P1', 'QUARANTINED', 'QUARANTINED'],
        ['G2', 'SENT', 'SENT'],
      ],
    );
    assert.match(rows[1]!.error!, /^POISON_RESENT/);

    const last = child;
    last.kill('SIGTERM');
    assert.equal(await last.exited, 0);
    child = undefined;
  });
});
