// The poison pair of issue 8.0 against the appliance as shipped: two A28 with 200,000-character
// names and the same birth date, from an unauthenticated MLLP peer. They used to be answered AA and
// then freeze the engine in the name comparison; now the pam-fr step refuses them by field length.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import net from 'node:net';
import { startChildEngine } from '../support/child-engine.ts';
import { tempDir } from '../support/engine-harness.ts';
import { freePort } from '../support/ports.ts';
import { a28 } from '../support/pam.ts';
import { frame, MllpFramer } from '../../connectors/mllp-framer.ts';
import { parseAck } from '../../transformers/hl7v2-ack.ts';

/** Sends each message on one connection and returns the ACKs, in order. */
async function exchange(port: number, messages: string[]): Promise<Array<ReturnType<typeof parseAck>>> {
  const socket = net.connect(port, '127.0.0.1');
  const framer = new MllpFramer();
  const acks: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    socket.on('data', (chunk) => {
      for (const e of framer.push(chunk)) if (e.type === 'frame') acks.push(e.payload);
      if (acks.length === messages.length) resolve();
    });
    socket.on('error', reject);
    socket.on('close', () => reject(new Error(`connection closed after ${acks.length} ACK(s)`)));
  });
  for (const m of messages) socket.write(frame(Buffer.from(m, 'utf8')));
  await done;
  socket.removeAllListeners('close');
  socket.end();
  return acks.map(parseAck);
}

describe('identity feed against a poison message (shipped configuration)', function () {
  this.timeout(60_000);
  let child: ChildProcess | undefined;
  after(() => {
    child?.kill('SIGKILL');
  });

  it('answers the 200,000-character name pair AE naming the field, and keeps answering health and other messages', async () => {
    const env = {
      ...process.env,
      ONCO_DATA_DIR: tempDir(),
      ONCO_HTTP_PORT: String(await freePort()),
      ONCO_SFTP_PORT: String(await freePort()),
      ONCO_MLLP_PORT: String(await freePort()),
      ONCO_SMTP_PORT: String(await freePort()),
    };
    child = await startChildEngine([], env);
    const long = 'A'.repeat(200_000);
    const person = { finess: '310000001', given: 'ANNE', birthDate: '19600101', sex: 'F' } as const;
    const poison = [
      a28({ ...person, ipp: 'P-1', birthName: `${long}X` }, 'P1'),
      a28({ ...person, ipp: 'P-2', birthName: `${long}Y` }, 'P2'),
    ];
    const acks = await exchange(Number(env.ONCO_MLLP_PORT), poison);
    for (const ack of acks) {
      assert.equal(ack.code, 'AE');
      assert.match(ack.text, /PID-5\[1\]\.1 is 200001 characters; PAM FR allows at most 100/);
    }
    const health = await fetch(`http://127.0.0.1:${env.ONCO_HTTP_PORT}/api/health`);
    assert.equal(health.status, 200);
    const [good] = await exchange(Number(env.ONCO_MLLP_PORT), [
      a28({ ...person, ipp: 'G-1', birthName: 'GOODNAME' }, 'G1'),
    ]);
    assert.equal(good!.code, 'AA', good!.text);
    child.kill('SIGTERM');
    const code = await new Promise((r) => child!.once('exit', (c, signal) => r(c ?? signal)));
    assert.equal(code, 0);
    child = undefined;
  });
});
