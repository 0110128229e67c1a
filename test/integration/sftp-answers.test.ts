// What an establishment hears back over the SFTP drop, through a real engine and OpenSSH `sftp`: an
// ACK file says AA only for what is filed or on its way; a store refusal gives an AE ACK file and an
// `/error` note; a delivery that fails after the AA rewrites the ACK file (late AE); a refused file
// sent again once the channel is fixed is filed.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import path from 'node:path';
import ssh2 from 'ssh2';
import { addAccount, startEngine, tempDir, until, type Harness } from '../support/engine-harness.ts';
import { openssh } from '../support/openssh-sftp.ts';
import { freePort } from '../support/ports.ts';
import { a28, type PamPatient } from '../support/pam.ts';
import { parseAck } from '../../transformers/hl7v2-ack.ts';

const person: PamPatient = {
  birthName: 'DEPOT',
  given: 'CAMILLE',
  birthDate: '19720415',
  sex: 'F',
  birthPlace: '31555',
  ipp: 'S-1',
  finess: '310000001',
};

function identityChannel(port: number, acceptTestIns: boolean, more: object[] = []): object {
  return {
    id: 'ids',
    source: { type: 'sftp-drop', folder: 'identity', port },
    steps: [{ type: 'pam-fr', acceptTestIns }],
    destinations: [
      { name: 'identities', type: 'identity-store', queue: 'ordered', rules: { acceptTestIns } },
      ...more,
    ],
  };
}

describe('SFTP drop answers (real engine, OpenSSH sftp)', function () {
  this.timeout(60_000);
  let h: Harness | undefined;
  let dir: string;
  let key: string;
  let port: number;

  before(() => {
    dir = tempDir('onco-sftp-answers-');
    key = path.join(dir, 'id');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', '', '-f', key]);
  });
  afterEach(async () => {
    await h?.stop();
    h = undefined;
  });

  async function start(channel: object, dataDir?: string): Promise<Harness> {
    h = await startEngine({
      channels: [channel],
      directory: { establishments: [{ finess: '310000001', name: 'CHU A' }] },
      start: false,
      ...(dataDir ? { dataDir } : {}),
    });
    if (!h.engine.store.accounts.get('chu')) {
      const parsed = ssh2.utils.parseKey(fs.readFileSync(`${key}.pub`, 'utf8'));
      if (parsed instanceof Error) throw parsed;
      await addAccount(h.engine.store, {
        login: 'chu',
        role: 'establishment',
        finess: '310000001',
        publicKeys: [{ algorithm: parsed.type, key: parsed.getPublicSSH() }],
      });
    }
    await h.engine.start();
    return h;
  }

  /** Uploads with OpenSSH, then waits for the ACK file to say `code`; returns the ACK and the error note. */
  async function drop(name: string, content: string, code: string): Promise<Answer> {
    const local = path.join(dir, name);
    fs.writeFileSync(local, content);
    const put = await openssh(port, 'chu', key, [`put ${local} /in/identity/${name}`]);
    assert.equal(put.code, 0, put.stderr);
    return answer(name, code);
  }

  type Answer = { ack: ReturnType<typeof parseAck>; error: string | null };

  /** Waits (with OpenSSH `get`) for the ACK file of `name` to say `code`; reads its /error note if any. */
  async function answer(name: string, code: string): Promise<Answer> {
    const fetched = path.join(dir, `${name}.ack.hl7`);
    const ack = await until(async () => {
      fs.rmSync(fetched, { force: true });
      const got = await openssh(port, 'chu', key, [`get /out/ack/${name}.ack.hl7 ${fetched}`]);
      if (got.code !== 0) return null;
      const parsed = parseAck(fs.readFileSync(fetched));
      return parsed.code === code ? parsed : null;
    }, `an ${code} ACK file for ${name}`);
    const note = path.join(dir, `${name}.error.txt`);
    fs.rmSync(note, { force: true });
    const got = await openssh(port, 'chu', key, [`get /error/${name}.error.txt ${note}`]);
    return { ack, error: got.code === 0 ? fs.readFileSync(note, 'utf8') : null };
  }

  it('answers a file the store writer refuses with an AE ACK file and an /error note, never AA', async () => {
    port = await freePort();
    await start(identityChannel(port, true));
    const { ack, error } = await drop('no-birth-date.hl7', a28({ ...person, birthDate: '' }, 'N1'), 'AE');
    assert.match(ack.text, /birth date|PID-7/i);
    assert.ok(error, 'an /error note');
    assert.match(error, /birth date|PID-7/i);
    assert.match(error, /send it again/);
    assert.match(error, /replay/);
  });

  it('files a refused file sent again once the channel’s configuration is fixed: AA, linked to the refusal', async () => {
    port = await freePort();
    const dataDir = tempDir('onco-sftp-answers-data-');
    // The INS test OID is refused until the channel accepts it (ONCO_ACCEPT_TEST_INS).
    const file = a28({ ...person, ipp: 'T-1', insBase: '2720431555123', status: 'QUAL' }, 'T1');
    await start(identityChannel(port, false), dataDir);
    const refused = await drop('test-ins.hl7', file, 'AE');
    assert.match(refused.ack.text, /OID|test/i);
    await h!.stop();
    await start(identityChannel(port, true), dataDir);
    const again = await drop('test-ins.hl7', file, 'AA');
    assert.equal(again.ack.code, 'AA');
    const { patients, journal } = h!.engine.store;
    assert.ok(patients.resolveIdentifier({ finess: '310000001', ipp: 'T-1' }), 'filed');
    const last = h!.engine.store.db.prepare('SELECT max(id) FROM messages').pluck().get() as number;
    assert.equal(typeof journal.message(last)?.meta['resendOf'], 'number', 'linked to the refused one');
  });

  it('rewrites the ACK file to AE and writes an /error note when a delivery fails after the AA', async () => {
    // A downstream HTTP peer that refuses the content (422), but only once the test has seen the AA.
    let release!: () => void;
    const seenAa = new Promise<void>((r) => (release = r));
    const peer = http.createServer((req, res) => {
      req.resume();
      void seenAa.then(() => res.writeHead(422).end('unknown patient downstream'));
    });
    await new Promise<void>((r) => peer.listen(0, '127.0.0.1', r));
    try {
      port = await freePort();
      const peerPort = (peer.address() as net.AddressInfo).port;
      await start(
        identityChannel(port, true, [
          { name: 'hospital', type: 'http-sender', url: `http://127.0.0.1:${peerPort}/identities` },
        ]),
      );
      const first = await drop('late.hl7', a28({ ...person, ipp: 'L-1' }, 'L1'), 'AA');
      assert.equal(first.error, null, 'no error note while the message is on its way');
      release();
      const late = await answer('late.hl7', 'AE');
      assert.match(late.ack.text, /422/);
      assert.ok(late.error, 'an /error note');
      assert.match(late.error, /hospital: .*422/);
    } finally {
      peer.closeAllConnections();
      peer.close();
    }
  });
});
