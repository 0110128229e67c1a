import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import {
  parse,
  encode,
  get,
  getRaw,
  escape,
  unescape,
  repetitions,
  component,
  splitBatch,
  segmentsNamed,
  hl7v2ValidateStep,
  STANDARD_DELIMITERS,
  Hl7Error,
} from '../../transformers/hl7v2.ts';
import { StepError } from '../../transformers/contract.ts';

const fixture = (name: string): Buffer => readFileSync(new URL(`../fixtures/hl7/${name}`, import.meta.url));

const SIMPLE =
  'MSH|^~\\&|APP|FAC|RCV|RFAC|20250102||ADT^A28^ADT_A05|C1|P|2.5\rPID|1||A1^^^NS&123&M^PI~B2^^^INS&1.2.3&ISO^INS||NOM^Prenom^^^^^L~USAGE^Prenom^^^^^D||19800101|F\r';

describe('hl7v2 parse and encode', () => {
  it('gives back the exact text it parsed, terminators included (CR, LF, CRLF, trailing blank lines)', () => {
    for (const text of [
      SIMPLE,
      SIMPLE.replace(/\r/g, '\n'),
      SIMPLE.replace(/\r/g, '\r\n'),
      `${SIMPLE}\n\n`,
      SIMPLE.slice(0, -1),
    ]) {
      assert.equal(encode(parse(text)), text);
    }
  });

  it('indexes fields by their HL7 number, MSH-1 being the field separator', () => {
    const m = parse(SIMPLE);
    assert.equal(get(m, 'MSH-1'), '|');
    assert.equal(get(m, 'MSH-2'), '^~\\&');
    assert.equal(get(m, 'MSH-3'), 'APP');
    assert.equal(get(m, 'MSH-9.2'), 'A28');
    assert.equal(get(m, 'MSH-10'), 'C1');
    assert.equal(get(m, 'PID-7'), '19800101');
  });

  it('reads repetitions, components and sub-components by path', () => {
    const m = parse(SIMPLE);
    assert.equal(get(m, 'PID-3'), 'A1', 'a field path reads the first repetition, component, sub-component');
    assert.equal(get(m, 'PID-3[2].1'), 'B2');
    assert.equal(get(m, 'PID-3[2].4.2'), '1.2.3');
    assert.equal(get(m, 'PID-3[1].4.3'), 'M');
    assert.equal(get(m, 'PID-5[2].7'), 'D');
    assert.equal(get(m, 'PID-3[3].1'), '', 'absent repetition');
    assert.equal(get(m, 'ZZZ-1'), '', 'absent segment');
    assert.equal(getRaw(m, 'PID-3'), 'A1^^^NS&123&M^PI~B2^^^INS&1.2.3&ISO^INS');
    assert.equal(getRaw(m, 'PID-3[2].4'), 'INS&1.2.3&ISO');
    const rep = repetitions(m, segmentsNamed(m, 'PID')[0]!, 3)[1];
    assert.equal(component(rep, 4, 2), '1.2.3');
    assert.equal(component(rep, 5), 'INS');
  });

  it('addresses the n-th occurrence of a segment', () => {
    const m = parse(`${SIMPLE}OBX|1|TX|||one\rOBX|2|TX|||two\r`);
    assert.equal(get(m, 'OBX-5'), 'one');
    assert.equal(get(m, 'OBX[2]-5'), 'two');
  });

  it('refuses a bad path with a hint', () => {
    assert.throws(
      () => get(parse(SIMPLE), 'PID 3'),
      (e: Hl7Error) => e.code === 'HL7_BAD_PATH' && /PID-3\[2\]/.test(e.hint ?? ''),
    );
  });

  it('honours non-standard delimiters declared in MSH-1/MSH-2', () => {
    const text = 'MSH#*!\\$#APP#FAC#####ADT*A28#C9#P#2.5\rPID#1##X1*A$B!X2\r';
    const m = parse(text);
    assert.equal(get(m, 'MSH-9.2'), 'A28');
    assert.equal(get(m, 'PID-3.2.2'), 'B');
    assert.equal(get(m, 'PID-3[2]'), 'X2');
    assert.equal(encode(m), text);
  });

  it('re-terminates segments on request (CR for MLLP) without touching content', () => {
    const m = parse(SIMPLE.replace(/\r/g, '\n'));
    assert.equal(encode(m, { segmentSeparator: '\r' }), SIMPLE);
  });

  it('refuses malformed messages with a typed error saying where', () => {
    const cases: [string, string][] = [
      ['', 'HL7_EMPTY'],
      ['PID|1||X\r', 'HL7_NO_MSH'],
      ['MSH|^~|A\r', 'HL7_BAD_DELIMITERS'],
      ['MSH|^^\\&|A\r', 'HL7_BAD_DELIMITERS'],
      [`${SIMPLE}this is a wrapped line\r`, 'HL7_BAD_SEGMENT'],
      [`${SIMPLE}${SIMPLE}`, 'HL7_MULTIPLE_MESSAGES'],
    ];
    for (const [text, code] of cases) {
      assert.throws(
        () => parse(text),
        (e: unknown) => e instanceof Hl7Error && e.code === code && e.hint !== undefined,
        code,
      );
    }
    assert.throws(
      () => parse(`${SIMPLE}bad\r`),
      (e: Hl7Error) => e.location === 'segment 3',
    );
  });
});

