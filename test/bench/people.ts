// The benches' synthetic, fictitious people: person n is always the same, names repeat as in a real
// base (65,536 × 7 birth names, 16 given names) and birth dates spread over the 28,896 days of
// 1925-2010, so that the vigilance rules' candidate blocks grow with the base as they would.
import { a28, type PamPatient } from '../support/pam.ts';

export const BENCH_FINESSES = ['310000001', '310000002', '820000016', '340780477', '660780180'] as const;

export const benchDirectory = {
  establishments: BENCH_FINESSES.map((finess) => ({
    finess,
    name: `Établissement ${finess}`,
    kind: 'hospital',
  })),
};

const SYLLABLES = [
  'MA',
  'RI',
  'TO',
  'LE',
  'BO',
  'NA',
  'DU',
  'PE',
  'CA',
  'VI',
  'GA',
  'SO',
  'LU',
  'FE',
  'RO',
  'ZE',
];

/** Person n as establishment `finess` knows it under IPP `ipp`. */
export function benchPerson(n: number, ipp: string, finess: string): PamPatient {
  const birthName = [0, 1, 2, 3].map((k) => SYLLABLES[(n >> (k * 4)) % 16]).join('') + SYLLABLES[n % 7];
  // A hash of n rather than a modulo: a modulo would give a few thousand dates, each shared by hundreds.
  const h = Math.imul(n, 2654435761) >>> 0;
  const birthDate = `${1925 + (h % 86)}${String(1 + ((h >>> 8) % 12)).padStart(2, '0')}${String(1 + ((h >>> 16) % 28)).padStart(2, '0')}`;
  return { ipp, finess, birthName, given: `${SYLLABLES[n % 16]}NE`, birthDate, sex: n % 2 ? 'F' : 'M' };
}

/**
 * Message i of the region's feed: every fifth message is the person of the message before, sent
 * again by the next establishment (a strict-traits link).
 */
export function feedMessage(i: number): string {
  const person = i % 5 === 4 ? i - 1 : i;
  const finess = BENCH_FINESSES[(person + (i === person ? 0 : 1)) % BENCH_FINESSES.length]!;
  return a28(benchPerson(person, `P${i}`, finess), `M${i}`);
}

/** An A28 of a person no one has sent yet (n above every base's people): a new patient. */
export function newPatientA28(n: number): string {
  return a28(benchPerson(n, `N${n}`, BENCH_FINESSES[n % BENCH_FINESSES.length]!), `N${n}`);
}
