// Errors said once (issue 8, item 8): the exact texts a sender reads in MSA-3 and ERR-8 over a raw
// MLLP socket and in an SFTP `.error.txt`, and that the journal (dashboard, `status`) keeps.
import assert from 'node:assert/strict';
import net from 'node:net';
import SftpClient from 'ssh2-sftp-client';
import { addAccount, startEngine, until, type Harness } from '../support/engine-harness.ts';
import { freePort } from '../support/ports.ts';
import { a28, type PamPatient } from '../support/pam.ts';
import { frame, MllpFramer } from '../../connectors/mllp-framer.ts';
import { get, parse } from '../../transformers/hl7v2.ts';
import { ERRORS } from '../../config/errors.ts';

const patient: PamPatient = {
  ipp: 'E-1',
  finess: '310000001',
  birthName: 'ERREUR',
  given: 'CAMILLE',
  birthDate: '19721345',
  sex: 'F',
};

const BAD_DATE =
  'PAM_BAD_DATE: PID-7 "19721345" is not a valid date. Hint: send PID-7 as YYYYMMDD (YYYY or YYYYMM when only that is known)';
const TEST_INS = `PAM_TEST_INS: PID-3[2] carries a INS-NIR-TEST (OID 1.2.250.1.213.1.4.10), refused on this channel (at PID-3[2].4.2). Hint: ${ERRORS.PAM_TEST_INS.hint}`;
const GARBAGE = `HL7_NO_MSH: not an HL7 message: it starts with "????garbage", not MSH (at segment 1). Hint: an HL7 v2 message starts with MSH|^~\\&|`;

// What the MLLP listener adds to every AE: the two ways out (issue 8, item 2).
const WAYS_OUT =
  'correct the message and send it again (a copy of a refused message is processed anew), or ask the DCC to replay it once the cause is fixed';

/** An AE's text without the `message N: ` that names the journaled message. */
function reasonOf(text: string): string {
  assert.match(text, /^message \d+: /);
  return text.replace(/^message \d+: /, '');
}

describe('error texts said once, over MLLP and SFTP', function () {
  this.timeout(60_000);
  let h: Harness;
  let mllpPort: number;
  let sftpPort: number;

  before(async () => {
    mllpPort = await freePort();
    sftpPort = await freePort();
    const destinations = [{ name: 'identities', type: 'identity-store' }];
    h = await startEngine({
      channels: [
        {
          id: 'identity-mllp',
          source: { type: 'mllp-listener', port: mllpPort, respond: 'on-outcome' },
          steps: [{ type: 'pam-fr' }],
          destinations,
        },
        {
          id: 'identity-sftp',
          source: { type: 'sftp-drop', folder: 'identity', port: sftpPort },
          steps: [{ type: 'pam-fr' }],
          destinations,
        },
      ],
      start: false,
    });
    await addAccount(h.engine.store, {
      login: 'chu-a',
      role: 'establishment',
      finess: '310000001',
      password: 'pw-a',
    });
    await h.engine.start();
  });
  after(() => h.stop());

  /** The first journaled message whose error has this code. */
  function journaled(code: string): Promise<{ error: string | null }> {
    return until(() => {
      for (let id = 1; id < 100; id++) {
        const m = h.engine.store.journal.message(id);
        if (m?.error?.startsWith(`${code}:`)) return m;
      }
      return undefined;
    }, `a journaled ${code}`);
  }

  /** One frame over a raw socket, its ACK back as text. */
  function mllp(payload: Buffer): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(mllpPort, '127.0.0.1', () => socket.write(frame(payload)));
      const framer = new MllpFramer();
      socket.on('data', (chunk: Buffer) => {
        for (const e of framer.push(chunk)) {
          if (e.type !== 'frame') continue;
          resolve(e.payload.toString('utf8'));
          socket.end();
        }
      });
      socket.on('error', reject);
    });
  }

  function fields(ack: string): {
    msa1: string;
    msa3: string;
    err2: string;
    err3: string;
    err5: string;
    err8: string;
  } {
    const m = parse(ack);
    return {
      msa1: get(m, 'MSA-1'),
      msa3: get(m, 'MSA-3'),
      err2: get(m, 'ERR-2'),
      err3: get(m, 'ERR-3.1'),
      err5: get(m, 'ERR-5'),
      err8: get(m, 'ERR-8'),
    };
  }

  it('answers a bad birth date with the reason once in MSA-3 and ERR-8, its code in ERR-5 and ERR-3 102', async () => {
    const ack = fields(await mllp(Buffer.from(a28(patient, 'E1'))));
    assert.equal(ack.msa1, 'AE');
    assert.equal(reasonOf(ack.msa3), `${BAD_DATE}; ${WAYS_OUT}`);
    assert.equal(ack.err8, ack.msa3);
    assert.equal(ack.err5, 'PAM_BAD_DATE');
    assert.equal(ack.err3, '102');
    assert.equal((await journaled('PAM_BAD_DATE')).error, BAD_DATE, 'the dashboard and status show the same');
  });

  it('names ONCO_ACCEPT_TEST_INS in the hint for a test INS', async () => {
    const ack = fields(
      await mllp(Buffer.from(a28({ ...patient, birthDate: '19720415', insBase: '2720431555123' }, 'E2'))),
    );
    assert.equal(ack.msa1, 'AE');
    assert.equal(reasonOf(ack.msa3), `${TEST_INS}; ${WAYS_OUT}`);
    assert.equal(ack.err8, ack.msa3);
  });

  it('calls binary garbage "not an HL7 message" (AR), not a charset problem, and journals the same text', async () => {
    const garbage = Buffer.concat([Buffer.from([0xff, 0xfe, 0x00, 0xc3]), Buffer.from('garbage\r')]);
    const ack = fields(await mllp(garbage));
    assert.equal(ack.msa1, 'AR');
    assert.equal(ack.msa3, GARBAGE);
    assert.equal(ack.err8, GARBAGE);
    assert.equal(ack.err5, 'HL7_NO_MSH');
    assert.equal((await journaled('HL7_NO_MSH')).error, GARBAGE);
  });

  it('writes the reason once in the SFTP .error.txt, the same text as the AE ACK file', async () => {
    const sftp = new SftpClient();
    await sftp.connect({ host: '127.0.0.1', port: sftpPort, username: 'chu-a', password: 'pw-a' });
    try {
      await sftp.put(Buffer.from(a28({ ...patient, ipp: 'E-9' }, 'E9')), '/in/identity/bad-date.hl7');
      await until(
        async () => (await sftp.exists('/error/bad-date.hl7.error.txt')) !== false,
        'the error file',
      );
      const note = (await sftp.get('/error/bad-date.hl7.error.txt')).toString('utf8');
      const ack = fields((await sftp.get('/out/ack/bad-date.hl7.ack.hl7')).toString('utf8'));
      assert.equal(ack.msa3, BAD_DATE);
      assert.deepEqual([ack.err3, ack.err5, ack.err8], ['102', 'PAM_BAD_DATE', BAD_DATE]);
      const reason = note.split('\n')[3] ?? '';
      assert.match(reason, /^message \d+ failed: /, note);
      assert.equal(reason.replace(/^message \d+ failed: /, ''), BAD_DATE);
    } finally {
      await sftp.end();
    }
  });
});
