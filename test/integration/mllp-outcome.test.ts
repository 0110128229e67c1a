// What an MLLP sender is told, end to end through a real engine (pam-fr step, identity-store
// destination) over a raw socket: an AA means filed or on its way, a store refusal is an AE with its
// reason, a copy of a refused message is processed again, a reused control id is not a duplicate, and
// a listener bound to an establishment gives its messages an owner.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { startEngine, until, type Harness } from '../support/engine-harness.ts';
import { freePort } from '../support/ports.ts';
import { a28, a40, type PamPatient } from '../support/pam.ts';
import { selfSignedCert, type TestCert } from '../support/self-signed-cert.ts';
import { frame, MllpFramer } from '../../connectors/mllp-framer.ts';
import { parseAck } from '../../transformers/hl7v2-ack.ts';

const steps = [{ type: 'pam-fr', acceptTestIns: true }];
const destinations = [
  { name: 'identities', type: 'identity-store', queue: 'ordered', rules: { acceptTestIns: true } },
];

/** The establishments whose IPPs may be filed. */
const directory = { establishments: [{ finess: '310000001', name: 'CHU A' }] };

const person: PamPatient = {
  birthName: 'OUTCOME',
  given: 'CAMILLE',
  birthDate: '19720415',
  sex: 'F',
  birthPlace: '31555',
  ipp: 'X-1',
  finess: '310000001',
};

/** A47: the IPP in MRG-1 becomes the one in PID-3 (same establishment). */
const a47 = (p: PamPatient, oldIpp: string, controlId: string): string =>
  a40(p, oldIpp, controlId).replace('ADT^A40^ADT_A39', 'ADT^A47^ADT_A30');

/** One message on a fresh raw connection (plain or TLS); resolves with its ACK. */
async function exchange(
  port: number,
  message: string,
  secure?: tls.ConnectionOptions,
): Promise<ReturnType<typeof parseAck>> {
  const socket = secure
    ? tls.connect({ port, host: '127.0.0.1', ...secure })
    : net.connect(port, '127.0.0.1');
  const framer = new MllpFramer();
  try {
    const ack = await new Promise<Buffer>((resolve, reject) => {
      socket.on('data', (chunk: Buffer) => {
        for (const e of framer.push(chunk)) if (e.type === 'frame') resolve(e.payload);
      });
      socket.on('error', reject);
      socket.on('close', () => reject(new Error('closed without an ACK')));
      socket.write(frame(Buffer.from(message, 'utf8')));
    });
    return parseAck(ack);
  } finally {
    socket.destroy();
  }
}

describe('MLLP answers on outcome (real engine, raw socket)', function () {
  this.timeout(30_000);
  let h: Harness;
  let port: number;

  before(async () => {
    port = await freePort();
    h = await startEngine({
      directory,
      channels: [
        {
          id: 'idm',
          source: { type: 'mllp-listener', port, respond: 'on-outcome' },
          steps,
          destinations,
        },
      ],
    });
  });
  after(() => h.stop());

  const messages = () =>
    h.engine.store.db.prepare('SELECT * FROM messages ORDER BY id').all() as Array<{
      id: number;
      status: string;
      meta: string;
    }>;

  it('answers AE with the store writer’s reason, not AA, when the store refuses the message', async () => {
    const ack = await exchange(port, a47({ ...person, ipp: 'NEW-1' }, 'UNKNOWN-1', 'S1'));
    assert.equal(ack.code, 'AE', ack.text);
    assert.match(ack.text, /UNKNOWN-1/);
    assert.match(ack.text, /send it again/);
    assert.match(ack.text, /replay/);
    assert.equal(messages().at(-1)!.status, 'ERROR');
  });

  it('answers AE with the reason for a PID without birth date', async () => {
    const ack = await exchange(port, a28({ ...person, ipp: 'NB-1', birthDate: '' }, 'NB1'));
    assert.equal(ack.code, 'AE', ack.text);
    assert.match(ack.text, /birth date|PID-7/i);
    assert.equal(h.engine.store.patients.resolveIdentifier({ finess: person.finess, ipp: 'NB-1' }), null);
  });

  it('processes a copy of a refused message again once the cause is fixed: filed, AA, linked to the first', async () => {
    const change = a47({ ...person, ipp: 'R-NEW' }, 'R-OLD', 'R2');
    assert.equal((await exchange(port, change)).code, 'AE');
    const refused = messages().at(-1)!;
    assert.equal((await exchange(port, a28({ ...person, ipp: 'R-OLD' }, 'R1'))).code, 'AA');
    const again = await exchange(port, change);
    assert.equal(again.code, 'AA', again.text);
    const resend = messages().at(-1)!;
    assert.notEqual(resend.status, 'DUPLICATE');
    assert.equal(JSON.parse(resend.meta).resendOf, refused.id);
    const { patients } = h.engine.store;
    assert.ok(patients.resolveIdentifier({ finess: person.finess, ipp: 'R-NEW' }), 'the IPP was changed');
  });

  it('files a second message that reuses a control id with other content, and flags it', async () => {
    assert.equal(
      (await exchange(port, a28({ ...person, birthName: 'FIRST', ipp: 'C-1' }, 'SAME'))).code,
      'AA',
    );
    const first = messages().at(-1)!;
    const second = await exchange(port, a28({ ...person, birthName: 'SECOND', ipp: 'C-2' }, 'SAME'));
    assert.equal(second.code, 'AA');
    const reused = messages().at(-1)!;
    assert.notEqual(reused.status, 'DUPLICATE');
    assert.equal(JSON.parse(reused.meta).keyReusedFrom, first.id);
    await until(
      () => h.engine.store.patients.resolveIdentifier({ finess: person.finess, ipp: 'C-2' }),
      'the second patient filed',
    );
  });

  it('records a true copy of an accepted message as a duplicate, answered AA and filed once', async () => {
    const m = a28({ ...person, birthName: 'COPY', ipp: 'D-1' }, 'D1');
    assert.equal((await exchange(port, m)).code, 'AA');
    const first = messages().at(-1)!;
    assert.equal((await exchange(port, m)).code, 'AA');
    const copy = messages().at(-1)!;
    assert.equal(copy.status, 'DUPLICATE');
    assert.equal(h.engine.store.journal.message(copy.id)?.duplicateOf, first.id);
  });
});

