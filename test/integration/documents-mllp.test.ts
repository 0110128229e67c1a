// The shipped documents-mllp channel, to an establishment whose directory route is `way: mllp`: a
// validated form reaches a record system (an MLLP peer on a raw socket, reading with
// node-hl7-client's parser) as MDM^T02 with the CDA and the PDF in ED OBX; a correction as the
// channel's replacement event; the peer's AA completes the delivery, its AE leaves it in ERROR with
// the peer's reason at once, its AR after the retries.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import YAML from 'yaml';
import { Message } from 'node-hl7-client';
import { startEngine, until, type Harness } from '../support/engine-harness.ts';
import { documentDirectory, knownPatient, SUD } from '../support/documents-out.ts';
import { formContent, meetingData } from '../fixtures/documents/rcp-store.ts';

const actor = { login: 'dr-rcp', role: 'operator' };
const VT = 0x0b;
const FS = 0x1c;
const CR = 0x0d;

const shipped = (id: string): Record<string, unknown> =>
  YAML.parse(fs.readFileSync(path.resolve('config/channels', `${id}.yaml`), 'utf8'));

type Answer = { code: 'AA' | 'AE' | 'AR'; text?: string };

/** A record system: takes MLLP frames (parsed by hand, read by node-hl7-client) and answers `answer`. */
async function recordSystem() {
  const received: Message[] = [];
  const sockets = new Set<net.Socket>();
  let answer: Answer = { code: 'AA' };
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    let buffered = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      for (;;) {
        const start = buffered.indexOf(VT);
        const end = buffered.indexOf(FS, start);
        if (start < 0 || end < 0 || buffered[end + 1] !== CR) break;
        const text = buffered.subarray(start + 1, end).toString('utf8');
        buffered = buffered.subarray(end + 2);
        const msg = new Message({ text });
        received.push(msg);
        const id = msg.get('MSH.10').toString();
        const ack = [
          `MSH|^~\\&|DPI|${SUD}|ONCO-RELAY|DCC|20260112160000||ACK^${msg.get('MSH.9.2').toString()}^ACK|ACK-${id}|P|2.6`,
          `MSA|${answer.code}|${id}${answer.text ? `|${answer.text}` : ''}`,
        ].join('\r');
        socket.write(Buffer.concat([Buffer.from([VT]), Buffer.from(`${ack}\r`), Buffer.from([FS, CR])]));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    received,
    answer: (a: Answer) => (answer = a),
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

/** The OBX-5 values (ED: `^TYPE^SUBTYPE^Base64^data`) of a message, from its raw segments. */
const obx = (m: Message): string[] =>
  m
    .toString()
    .split('\r')
    .filter((segment) => segment.startsWith('OBX|'))
    .map((segment) => segment.split('|')[5] ?? '');

describe('documents-mllp: MDM^T02 to an establishment’s record system', function () {
  this.timeout(120_000);
  let peer: Awaited<ReturnType<typeof recordSystem>>;
  let h: Harness;
  let meetingId: number;
  let patientId: number;

  before(async () => {
    peer = await recordSystem();
    const mllp = shipped('documents-mllp') as {
      steps: Array<Record<string, unknown>>;
      destinations: Array<Record<string, unknown>>;
    };
    h = await startEngine({
      channels: [
        shipped('documents-out'),
        {
          ...mllp,
          enabled: true,
          steps: mllp.steps.map((s) => ({ ...s, replacementEvent: 'T04' })),
          destinations: mllp.destinations.map((d) => ({
            ...d,
            port: peer.port,
            retry: { maxAttempts: 2, initialDelayMs: 20, maxDelayMs: 50, multiplier: 2, jitter: 0 },
          })),
        },
      ],
      directory: {
        establishments: [
          {
            finess: SUD,
            name: 'CHU Sud',
            kind: 'hospital',
            documents: { way: 'mllp', channel: 'documents-mllp', application: 'DPI-SUD' },
          },
        ],
        professionals: documentDirectory.professionals.map((p) => ({ ...p, mssante: undefined })),
      },
    });
    patientId = await knownPatient(h.engine.store, true);
    meetingId = (await h.engine.store.write.rcp.createMeeting(meetingData, actor, Date.now())).id;
  });
  after(async () => {
    await h?.stop();
    await peer?.close();
  });

  /** The documents-mllp message of a form version, once it settled. */
  const settled = (formId: number) =>
    until(
      () => {
        const id = h.engine.store.db
          .prepare<[number], number>(
            `SELECT id FROM messages WHERE channel = 'documents-mllp' AND status IN ('SENT', 'ERROR')
             AND json_extract(meta, '$.documentId') = ?`,
          )
          .pluck()
          .get(formId);
        return id === undefined ? undefined : h.engine.store.journal.message(id);
      },
      'the record system’s delivery settled',
      60_000,
    );

  const validate = async (answer: Answer) => {
    peer.answer(answer);
    const { rcp } = h.engine.store.write;
    const form = await rcp.create('frcp', { patientId, meetingId, content: formContent }, actor, Date.now());
    await rcp.validate('frcp', form.id, actor, Date.now());
    return form.id;
  };

  it('AA: the MDM^T02 arrives with the CDA and the PDF, and the delivery is SENT; a correction is T04', async () => {
    const formId = await validate({ code: 'AA' });
    const message = await settled(formId);
    assert.equal(message.status, 'SENT');
    const delivery = h.engine.store.journal.deliveries(message.id)[0]!;
    assert.equal(delivery.status, 'SENT');
    const mdm = peer.received.at(-1)!;
    assert.equal(mdm.get('MSH.9.1').toString(), 'MDM');
    assert.equal(mdm.get('MSH.9.2').toString(), 'T02');
    assert.equal(mdm.get('MSH.5').toString(), 'DPI-SUD');
    assert.equal(mdm.get('MSH.6').toString(), SUD);
    const [cda, pdf] = obx(mdm);
    assert.match(cda!, /^\^TEXT\^XML\^Base64\^/);
    assert.match(Buffer.from(cda!.split('^')[4]!, 'base64').toString('utf8'), /<ClinicalDocument/);
    assert.match(pdf!, /^\^AP\^PDF\^Base64\^/);
    assert.equal(Buffer.from(pdf!.split('^')[4]!, 'base64').subarray(0, 5).toString('latin1'), '%PDF-');

    const { rcp } = h.engine.store.write;
    const v2 = await rcp.update(
      'frcp',
      formId,
      { patientId, meetingId, content: { ...formContent, question: 'Corrigée ?' } },
      actor,
      Date.now(),
    );
    await rcp.validate('frcp', v2.id, actor, Date.now());
    assert.equal((await settled(v2.id)).status, 'SENT');
    const replacement = peer.received.at(-1)!;
    assert.equal(replacement.get('MSH.9.2').toString(), 'T04');
    assert.equal(replacement.get('OBX.11').toString(), 'C');
  });

  for (const code of ['AE', 'AR'] as const) {
    it(`${code}: the delivery ends in ERROR with the record system's reason`, async () => {
      const formId = await validate({ code, text: `Patient inconnu (${code})` });
      const message = await settled(formId);
      assert.equal(message.status, 'ERROR');
      const delivery = h.engine.store.journal.deliveries(message.id)[0]!;
      assert.equal(delivery.status, 'ERROR');
      assert.match(delivery.lastError ?? '', new RegExp(`MLLP_ACK_${code}.*Patient inconnu \\(${code}\\)`));
      assert.equal(delivery.attempts, code === 'AE' ? 1 : 2, 'AE is final, AR is retried');
    });
  }
});