describe('hl7v2 escape sequences', () => {
  it('unescapes \\F\\ \\S\\ \\T\\ \\R\\ \\E\\ and \\X..\\ hex in the message charset', () => {
    const m = parse(fixture('escapes.hl7'));
    assert.equal(get(m, 'PID-5'), 'D^ART&CIE|X~Y\\Z');
    assert.equal(get(m, 'PID-5.2'), 'AnaAé');
  });

  it('keeps formatting escapes (\\.br\\, \\H\\, \\N\\) verbatim rather than losing them', () => {
    assert.equal(get(parse(fixture('escapes.hl7')), 'NTE-3'), 'ligne 1\\.br\\ligne 2\\H\\gras\\N\\ fin');
  });

  it('escape() then unescape() gives back any text, line breaks included', () => {
    fc.assert(
      fc.property(
        fc.string({
          unit: fc.constantFrom(
            '|',
            '^',
            '~',
            '\\',
            '&',
            '\r',
            '\n',
            'a',
            'Z',
            ' ',
            'é',
            'Œ',
            '€',
            '😀',
            'X',
            '0',
            'D',
          ),
        }),
        (text) => {
          const escaped = escape(text);
          assert.ok(!/[|^~&\r\n]/.test(escaped));
          assert.equal(unescape(escaped), text);
        },
      ),
    );
  });

  it('escapes with the message delimiters and the v2.7 truncation character', () => {
    const d = { ...STANDARD_DELIMITERS, truncation: '#' };
    assert.equal(escape('a#b|c', d), 'a\\P\\b\\F\\c');
    assert.equal(unescape('a\\P\\b', d), 'a#b');
  });
});

describe('hl7v2 files and batches', () => {
  it('splits an FHS/BHS batch into its messages, each keeping its own charset', () => {
    const file = splitBatch(fixture('batch-fhs.hl7'));
    assert.equal(file.messages.length, 3);
    assert.equal(file.batches.length, 1);
    assert.equal(file.header?.name, 'FHS');
    assert.equal(file.header?.fields[9], 'lot-42.hl7');
    assert.equal(file.batches[0]?.header?.name, 'BHS');
    assert.equal(file.batches[0]?.trailer?.fields[1], '3');
    assert.equal(file.trailer?.name, 'FTS');
    const names = file.messages.map((bytes) => get(parse(bytes), 'PID-5'));
    assert.deepEqual(names, ['ÉTIENNE', 'MÜLLER', 'SIMON']);
    assert.equal(parse(file.messages[1]!).charset, '8859/1');
  });

  it('splits concatenated messages separated by CRLF and blank lines, with no loss', () => {
    const bytes = fixture('two-messages-crlf.hl7');
    const file = splitBatch(bytes);
    assert.equal(file.messages.length, 2);
    assert.equal(file.header, undefined);
    assert.deepEqual(Buffer.concat(file.messages), bytes, 'the pieces add up to the file');
    assert.deepEqual(
      file.messages.map((m) => get(parse(m), 'MSH-10')),
      ['B0001', 'B0003'],
    );
  });

  it('splits text as well as bytes', () => {
    const file = splitBatch(`${SIMPLE}${SIMPLE.replace('C1', 'C2')}`);
    assert.deepEqual(
      file.messages.map((m) => get(parse(m), 'MSH-10')),
      ['C1', 'C2'],
    );
  });

  it('refuses a batch whose BTS-1 count does not match (truncated file)', () => {
    const truncated = fixture('batch-fhs.hl7').toString('latin1').replace('BTS|3', 'BTS|4');
    assert.throws(
      () => splitBatch(truncated),
      (e: Hl7Error) => e.code === 'HL7_BATCH_COUNT' && e.location === 'BTS-1',
    );
  });

  it('refuses segments outside any message and misplaced envelope segments', () => {
    assert.throws(
      () => splitBatch('PID|1\rMSH|^~\\&|A\r'),
      (e: Hl7Error) => e.code === 'HL7_NO_MSH' && e.location === 'line 1',
    );
    assert.throws(
      () => splitBatch('FHS|^~\\&|A\rPID|1\rMSH|^~\\&|A\r'),
      (e: Hl7Error) => e.code === 'HL7_SEGMENT_OUTSIDE_MESSAGE' && e.location === 'line 2',
    );
    assert.throws(
      () => splitBatch(`${SIMPLE}FHS|^~\\&|A\r`),
      (e: Hl7Error) => e.code === 'HL7_BAD_ENVELOPE',
    );
  });

  it('gives no message for an empty file', () => {
    assert.equal(splitBatch(Buffer.alloc(0)).messages.length, 0);
  });
});

