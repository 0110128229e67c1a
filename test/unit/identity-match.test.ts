import assert from 'node:assert/strict';
import {
  compareIdentities,
  damerauLevenshtein,
  foldName,
  MAX_COMPARED_CHARS,
  referentialName,
  jaroWinkler,
  blockingKeys,
  soundex,
  type MatchTraits,
} from '../../store/identity-match.ts';

describe('identity matching', () => {
  it('computes the published reference values', () => {
    assert.equal(jaroWinkler('MARTHA', 'MARHTA').toFixed(3), '0.961');
    assert.equal(jaroWinkler('DIXON', 'DICKSONX').toFixed(3), '0.813');
    assert.equal(damerauLevenshtein('CA', 'AC'), 1);
    assert.equal(damerauLevenshtein('KITTEN', 'SITTING'), 3);
    assert.deepEqual(['ROBERT', 'RUPERT', 'ASHCRAFT', 'TYMCZAK'].map(soundex), [
      'R163',
      'R163',
      'A261',
      'T522',
    ]);
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
    // Every character differs: a distance of the cap proves that no more than the cap was compared.
    assert.equal(damerauLevenshtein(a, b), MAX_COMPARED_CHARS);
    assert.equal(jaroWinkler(`${a}X`, `${a}Y`), 1);
    const long = { ...base, birthName: `${a}X`, givenNames: a, firstGivenName: a };
    const r = compareIdentities(long, { ...long, birthName: `${a}Y` }, 0.9);
    assert.equal(r.kind, 'exact');
  });
});
