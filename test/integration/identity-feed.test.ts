// The identity feed as an establishment uses it: PAM FR files over SFTP, messages over MLLP,
// ACKs back, and one DCC patient per person whatever the hospital.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import SftpClient from 'ssh2-sftp-client';
import { addAccount, startEngine, tempDir, until, type Harness } from '../support/engine-harness.ts';
import { openssh } from '../support/openssh-sftp.ts';
import { parseOpenSshPublicKey } from '../../bin/cli.ts';
import { freePort } from '../support/ports.ts';
import { a28, a40, insOf, type PamPatient } from '../support/pam.ts';
import { frame, MllpFramer } from '../../connectors/mllp-framer.ts';
import { parseAck } from '../../transformers/hl7v2-ack.ts';

const steps = [{ type: 'pam-fr', acceptTestIns: true }];
const destinations = [{ name: 'identities', type: 'identity-store', rules: { acceptTestIns: true } }];

describe('identity feed (SFTP and MLLP into the patient store)', function () {
  this.timeout(60_000);
  let h: Harness;
  let sftpPort: number;
  let mllpPort: number;
  let keyDir: string;

  before(async () => {
    sftpPort = await freePort();
    mllpPort = await freePort();
    h = await startEngine({
      directory: {
        establishments: [
          { finess: '310000001', name: 'CHU A' },
          { finess: '310000004', name: 'CH B' },
          { finess: '310000005', name: 'CH C' },
          { finess: '310000002', name: 'Laboratoire', kind: 'pathology-lab' },
        ],
      },
      channels: [
        {
          id: 'identity-sftp',
          source: { type: 'sftp-drop', folder: 'identity', port: sftpPort },
          steps,
          destinations,
        },
        {
          id: 'identity-mllp',
          source: { type: 'mllp-listener', port: mllpPort, respond: 'on-outcome' },
          steps,
          destinations,
        },
      ],
      start: false,
    });
    keyDir = tempDir('onco-keys-');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', '', '-f', path.join(keyDir, 'key')]);
    const publicKeys = [parseOpenSshPublicKey(fs.readFileSync(path.join(keyDir, 'key.pub'), 'utf8'))];
    for (const [login, role, finess] of [
      ['chu-a', 'establishment', '310000001'],
      ['chu-b', 'establishment', '310000004'],
      ['chu-c', 'establishment', '310000005'],
      ['lab', 'lab', '310000002'],
    ] as const) {
      await addAccount(h.engine.store, { login, role, finess, password: `pw-${login}`, publicKeys });
    }
    await h.engine.start();
  });
  after(() => h.stop());

  async function upload(login: string, name: string, content: string): Promise<string> {
    return (await uploadAnswered(login, name, content)).ack;
  }

  /** Uploads a file with OpenSSH's `sftp`, reads back its ACK file, and its `/error` note when there is one. */
  async function uploadAnswered(
    login: string,
    name: string,
    content: string,
  ): Promise<{ ack: string; error: string | null }> {
    const local = path.join(keyDir, name);
    fs.writeFileSync(local, content);
    const put = await openssh(sftpPort, login, path.join(keyDir, 'key'), [
      `put ${local} /in/identity/${name}`,
    ]);
    assert.equal(put.code, 0, put.stderr);
    const sftp = new SftpClient();
    await sftp.connect({ host: '127.0.0.1', port: sftpPort, username: login, password: `pw-${login}` });
    try {
      const ackPath = `/out/ack/${name}.ack.hl7`;
      await until(async () => (await sftp.exists(ackPath)) !== false, `ACK file ${ackPath}`);
      const ack = (await sftp.get(ackPath)).toString('utf8');
      // The error note is written right after the ACK file: an AE without it would be a bug.
      const errorPath = `/error/${name}.error.txt`;
      if (parseAck(ack).code === 'AA') return { ack, error: null };
      await until(async () => (await sftp.exists(errorPath)) !== false, `error file ${errorPath}`);
      return { ack, error: (await sftp.get(errorPath)).toString('utf8') };
    } finally {
      await sftp.end();
    }
  }

  /** The last error of the message's identity-store delivery, once it has failed for good. */
  async function deliveryError(channel: string, controlId: string): Promise<string> {
    return until(
      () =>
        h.engine.store.db
          .prepare(
            `SELECT d.last_error FROM deliveries d JOIN messages m ON m.id = d.message_id
             WHERE m.channel = ? AND m.meta LIKE ? AND d.status = 'ERROR'`,
          )
          .pluck()
          .get(channel, `%"controlId":"${controlId}"%`) as string | undefined,
      `delivery error of ${controlId}`,
    );
  }

  const person = {
    birthName: 'TESTPATIENT',
    given: 'CAMILLE',
    birthDate: '19720415',
    sex: 'F',
    birthPlace: '31555',
  } as const;

  it('files the same person from three hospitals (one with a qualified INS) as one patient', async () => {
    const withIns: PamPatient = {
      ...person,
      ipp: 'A-100',
      finess: '310000001',
      insBase: '2720431555123',
      status: 'QUAL',
    };
    const ackA = parseAck(await upload('chu-a', 'a.hl7', a28(withIns, 'A1')));
    const ackB = parseAck(
      await upload('chu-b', 'b.hl7', a28({ ...person, ipp: 'B-7', finess: '310000004' }, 'B1')),
    );
    const ackC = parseAck(
      await upload('chu-c', 'c.hl7', a28({ ...person, ipp: 'C-42', finess: '310000005' }, 'C1')),
    );
    assert.deepEqual([ackA.code, ackB.code, ackC.code], ['AA', 'AA', 'AA']);
    const { patients } = h.engine.store;
    const id = await until(
      () => patients.resolveIdentifier({ finess: '310000005', ipp: 'C-42' }),
      'third filing',
    );
    assert.equal(patients.resolveIdentifier({ finess: '310000001', ipp: 'A-100' }), id);
    assert.equal(patients.resolveIdentifier({ finess: '310000004', ipp: 'B-7' }), id);
    assert.deepEqual(patients.findByIns(insOf('2720431555123'), '1.2.250.1.213.1.4.10'), [id]);
  });

  it('answers a refused file with an AE ACK file that says why, and files nothing', async () => {
    const bad = a28({ ...person, ipp: 'A-101', finess: '310000001', birthDate: '19721345' }, 'A2');
    const ack = parseAck(await upload('chu-a', 'bad.hl7', bad));
    assert.equal(ack.code, 'AE');
    assert.match(ack.text, /PID-7/);
    assert.equal(h.engine.store.patients.resolveIdentifier({ finess: '310000001', ipp: 'A-101' }), null);
  });

  async function mllp(message: string): Promise<ReturnType<typeof parseAck>> {
    const socket = net.connect(mllpPort, '127.0.0.1');
    const framer = new MllpFramer();
    const ack = new Promise<Buffer>((resolve, reject) => {
      socket.on('data', (chunk) => {
        for (const e of framer.push(chunk)) if (e.type === 'frame') resolve(e.payload);
      });
      socket.on('error', reject);
    });
    socket.write(frame(Buffer.from(message, 'utf8')));
    const bytes = await ack;
    socket.end();
    return parseAck(bytes);
  }

  it('takes identities over MLLP: AA once journaled and mapped, AE with the reason for an unknown event or bad content', async () => {
    const p = { ...person, birthName: 'MLLPTEST', ipp: 'M-1', finess: '310000001' };
    assert.equal((await mllp(a28(p, 'M1'))).code, 'AA');
    const unknown = await mllp(a28({ ...p, ipp: 'M-2' }, 'M2', 'A99'));
    assert.equal(unknown.code, 'AE');
    assert.match(unknown.text, /A99/);
    const badDate = await mllp(a28({ ...p, ipp: 'M-3', birthDate: '19721345' }, 'M3'));
    assert.equal(badDate.code, 'AE');
    assert.match(badDate.text, /PID-7/);
    await until(
      () => h.engine.store.patients.resolveIdentifier({ finess: '310000001', ipp: 'M-1' }),
      'MLLP filing',
    );
  });

  it('merges two IPPs on an A40: both then designate the survivor', async () => {
    const survivor = { ...person, birthName: 'FUSION', ipp: 'F-1', finess: '310000001' };
    assert.equal((await mllp(a28(survivor, 'F1'))).code, 'AA');
    assert.equal(
      (await mllp(a28({ ...survivor, birthName: 'FUSIONN', given: 'CAMILE', ipp: 'F-2' }, 'F2'))).code,
      'AA',
    );
    const merged = await mllp(a40(survivor, 'F-2', 'F3'));
    assert.equal(merged.code, 'AA', merged.text);
    const { patients } = h.engine.store;
    await until(() => {
      const a = patients.resolveIdentifier({ finess: '310000001', ipp: 'F-1' });
      return a !== null && a === patients.resolveIdentifier({ finess: '310000001', ipp: 'F-2' });
    }, 'both IPPs on the survivor');
  });

  it('refuses a PID without birth date before answering: AE with the reason over MLLP, AE ACK and /error file over SFTP', async () => {
    const noBirthDate = { ...person, birthName: 'SANSDATE', ipp: 'N-1', finess: '310000001', birthDate: '' };
    const overMllp = await mllp(a28(noBirthDate, 'N1'));
    assert.equal(overMllp.code, 'AE');
    assert.match(overMllp.text, /PID-7 \(birth date\) is empty/);
    const overSftp = await uploadAnswered('chu-a', 'no-birth-date.hl7', a28(noBirthDate, 'N2'));
    assert.equal(parseAck(overSftp.ack).code, 'AE');
    assert.match(overSftp.error ?? '', /PAM_MISSING_BIRTH_DATE/);
    assert.equal(h.engine.store.patients.resolveIdentifier({ finess: '310000001', ipp: 'N-1' }), null);
  });

  it('lets a sender speak only for itself: its own FINESS, those the directory grants, none outside the directory', async () => {
    const { patients } = h.engine.store;
    // chu-a (310000001) sends an IPP of 310000004: AE ACK and error file, naming both FINESS.
    const foreign = await uploadAnswered(
      'chu-a',
      'foreign.hl7',
      a28({ ...person, ipp: 'X-1', finess: '310000004' }, 'S1'),
    );
    assert.equal(parseAck(foreign.ack).code, 'AE');
    assert.match(parseAck(foreign.ack).text, /FINESS 310000004.*speaks for FINESS 310000001/);
    assert.match(foreign.error ?? '', /IDENTITY_FINESS_NOT_GRANTED: .*FINESS 310000004/);
    // A lab of the directory reports on any establishment of the directory.
    const lab = parseAck(
      await upload('lab', 'lab.hl7', a28({ ...person, ipp: 'L-1', finess: '310000005' }, 'S2')),
    );
    assert.equal(lab.code, 'AA');
    await until(() => patients.resolveIdentifier({ finess: '310000005', ipp: 'L-1' }), 'the lab filing');
    // An unbound MLLP listener: any establishment of the directory, none outside it.
    const outside = await mllp(a28({ ...person, ipp: 'U-1', finess: '000897406' }, 'S3'));
    assert.equal(outside.code, 'AE');
    assert.match(outside.text, /FINESS 000897406, which is not an establishment of the DCC directory/);
    assert.match(
      await deliveryError('identity-mllp', 'S3'),
      /FINESS 000897406, which is not an establishment of the DCC directory/,
    );
    assert.equal(patients.resolveIdentifier({ finess: '310000004', ipp: 'X-1' }), null);
    assert.equal(patients.resolveIdentifier({ finess: '000897406', ipp: 'U-1' }), null);
  });
});