describe('hl7v2 properties', () => {
  const delimiterFree = fc.stringMatching(/^[A-Za-z0-9 .\-éèàçÉœ€]{0,12}$/);
  const subcomponents = fc.array(delimiterFree, { minLength: 1, maxLength: 3 }).map((s) => s.join('&'));
  const components = fc.array(subcomponents, { minLength: 1, maxLength: 4 }).map((c) => c.join('^'));
  const field = fc.array(components, { minLength: 1, maxLength: 3 }).map((r) => r.join('~'));
  const segment = fc
    .tuple(fc.stringMatching(/^Z[A-Z0-9]{2}$/), fc.array(field, { maxLength: 8 }))
    .map(([name, fields]) => [name, ...fields].join('|'));
  const terminator = fc.constantFrom('\r', '\n', '\r\n');
  const message = fc
    .tuple(fc.array(fc.tuple(segment, terminator), { maxLength: 6 }), terminator)
    .map(
      ([segments, end]) =>
        `MSH|^~\\&|APP|FAC|||20250101||ADT^A28|1|P|2.5${end}${segments.map(([s, t]) => s + t).join('')}`,
    );

  it('encode(parse(x)) === x on generated valid messages, as text and as UTF-8 bytes', () => {
    fc.assert(
      fc.property(message, (text) => {
        assert.equal(encode(parse(text)), text);
        assert.equal(encode(parse(Buffer.from(text, 'utf8'))), text);
      }),
    );
  });

  it('random bytes never crash the parser: they parse or raise an Hl7Error', () => {
    const noise = fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.concat([Buffer.from('MSH|^~\\&|'), b])),
    );
    fc.assert(
      fc.property(noise, (bytes) => {
        for (const attempt of [() => parse(bytes), () => splitBatch(bytes)]) {
          try {
            attempt();
          } catch (error) {
            assert.ok(error instanceof Hl7Error, `unexpected ${String(error)}`);
          }
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe('hl7v2-validate step', () => {
  it('adds the header summary to the meta and passes the content through', async () => {
    const step = hl7v2ValidateStep.create({});
    const content = fixture('a28-utf8.hl7');
    const out = await step({ content, contentType: 'application/hl7-v2', meta: { file: 'x.hl7' } });
    assert.ok(out);
    assert.equal(out.content, content);
    assert.deepEqual(out.meta, {
      file: 'x.hl7',
      messageType: 'ADT^A28',
      controlId: 'T0001',
      sendingApp: 'GAM-TEST',
      sendingFacility: 'HOP-TEST',
    });
  });

  it('fails with a StepError carrying the parser code, the place and a hint', async () => {
    const step = hl7v2ValidateStep.create({});
    await assert.rejects(
      async () => step({ content: Buffer.from('PID|1\r'), contentType: 'application/hl7-v2', meta: {} }),
      (e: unknown) =>
        e instanceof StepError &&
        e.code === 'HL7_NO_MSH' &&
        e.location === 'segment 1' &&
        e.hint !== undefined,
    );
  });
});