describe('MLLP listener bound to an establishment', function () {
  this.timeout(30_000);
  let h: Harness | undefined;
  let certs: TestCert[] = [];
  afterEach(async () => {
    await h?.stop();
    h = undefined;
    for (const c of certs) c.remove();
    certs = [];
  });

  const owners = () =>
    h!.engine.store.db.prepare('SELECT owner, sender, status FROM messages ORDER BY id').all() as Array<{
      owner: string | null;
      sender: string;
      status: string;
    }>;

  const start = async (source: object) => {
    const port = await freePort();
    h = await startEngine({
      channels: [
        {
          id: 'bound',
          source: { type: 'mllp-listener', port, ...source },
          destinations: [{ name: 'out', type: 'file-writer', path: 'out' }],
        },
      ],
    });
    return port;
  };

  it('by listener option: every message is owned by the establishment, whatever its MSH-4', async () => {
    const port = await start({ establishment: '310000001' });
    assert.equal((await exchange(port, a28(person, 'B1'))).code, 'AA');
    assert.deepEqual(
      owners().map((r) => [r.owner, r.sender]),
      [['310000001', '310000001']],
    );
    const mine = h!.engine.store.messageSearch.search({ owner: '310000001' }, { limit: 10 });
    assert.equal(mine.items.length, 1, 'shown in the establishment’s own files');
  });

  it('by MSH-4 list: a listed facility owns its messages, an unlisted one is refused with AR', async () => {
    const port = await start({ sendingFacilities: { HOP: '310000004' } });
    assert.equal((await exchange(port, a28(person, 'F1'))).code, 'AA');
    const other = await exchange(port, a28(person, 'F2').replace('|GAM|HOP|', '|GAM|OTHER|'));
    assert.equal(other.code, 'AR');
    assert.match(other.text, /MSH-4 "OTHER"/);
    assert.deepEqual(
      owners().map((r) => [r.owner, r.status === 'REJECTED']),
      [
        ['310000004', false],
        [null, true],
      ],
    );
  });

  it('by TLS client certificate: a listed fingerprint binds, an unknown certificate is refused', async () => {
    const server = selfSignedCert();
    const known = selfSignedCert();
    const stranger = selfSignedCert();
    certs = [server, known, stranger];
    const pem = (c: TestCert, f: 'cert.pem' | 'key.pem') => fs.readFileSync(path.join(c.dir, f));
    const fingerprint = new crypto.X509Certificate(pem(known, 'cert.pem')).fingerprint256;
    const port = await start({
      tls: {
        cert: path.join(server.dir, 'cert.pem'),
        key: path.join(server.dir, 'key.pem'),
        clients: { [fingerprint]: '310000005' },
      },
    });
    const client = (c: TestCert): tls.ConnectionOptions => ({
      ca: pem(server, 'cert.pem'),
      cert: pem(c, 'cert.pem'),
      key: pem(c, 'key.pem'),
    });
    assert.equal((await exchange(port, a28(person, 'T1'), client(known))).code, 'AA');
    const refused = await exchange(port, a28(person, 'T2'), client(stranger));
    assert.equal(refused.code, 'AR');
    assert.match(refused.text, /bound to no establishment/);
    assert.deepEqual(
      owners().map((r) => [r.owner, r.status === 'REJECTED']),
      [
        ['310000005', false],
        [null, true],
      ],
    );
  });
});
