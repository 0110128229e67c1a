import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  ERRORS,
  OncoError,
  codeOfRendering,
  definitionOf,
  renderError,
  type ErrorCode,
} from '../../config/errors.ts';
import { describeError } from '../../channels/steps.ts';
import { StepError } from '../../transformers/contract.ts';
import { Hl7Error, parse } from '../../transformers/hl7v2.ts';
import { ackErrorOf } from '../../transformers/hl7v2-ack.ts';
import { pamFrStep, PamError } from '../../transformers/pam-fr.ts';
import { SendError } from '../../connectors/contract.ts';
import { SftpRefusal } from '../../connectors/sftp-paths.ts';
import { ConfigError } from '../../config/loader.ts';
import { AccountError } from '../../store/accounts.ts';
import { PatientStoreError } from '../../store/patients.ts';
import { EngineError } from '../../channels/engine.ts';
import { ActionError } from '../../dashboard/actions.ts';

const root = path.resolve(import.meta.dirname, '../..');

/** Every `.ts` file of the appliance (tests and dependencies aside). */
function sources(dir = root): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory())
      return ['node_modules', 'test', 'data', '.git'].includes(e.name) ? [] : sources(full);
    return e.name.endsWith('.ts') ? [full] : [];
  });
}

describe('error catalogue', () => {
  it('knows every code the appliance throws, so that each has a hint and its protocol statuses', () => {
    // The first argument of an error constructor that is a code literal, refuse() codes, code unions.
    const thrown = new Map<string, string>();
    for (const file of sources()) {
      const text = fs.readFileSync(file, 'utf8');
      const patterns = [
        /new [A-Z]\w*(?:Error|Refusal|Refused)\(\s*(?:\d+,\s*|STATUS\.\w+,\s*)?'([A-Z][A-Z0-9_]+)'/g,
        /refuse\(\s*(?:STATUS\.\w+,\s*)?'([A-Z][A-Z0-9_]+)'/g,
        /\| '([A-Z][A-Z0-9]*_[A-Z0-9_]+)'/g,
      ];
      for (const re of patterns)
        for (const m of text.matchAll(re)) thrown.set(m[1]!, path.relative(root, file));
    }
    assert.ok(thrown.size > 60, `found only ${thrown.size} codes: the scan is broken`);
    const unknown = [...thrown].filter(([code]) => definitionOf(code) === undefined);
    assert.deepEqual(unknown, [], 'register these codes in config/errors.ts');
  });

  it('gives every code a message and a hint', () => {
    for (const [code, d] of Object.entries(ERRORS)) {
      assert.match(code, /^[A-Z][A-Z0-9]*(_[A-Z0-9]+)+$|^[A-Z]+$/, code);
      assert.ok(d.message.length > 0 && d.hint.length > 0, code);
    }
  });

  it('fills the message template and the catalogue hint when the thrower gives neither', () => {
    const e = new OncoError('CHANNEL_UNKNOWN', { params: { id: 'lab-feed' } });
    assert.equal(e.message, 'no channel "lab-feed"');
    assert.equal(e.hint, ERRORS.CHANNEL_UNKNOWN.hint);
    assert.equal(e.protocol.http, 404);
    assert.equal(e.name, 'OncoError');
  });

  it('is the base of every error class, which keep their names for instanceof', () => {
    const cases: [Error, string, string][] = [
      [new Hl7Error('HL7_EMPTY', 'the message is empty'), 'Hl7Error', 'HL7_EMPTY'],
      [new StepError('PAM_BAD_DATE', 'x'), 'StepError', 'PAM_BAD_DATE'],
      [new SendError('MLLP_ACK_AE', 'x', { retryable: false }), 'SendError', 'MLLP_ACK_AE'],
      [new SftpRefusal(3, 'SFTP_SYMLINK', 'x'), 'SftpRefusal', 'SFTP_SYMLINK'],
      [new ConfigError([{ file: 'a.yaml', path: '/x', message: 'bad' }]), 'ConfigError', 'CONFIG_INVALID'],
      [new AccountError('ACCOUNT_EXISTS', 'x'), 'AccountError', 'ACCOUNT_EXISTS'],
      [new PatientStoreError('PATIENT_UNKNOWN', 'x', 'h'), 'PatientStoreError', 'PATIENT_UNKNOWN'],
      [new EngineError('CHANNEL_STATE', 'x'), 'EngineError', 'CHANNEL_STATE'],
      [new ActionError(404, 'MESSAGE_UNKNOWN', 'x'), 'ActionError', 'MESSAGE_UNKNOWN'],
      [new PamError('PAM_BAD_SEX', 'x', { hint: 'h', hl7Code: '103' }), 'PamError', 'PAM_BAD_SEX'],
    ];
    for (const [e, name, code] of cases) {
      assert.ok(e instanceof OncoError, name);
      assert.equal(e.name, name);
      assert.equal((e as OncoError).code, code);
    }
  });

  it('maps a code to its protocol statuses, an occurrence overriding what it knows better', () => {
    assert.equal(new SftpRefusal(2, 'SFTP_NO_FILE', 'x').protocol.sftp, 2);
    assert.equal(new SendError('HTTP_REFUSED', 'x', { retryable: false }).protocol.retryable, false);
    assert.equal(new ActionError(409, 'REPLAY_IMPOSSIBLE', 'x').protocol.http, 409);
    const refusal = new PamError('PAM_UNKNOWN_EVENT', 'x', { hint: 'h', hl7Code: '201' });
    assert.deepEqual([refusal.protocol.ack, refusal.protocol.hl7], ['AR', '201']);
    assert.equal(new Hl7Error('HL7_EMPTY', 'x').hl7Code, '100', 'from the catalogue when not given');
  });
});

describe('one rendering of an error (8.8)', () => {
  it('says the code, the message, the location and the hint once each', () => {
    const e = new Hl7Error('HL7_CHARSET_INVALID_BYTES', 'byte 0xe9 is not valid UNICODE UTF-8', {
      location: 'byte 120',
    });
    assert.equal(
      renderError(e),
      `HL7_CHARSET_INVALID_BYTES: byte 0xe9 is not valid UNICODE UTF-8 (at byte 120). Hint: ${ERRORS.HL7_CHARSET_INVALID_BYTES.hint}`,
    );
    const named = new Hl7Error('HL7_BAD_DELIMITERS', 'MSH-1/MSH-2 do not define valid delimiters', {
      location: 'MSH-2',
      hint: 'start with MSH|^~\\&|',
    });
    assert.equal(
      renderError(named),
      'HL7_BAD_DELIMITERS: MSH-1/MSH-2 do not define valid delimiters. Hint: start with MSH|^~\\&|',
      'a location the message already names is not repeated',
    );
  });

  it('does not repeat a cause that a wrapper already says, nor a location the message names', async () => {
    const step = pamFrStep.create({});
    const bad = Buffer.from(
      'MSH|^~\\&|GAM|HOP|ONCO|DCC|20250102||ADT^A28^ADT_A05|C1|P|2.5|||||FRA|UNICODE UTF-8\r' +
        'EVN||20250102\rPID|1||X1^^^HOP&310000001&M^PI||NOM^PRENOM^^^^^L||19721345|F\r',
    );
    const error = await Promise.resolve()
      .then(() => step({ content: bad, contentType: 'application/hl7-v2', meta: {} }))
      .then(
        () => assert.fail('refused'),
        (e: unknown) => e,
      );
    assert.ok(error instanceof StepError && error.cause instanceof PamError);
    const text = describeError(error);
    assert.match(text, /^PAM_BAD_DATE: PID-7 "19721345" is not a valid date\. Hint: /);
    assert.equal(text.split('19721345').length, 2, `the value once: ${text}`);
    assert.equal(text.split('Hint:').length, 2, `the hint once: ${text}`);
    assert.doesNotMatch(text, /\(at PID-7\)|←|Cause/);
  });

  it('adds a cause only when it says something new', () => {
    const io = new Error('EACCES: permission denied');
    const e = new SendError('FILE_WRITE_FAILED', 'writing out/a.hl7 failed', { retryable: true, cause: io });
    assert.equal(
      renderError(e),
      `FILE_WRITE_FAILED: writing out/a.hl7 failed. Cause: EACCES: permission denied. Hint: ${ERRORS.FILE_WRITE_FAILED.hint}`,
    );
    assert.equal(renderError(new Error('plain')), 'plain');
    assert.equal(renderError('thrown string'), 'thrown string');
  });

  it('calls garbage "not an HL7 message" before any charset detail', () => {
    const garbage = Buffer.from([0xff, 0xfe, 0x00, 0x41, 0xc3, 0x28, 0x0d, 0x0a, 0x99]);
    assert.throws(
      () => parse(garbage),
      (e: unknown) =>
        e instanceof Hl7Error &&
        e.code === 'HL7_NO_MSH' &&
        renderError(e) ===
          'HL7_NO_MSH: not an HL7 message: it starts with "???A?(", not MSH (at segment 1). Hint: an HL7 v2 message starts with MSH|^~\\&|',
    );
  });

  it('names the environment variable, not the option, in the test INS hint', () => {
    assert.match(ERRORS.PAM_TEST_INS.hint, /ONCO_ACCEPT_TEST_INS=true/);
  });

  it('gives an ACK the rendering once, our code in ERR-5 and the catalogue ERR-3 code, from the journaled text too', () => {
    const e = new PamError('PAM_BAD_DATE', 'PID-7 "1972" is not a valid date', {
      hint: 'write YYYYMMDD',
      location: 'PID-7',
      hl7Code: '102',
    });
    const fromError = ackErrorOf(e);
    assert.deepEqual(fromError, {
      text: 'PAM_BAD_DATE: PID-7 "1972" is not a valid date. Hint: write YYYYMMDD',
      code: '102',
      appCode: 'PAM_BAD_DATE',
      location: 'PID-7',
    });
    const fromText = ackErrorOf(renderError(e));
    assert.deepEqual(fromText, { text: fromError.text, code: '102', appCode: 'PAM_BAD_DATE' });
    assert.equal(codeOfRendering('no code here'), undefined);
    const code: ErrorCode = 'PAM_BAD_DATE';
    assert.equal(codeOfRendering(fromError.text), code);
  });
});
