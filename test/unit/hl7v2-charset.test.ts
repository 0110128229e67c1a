import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  detectCharset,
  decodeMessage,
  encodeText,
  resolveCharset,
} from '../../transformers/hl7v2-charset.ts';
import { parse, get, encode, Hl7Error } from '../../transformers/hl7v2.ts';

const fixture = (name: string): Buffer => readFileSync(new URL(`../fixtures/hl7/${name}`, import.meta.url));

describe('hl7v2 charsets (MSH-18)', () => {
  it('reads MSH-18 from the raw bytes, first repetition only', () => {
    assert.equal(detectCharset(fixture('a28-utf8.hl7')), 'UNICODE UTF-8');
    assert.equal(detectCharset(fixture('a28-8859-1.hl7')), '8859/1');
    assert.equal(detectCharset(fixture('a31-8859-15.hl7')), '8859/15');
    assert.equal(detectCharset(fixture('a28-no-charset-latin1.hl7')), undefined);
    assert.equal(detectCharset(Buffer.from('MSH|^~\\&||||||||||||||||8859/1~UNICODE UTF-8|FR\r')), '8859/1');
    assert.equal(
      detectCharset(Buffer.from('MSH|^~\\&|A\rZZZ|||||||||||||||||UNICODE UTF-8\r')),
      undefined,
      'MSH-18 is read in MSH only',
    );
    assert.equal(
      detectCharset(Buffer.from('\xef\xbb\xbfMSH|^~\\&||||||||||||||||UNICODE UTF-8', 'latin1')),
      'UNICODE UTF-8',
    );
  });

  it('decodes UTF-8, 8859/1 and 8859/15 messages from their real bytes', () => {
    const utf8 = parse(fixture('a28-utf8.hl7'));
    assert.equal(utf8.charset, 'UNICODE UTF-8');
    assert.equal(get(utf8, 'PID-5'), 'LÉGER');
    assert.equal(get(utf8, 'PID-5.3'), 'Zoé Amélie');
    const latin1 = parse(fixture('a28-8859-1.hl7'));
    assert.equal(latin1.charset, '8859/1');
    assert.equal(get(latin1, 'PID-5'), 'FRANÇOIS');
    assert.equal(get(latin1, 'PID-5.2'), 'Jérôme');
    const latin9 = parse(fixture('a31-8859-15.hl7'));
    assert.equal(latin9.charset, '8859/15');
    assert.equal(get(latin9, 'PID-5'), 'CŒUR', 'Œ exists in 8859/15 (0xBC), not in 8859/1');
  });

  it('round-trips bytes: decode then encode in the same charset gives the same bytes', () => {
    for (const name of ['a28-utf8.hl7', 'a28-8859-1.hl7', 'a31-8859-15.hl7']) {
      const bytes = fixture(name);
      const message = parse(bytes);
      assert.deepEqual(encodeText(encode(message), message.charset), bytes, name);
    }
  });

  it('uses the configured default when MSH-18 is empty', () => {
    const bytes = fixture('a28-no-charset-latin1.hl7');
    assert.equal(get(parse(bytes, { defaultCharset: '8859/1' }), 'PID-5'), 'HÉLÈNE');
  });

  it('refuses Latin-1 bytes under the UTF-8 default, naming the byte and the fix', () => {
    assert.throws(
      () => parse(fixture('a28-no-charset-latin1.hl7')),
      (e: unknown) =>
        e instanceof Hl7Error &&
        e.code === 'HL7_CHARSET_INVALID_BYTES' &&
        /MSH-18 is empty/.test(e.message) &&
        /^byte \d+$/.test(e.location ?? '') &&
        /8859\/1/.test(e.hint ?? ''),
    );
  });

  it('refuses invalid UTF-8 declared as UTF-8 instead of decoding it to U+FFFD', () => {
    const bytes = fixture('a28-8859-1.hl7').toString('latin1').replace('8859/1', 'UNICODE UTF-8');
    const raw = Buffer.from(bytes, 'latin1');
    const offset = raw.indexOf(0xc7); // Ç of FRANÇOIS
    assert.throws(
      () => decodeMessage(raw),
      (e: Hl7Error) =>
        e.code === 'HL7_CHARSET_INVALID_BYTES' &&
        e.location === `byte ${offset}` &&
        /"UNICODE UTF-8"/.test(e.message),
    );
  });

  it('refuses non-ASCII bytes in a message declared ASCII', () => {
    const raw = Buffer.from(
      fixture('a28-8859-1.hl7').toString('latin1').replace('8859/1', 'ASCII'),
      'latin1',
    );
    assert.throws(
      () => parse(raw),
      (e: Hl7Error) => e.code === 'HL7_CHARSET_INVALID_BYTES',
    );
  });

  it('refuses an unsupported MSH-18 with the list of supported ones', () => {
    const raw = Buffer.from(
      fixture('a28-8859-1.hl7').toString('latin1').replace('8859/1', 'ISO IR87'),
      'latin1',
    );
    assert.throws(
      () => parse(raw),
      (e: Hl7Error) =>
        e.code === 'HL7_CHARSET_UNSUPPORTED' && e.location === 'MSH-18' && /8859\/15/.test(e.hint ?? ''),
    );
  });

  it('accepts the usual spellings of the same charsets', () => {
    assert.equal(resolveCharset('utf-8'), 'UNICODE UTF-8');
    assert.equal(resolveCharset('ISO-8859-1'), '8859/1');
    assert.equal(resolveCharset(' 8859/15 '), '8859/15');
    assert.equal(resolveCharset('', 'ASCII'), 'ASCII');
  });

  it('strips a UTF-8 byte order mark before MSH', () => {
    const bytes = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), fixture('a28-utf8.hl7')]);
    assert.equal(get(parse(bytes), 'PID-5'), 'LÉGER');
  });

  it('refuses to encode a character the charset cannot carry', () => {
    assert.deepEqual(encodeText('Œ€', '8859/15'), Buffer.from([0xbc, 0xa4]));
    assert.throws(
      () => encodeText('CŒUR', '8859/1'),
      (e: Hl7Error) => e.code === 'HL7_CHARSET_UNENCODABLE' && /U\+0152/.test(e.message),
    );
    assert.throws(
      () => encodeText('é', 'ASCII'),
      (e: Hl7Error) => e.code === 'HL7_CHARSET_UNENCODABLE' && e.location === 'character 0',
    );
    assert.throws(
      () => encodeText('a✓', '8859/15'),
      (e: Hl7Error) => e.location === 'character 1',
    );
  });
});
