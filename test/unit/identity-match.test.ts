import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  compareIdentities,
  couldBeClose,
  designate,
  oneEditApart,
  foldName,
  referentialName,
  jaroWinkler,
  blockingKeys,
  soundex,
  type MatchTraits,
  type RuleInputs,
} from '../../store/identity-match.ts';

describe('the identity rules in their one order (designate), for identities and documents', () => {
  const exact = { kind: 'exact' as const, score: 1, reasons: [] };
  const near = { kind: 'near' as const, score: 0.93, reasons: ['birth-name-typo'] };
  const asked: string[] = [];
  const rules = (over: Partial<RuleInputs>): RuleInputs => ({
    byIpp: [],
    byIns: () => (asked.push('ins'), null),
    byTraits: () => (asked.push('traits'), []),
    linkOnStrictTraits: true,
    several: 'first',
    ...over,
  });
  beforeEach(() => (asked.length = 0));

  it('an IPP decides before the INS and the traits, which are then not even looked up', () => {
    assert.deepEqual(designate(rules({ byIpp: [7] })), { patientId: 7, rule: 'ipp-known', reviews: [] });
    assert.deepEqual(asked, []);
  });

  it('several designated: an identity feed takes the first and reviews the others, a document takes none', () => {
    const onTwo = (patientId: number) => ({ patientId, score: 1, reasons: ['identifiers-on-two-patients'] });
    assert.deepEqual(designate(rules({ byIpp: [3, 4] })), {
      patientId: 3,
      rule: 'ipp-known',
      reviews: [onTwo(4)],
    });
    assert.deepEqual(designate(rules({ byIpp: [3, 4], several: 'none' })), {
      patientId: null,
      rule: 'identifiers-on-two-patients',
      reviews: [onTwo(3), onTwo(4)],
    });
    assert.deepEqual(designate(rules({ byIns: () => [5, 6] })).patientId, 5);
    assert.deepEqual(designate(rules({ byIns: () => [5, 6], several: 'none' })).rule, 'no-match');
  });

  it('then the INS, then equal traits (link or review), then close traits, then none', () => {
    assert.deepEqual(designate(rules({ byIns: () => [9] })), {
      patientId: 9,
      rule: 'ins-qualified',
      reviews: [],
    });
    const traits = [
      { patientId: 1, match: exact },
      { patientId: 2, match: near },
      { patientId: 3, match: { kind: 'different' as const, score: 0.2, reasons: ['birth-date-differs'] } },
    ];
    assert.deepEqual(designate(rules({ byTraits: () => traits })), {
      patientId: 1,
      rule: 'strict-traits',
      reviews: [],
    });
    assert.deepEqual(designate(rules({ byTraits: () => traits, linkOnStrictTraits: false })), {
      patientId: null,
      rule: 'strict-traits-review',
      reviews: [{ patientId: 1, score: 1, reasons: ['strict-traits-equal'] }],
    });
    const held = [{ patientId: 1, match: exact, heldBack: 'same-establishment-other-ipp' }, traits[1]!];
    assert.deepEqual(designate(rules({ byTraits: () => held })), {
      patientId: null,
      rule: 'near-match',
      reviews: [
        { patientId: 1, score: 1, reasons: ['same-establishment-other-ipp'] },
        { patientId: 2, score: 0.93, reasons: ['birth-name-typo'] },
      ],
    });
    assert.deepEqual(designate(rules({ byTraits: () => 'no-traits' })), {
      patientId: null,
      rule: 'no-traits',
      reviews: [],
    });
    assert.equal(designate(rules({})).rule, 'no-match');
  });
});

