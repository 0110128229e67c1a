import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { buildAck, parseAck } from '../../transformers/hl7v2-ack.ts';
import { parse, get, type Hl7Error } from '../../transformers/hl7v2.ts';

const fixture = (name: string): Buffer => readFileSync(new URL(`../fixtures/hl7/${name}`, import.meta.url));
const now = new Date(2025, 0, 2, 10, 30, 5);
const withMsh15And16 = (bytes: Buffer, msh15: string, msh16: string): Buffer =>
  Buffer.from(
    bytes.toString('latin1').replace('|2.5^FRA^2.11|||||FRA|', `|2.5^FRA^2.11|||${msh15}|${msh16}|FRA|`),
    'latin1',
  );

describe('hl7v2 ACK building', () => {
  it('answers AA in original mode, addressed back to the sender, echoing MSH-10 in MSA-2', () => {
    const ack = buildAck(fixture('a28-utf8.hl7'), { code: 'AA', now });
    const m = parse(ack.bytes);
    assert.equal(ack.code, 'AA');
    assert.equal(ack.send, true);
    assert.equal(get(m, 'MSH-3'), 'ONCO');
    assert.equal(get(m, 'MSH-4'), 'DCC');
    assert.equal(get(m, 'MSH-5'), 'GAM-TEST');
    assert.equal(get(m, 'MSH-6'), 'HOP-TEST');
    assert.match(get(m, 'MSH-7'), /^20250102103005[+-]\d{4}$/);
    assert.equal(getRawType(m), 'ACK^A28^ACK');
    assert.equal(get(m, 'MSH-10'), 'ACKT0001', 'stable id: a replayed ACK is the same ACK');
    assert.equal(get(m, 'MSH-11'), 'P');
    assert.equal(get(m, 'MSH-12'), '2.5');
    assert.equal(get(m, 'MSA-1'), 'AA');
    assert.equal(get(m, 'MSA-2'), 'T0001');
    assert.equal(m.segments.length, 2, 'no ERR when all is well');
    assert.ok(ack.text.endsWith('\r') && !ack.text.includes('\n'), 'segments end with CR');
  });

  it('explains an AE with an ERR segment: location, table 0357 code, severity, our code, user message', () => {
    const ack = buildAck(fixture('a28-utf8.hl7'), {
      code: 'AE',
      now,
      error: {
        code: '102',
        text: 'Date de naissance invalide « 19851332 »',
        location: 'PID-7',
        appCode: 'PAM_BAD_DATE',
      },
    });
    const m = parse(ack.bytes);
    assert.equal(get(m, 'MSA-1'), 'AE');
    assert.equal(get(m, 'MSA-3'), 'Date de naissance invalide « 19851332 »');
    assert.equal(get(m, 'ERR-2.1'), 'PID');
    assert.equal(get(m, 'ERR-2.3'), '7');
    assert.equal(get(m, 'ERR-3.1'), '102');
    assert.equal(get(m, 'ERR-3.2'), 'Data type error');
    assert.equal(get(m, 'ERR-3.3'), 'HL70357');
    assert.equal(get(m, 'ERR-4'), 'E');
    assert.equal(get(m, 'ERR-5'), 'PAM_BAD_DATE');
    assert.equal(get(m, 'ERR-8'), 'Date de naissance invalide « 19851332 »');
  });

  it('escapes delimiters in the error text', () => {
    const ack = buildAck(fixture('a28-utf8.hl7'), {
      code: 'AR',
      now,
      error: { text: 'bad | field ^ here & there ~', code: '207' },
    });
    assert.equal(get(parse(ack.bytes), 'ERR-8'), 'bad | field ^ here & there ~');
  });

  it('answers in the sender charset and says so in MSH-18', () => {
    const ack = buildAck(fixture('a28-8859-1.hl7'), { code: 'AE', now, error: { text: 'prénom refusé' } });
    assert.equal(ack.charset, '8859/1');
    assert.ok(ack.bytes.includes(Buffer.from('pr\xe9nom refus\xe9', 'latin1')), 'é as the single byte 0xE9');
    assert.equal(get(parse(ack.bytes), 'MSH-18'), '8859/1');
  });

  it('switches to enhanced mode (CA/CE/CR) when MSH-15 or MSH-16 is set', () => {
    const original = withMsh15And16(fixture('a28-utf8.hl7'), 'AL', 'NE');
    assert.equal(buildAck(original, { code: 'AA', now }).code, 'CA');
    assert.equal(buildAck(original, { code: 'AE', now, error: { text: 'x' } }).code, 'CE');
    assert.equal(
      get(parse(buildAck(original, { code: 'AR', now, error: { text: 'x' } }).bytes), 'MSA-1'),
      'CR',
    );
  });

  it('tells whether the sender wants the accept ACK (MSH-15 AL, NE, ER, SU)', () => {
    const send = (msh15: string, code: 'AA' | 'AE'): boolean =>
      buildAck(withMsh15And16(fixture('a28-utf8.hl7'), msh15, 'AL'), { code, now, error: { text: 'x' } })
        .send;
    assert.deepEqual([send('AL', 'AA'), send('AL', 'AE')], [true, true]);
    assert.deepEqual([send('NE', 'AA'), send('NE', 'AE')], [false, false]);
    assert.deepEqual([send('ER', 'AA'), send('ER', 'AE')], [false, true]);
    assert.deepEqual([send('SU', 'AA'), send('SU', 'AE')], [true, false]);
  });

  it('accepts a parsed message and an explicit control id', () => {
    const ack = buildAck(parse(fixture('a28-utf8.hl7')), { code: 'AA', now, controlId: 'X-42' });
    assert.equal(get(parse(ack.bytes), 'MSH-10'), 'X-42');
  });

  it('still answers when the original does not parse, from what it can read of MSH', () => {
    const broken = Buffer.concat([fixture('a28-utf8.hl7'), Buffer.from('not a segment\r')]);
    const ack = buildAck(broken, {
      code: 'AR',
      now,
      error: { code: '100', text: 'segment 6 is not a segment' },
    });
    const m = parse(ack.bytes);
    assert.equal(get(m, 'MSA-2'), 'T0001');
    assert.equal(get(m, 'MSH-5'), 'GAM-TEST');
    assert.equal(get(m, 'MSH-9.2'), 'A28');
  });

  it('answers invalid UTF-8 in the declared charset, from the salvaged MSH', () => {
    const bad = Buffer.from(
      fixture('a28-8859-1.hl7').toString('latin1').replace('8859/1', 'UNICODE UTF-8'),
      'latin1',
    );
    const ack = buildAck(bad, { code: 'AR', now, error: { code: '102', text: 'invalid UTF-8' } });
    assert.equal(ack.charset, 'UNICODE UTF-8');
    assert.equal(get(parse(ack.bytes), 'MSA-2'), 'T0002');
  });

  it('answers AR with a minimal header when there is no MSH at all', () => {
    const ack = buildAck(Buffer.from('hello'), { code: 'AA', now });
    const m = parse(ack.bytes);
    assert.equal(ack.code, 'AR');
    assert.equal(get(m, 'MSA-1'), 'AR');
    assert.equal(get(m, 'MSA-2'), '');
    assert.equal(get(m, 'ERR-3.1'), '100');
    assert.match(get(m, 'ERR-8'), /no MSH/);
  });

  it('always produces a parseable ACK, whatever the input bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), fc.constantFrom('AA', 'AE', 'AR'), (bytes, code) => {
        const input = Buffer.concat([Buffer.from('MSH|^~\\&|A|B|C|D|'), bytes]);
        for (const original of [input, Buffer.from(bytes)]) {
          const ack = parseAck(
            buildAck(original, { code: code as 'AA' | 'AE' | 'AR', now, error: { text: 'x' } }).bytes,
          );
          assert.ok(['AA', 'AE', 'AR', 'CA', 'CE', 'CR'].includes(ack.code));
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('hl7v2 ACK reading', () => {
  it('reads code, acknowledged control id and the error our own ACK carries', () => {
    const ack = buildAck(fixture('a28-utf8.hl7'), {
      code: 'AE',
      now,
      error: { code: '103', text: 'sexe inconnu', location: 'PID-8' },
    });
    const read = parseAck(ack.bytes);
    assert.equal(read.code, 'AE');
    assert.equal(read.accepted, false);
    assert.equal(read.controlId, 'T0001');
    assert.equal(read.ackControlId, 'ACKT0001');
    assert.equal(read.text, 'sexe inconnu');
    assert.deepEqual(read.errors, [{ code: '103', severity: 'E', location: 'PID-8', text: 'sexe inconnu' }]);
  });

  it('reads a minimal peer ACK (LF terminated) and a pre-2.5 ERR-1', () => {
    const read = parseAck('MSH|^~\\&|PFI|ORG|SIL|LAB|202106060931||ACK^R01^ACK|016|P|2.5\nMSA|AA|015\n');
    assert.deepEqual([read.code, read.accepted, read.controlId, read.text], ['AA', true, '015', '']);
    const old = parseAck(
      'MSH|^~\\&|A|B|C|D|2021||ACK|1|P|2.3\rMSA|AE|9\rERR|PID^1^7^102&Data type error&HL70357\r',
    );
    assert.equal(old.text, 'Data type error');
    assert.equal(old.errors[0]?.code, '102');
  });

  it('refuses an answer that is not an ACK', () => {
    assert.throws(
      () => parseAck(fixture('a28-utf8.hl7')),
      (e: Hl7Error) => e.code === 'HL7_BAD_ACK' && e.location === 'MSA',
    );
    assert.throws(
      () => parseAck('MSH|^~\\&|A|B|C|D|2021||ACK|1|P|2.5\rMSA|OK|1\r'),
      (e: Hl7Error) => e.code === 'HL7_BAD_ACK' && e.location === 'MSA-1',
    );
    assert.throws(
      () => parseAck('garbage'),
      (e: Hl7Error) => e.code === 'HL7_NO_MSH',
    );
  });
});

function getRawType(m: ReturnType<typeof parse>): string {
  return m.segments[0]?.fields[9] ?? '';
}