describe('identity matching', () => {
  it('computes the published reference values', () => {
    assert.equal(jaroWinkler('MARTHA', 'MARHTA').toFixed(3), '0.961');
    assert.equal(jaroWinkler('DIXON', 'DICKSONX').toFixed(3), '0.813');
    // Its marks are reused from call to call: a longer pair compared before changes nothing.
    jaroWinkler('MARTINEZ-LEGRAND', 'MARTINEZ-LEGRANDE');
    assert.equal(jaroWinkler('DIXON', 'DICKSONX').toFixed(3), '0.813');
    assert.equal(optimalStringAlignment('CA', 'AC'), 1);
    assert.equal(optimalStringAlignment('KITTEN', 'SITTING'), 3);
    assert.deepEqual(['ROBERT', 'RUPERT', 'ASHCRAFT', 'TYMCZAK'].map(soundex), [
      'R163',
      'R163',
      'A261',
      'T522',
    ]);
  });

  it('finds names one edit apart exactly where their optimal-string-alignment distance is 1', () => {
    assert.equal(oneEditApart('DUPONT', 'DUPOND'), true);
    assert.equal(oneEditApart('DUPONT', 'DUPNOT'), true);
    assert.equal(oneEditApart('DUPONT', 'DUPONTS'), true);
    assert.equal(oneEditApart('DUPONT', 'UPONT'), true);
    assert.equal(oneEditApart('DUPONT', 'DUPONT'), false);
    assert.equal(oneEditApart('DUPONT', 'DPUNOT'), false);
    const name = fc.string({ unit: fc.constantFrom('A', 'B', 'C'), maxLength: 7 });
    fc.assert(
      fc.property(name, name, (a, b) => oneEditApart(a, b) === (optimalStringAlignment(a, b) === 1)),
      { numRuns: 5000 },
    );
  });

  it('drops a candidate early only when the full comparison finds it different', () => {
    const traits = fc.record({
      birthName: fc.constantFrom(
        'DUPONT',
        'Dupont',
        'DUPOND',
        'DUPONT-MARTIN',
        'DU PONT',
        'MARTIN',
        'DUPOTN',
      ),
      givenNames: fc.constantFrom('JEAN PIERRE', 'PIERRE JEAN', 'JEAN', ''),
      firstGivenName: fc.constantFrom('JEAN', 'PIERRE', 'JAEN', 'MARC'),
      birthDate: fc.constantFrom(
        '1960-01-02',
        '1960-02-01',
        '1960-01-03',
        '1906-01-02',
        '1960',
        '1961-05-07',
      ),
      sex: fc.constantFrom<'M' | 'F' | 'U'>('M', 'F', 'U'),
      birthPlace: fc.constantFrom('75056', '13055', null),
    });
    fc.assert(
      fc.property(traits, traits, fc.constantFrom(0, 0.5, 0.85, 0.9, 0.95, 1, 1.5), (a, b, threshold) =>
        compareIdentities(a, b, threshold).kind === 'different' ? true : couldBeClose(a, b, threshold),
      ),
      { numRuns: 20_000 },
    );
  });

  it('folds accents, ligatures, hyphens and apostrophes', () => {
    assert.equal(foldName("Lœtitia-Hélène d'Arc"), 'LOETITIA HELENE D ARC');
  });

  it('keeps particles and compound names in the same blocks, and a date typo in one of them', () => {
    const key = (birthName: string, firstGivenName: string, birthDate = '1958-03-14') =>
      blockingKeys({ birthName, firstGivenName, birthDate });
    assert.deepEqual(key("d'Estaing", 'Valéry'), key('DESTAING', 'VALERY'));
    assert.deepEqual(key('DUPONT-MARTIN', 'JEAN'), key('DUPONT', 'JEAN'));
    assert.equal(key('DUPONT', 'JEAN', '1985-03-14').nameDay, key('DUPONT', 'JEAN').nameDay);
    assert.equal(key('DUPONT', 'JEAN', '1958-04-13').nameYear, key('DUPONT', 'JEAN').nameYear);
  });

  const base: MatchTraits = {
    birthName: 'DUPONT',
    givenNames: 'JEAN PIERRE',
    firstGivenName: 'JEAN',
    birthDate: '1960-01-02',
    sex: 'M',
    birthPlace: '75056',
  };
  const cases: Array<[string, Partial<MatchTraits>, string, string[]]> = [
    ['case only', { birthName: 'Dupont' }, 'exact', []],
    [
      'accents and case only',
      { birthName: 'Dupônt', givenNames: 'Jéan Pierre', firstGivenName: 'Jéan' },
      'exact',
      [],
    ],
    ['birth place unknown on one side', { birthPlace: null }, 'exact', []],
    ['one letter', { birthName: 'DUPOND' }, 'near', ['birth-name-typo']],
    [
      'given names swapped',
      { firstGivenName: 'PIERRE', givenNames: 'PIERRE JEAN' },
      'near',
      ['given-names-swapped', 'given-names-differ'],
    ],
    ['hyphen instead of space', { givenNames: 'JEAN-PIERRE' }, 'near', ['given-names-differ']],
    [
      'twins',
      { firstGivenName: 'PAUL', givenNames: 'PAUL' },
      'different',
      ['first-given-name-differs', 'given-names-differ'],
    ],
    ['another name', { birthName: 'GARCIA' }, 'different', ['birth-name-differs']],
    ['another sex', { sex: 'F' }, 'near', ['sex-differs']],
    ['another birth place', { birthPlace: '13055' }, 'near', ['birth-place-differs']],
    ['month and day swapped', { birthDate: '1960-02-01' }, 'near', ['birth-date-day-month-swapped']],
    ['decade digits swapped', { birthDate: '1906-01-02' }, 'near', ['birth-date-digits-swapped']],
    ['two far digits', { birthDate: '1970-01-03' }, 'different', ['birth-date-differs']],
  ];
  for (const [name, change, kind, reasons] of cases) {
    it(`${name}: ${kind}`, () => {
      const r = compareIdentities(base, { ...base, ...change }, 0.9);
      assert.deepEqual([r.kind, r.reasons], [kind, reasons]);
    });
  }

  it('writes names as the INS referential does: uppercase, no diacritics, one hyphen and apostrophe', () => {
    assert.equal(referentialName('  Lœtitia – Hélène  d’ Arc '), "LOETITIA-HELENE D'ARC");
  });

  it('bounds every comparison: two 200,000-character names cost what two capped names cost', () => {
    const a = 'A'.repeat(200_000);
    const b = 'B'.repeat(200_000);
    // Only the first characters count: one edit past the cap is not seen, one within it is.
    assert.equal(oneEditApart(`${a}X`, `${a}Y`), false);
    assert.equal(oneEditApart(`X${a}`, `Y${a}`), true);
    assert.equal(oneEditApart(a, b), false);
    assert.equal(jaroWinkler(`${a}X`, `${a}Y`), 1);
    const long = { ...base, birthName: `${a}X`, givenNames: a, firstGivenName: a };
    const r = compareIdentities(long, { ...long, birthName: `${a}Y` }, 0.9);
    assert.equal(r.kind, 'exact');
  });
});

/** The textbook distance (full matrix): the reference the one-pass check is held to. */
function optimalStringAlignment(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}
