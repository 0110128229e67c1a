// Near-match scoring of two identities: pure functions, no database. It lives under store/
// because it decides on stored data and store/ may import only store/.
//
// Two ideas keep it explainable: every difference found is a named reason (shown in the review
// queue), and the score is a weighted sum of per-trait similarities so that a reviewer can see
// why a pair was flagged. Weights favour the traits that a typo rarely changes by chance.

import type { Identity } from './patient-model.ts';

export type Sex = 'M' | 'F' | 'U';

/** The strict traits compared: the store's own model, names as received, birth date normalised. */
export type MatchTraits = Pick<
  Identity,
  'birthName' | 'givenNames' | 'firstGivenName' | 'birthDate' | 'sex' | 'birthPlace'
>;

export type MatchKind = 'exact' | 'near' | 'different';

export interface MatchResult {
  kind: MatchKind;
  /** 0..1, the weighted similarity of the traits. */
  score: number;
  /** Stable codes naming each difference found, e.g. `birth-name-typo`, `given-names-swapped`. */
  reasons: string[];
}

const WEIGHTS = { birthName: 0.3, firstGivenName: 0.25, birthDate: 0.3, sex: 0.1, birthPlace: 0.05 };

/**
 * The most characters of a name any comparison looks at. PAM FR caps a name at 100 characters
 * (transformers refuse longer ones); the store holds the same line, so that no input, however it
 * arrived, makes a comparison cost more than this squared.
 */
export const MAX_COMPARED_CHARS = 100;

function capped(s: string): string {
  return s.length > MAX_COMPARED_CHARS ? s.slice(0, MAX_COMPARED_CHARS) : s;
}

/** Uppercase, diacritics dropped, ligatures spelt out (Œ → OE): what every name comparison starts from. */
function upperWithoutDiacritics(s: string): string {
  return capped(s)
    .normalize('NFD')
    .replace(/\p{M}/gu, '')
    .toUpperCase()
    .replace(/Œ/g, 'OE')
    .replace(/Æ/g, 'AE')
    .replace(/ß/g, 'SS');
}

/**
 * A name as the national INS referential records it: uppercase, without diacritics, ligatures
 * spelt out, every hyphen and apostrophe written one way, without spaces around them, single
 * spaces. Two spellings with the same referential form are the same strict trait; the original
 * spelling is what the store keeps and shows.
 */
export const referentialName = memoised((s) =>
  upperWithoutDiacritics(s)
    .replace(/[\u2010-\u2015\u2212\uFE63\uFF0D]/g, '-')
    .replace(/[\u2018\u2019\u02BC\u00B4`]/g, "'")
    .replace(/\s+/g, ' ')
    .replace(/ ?([-']) ?/g, '$1')
    .trim(),
);

/** Folds what keyboards and record systems disagree on: accents, ligatures, hyphens, apostrophes, case. */
export const foldName = memoised((s) =>
  upperWithoutDiacritics(s)
    .replace(/[^A-Z]+/g, ' ')
    .trim(),
);

/**
 * Names repeat (MARTIN, MARIE): the region's load folds the common ones once, not at every
 * comparison. 20,000 of each: 100,000 held ~15 MB of the writer thread for rare names seen once.
 */
const NAME_CACHE_SIZE = 20_000;

/**
 * Capital letters in words one space apart: already their own referential and folded forms. Most
 * names of a region's base are written so (the INS referential's own spelling); each candidate of
 * the vigilance rules has its name compared, and at 400,000 patients the cache's misses (rare names,
 * seen once) spent a tenth of the writer thread folding them.
 */
const PLAIN_NAME = /^[A-Z]+(?: [A-Z]+)*$/;

function memoised(f: (s: string) => string): (s: string) => string {
  const cache = new Map<string, string>();
  return (s) => {
    if (s.length <= MAX_COMPARED_CHARS && PLAIN_NAME.test(s)) return s;
    const hit = cache.get(s);
    if (hit !== undefined) return hit;
    const out = f(s);
    if (cache.size >= NAME_CACHE_SIZE) cache.clear();
    // Only name-sized keys: the cache must not keep oversized input alive.
    if (s.length <= MAX_COMPARED_CHARS) cache.set(s, out);
    return out;
  };
}

/** `YYYY-MM-DD`, `YYYYMMDD` (an HL7 TS with a time is cut to its date), or a partial `YYYY`/`YYYYMM`; null if not a date. */
export function normaliseBirthDate(s: string): string | null {
  const m = /^(\d{4})(?:-?(\d{2})(?:-?(\d{2}))?)?(?:\d{2,6}(?:\.\d+)?)?(?:[+-]\d{4})?$/.exec(s.trim());
  if (!m) return null;
  const [, y, mo, d] = m;
  if (mo === undefined) return y!;
  if (Number(mo) < 1 || Number(mo) > 12) return null;
  if (d === undefined) return `${y}-${mo}`;
  const date = new Date(Date.UTC(Number(y), Number(mo) - 1, Number(d)));
  if (date.getUTCDate() !== Number(d)) return null;
  return `${y}-${mo}-${d}`;
}

/**
 * American Soundex of the folded name, spaces dropped so that particles (`D'ESTAING`) and compound
 * names (`DUPONT-MARTIN` against `DUPONT`, four characters kept) still meet: a blocking key tolerant
 * of most typos after the first letter.
 */
export function soundex(name: string): string {
  const word = foldName(name).replace(/ /g, '');
  if (word === '') return '0000';
  const code = (c: string): string => {
    if ('BFPV'.includes(c)) return '1';
    if ('CGJKQSXZ'.includes(c)) return '2';
    if ('DT'.includes(c)) return '3';
    if (c === 'L') return '4';
    if ('MN'.includes(c)) return '5';
    if (c === 'R') return '6';
    return c === 'H' || c === 'W' ? '' : '0';
  };
  let out = word[0]!;
  let last = code(word[0]!);
  for (const c of word.slice(1)) {
    const k = code(c);
    if (k === '') continue;
    if (k !== '0' && k !== last) out += k;
    last = k;
    if (out.length === 4) break;
  }
  return out.padEnd(4, '0');
}

export interface BlockingKeys {
  /** Names with the birth year: finds identities whose day or month was mistyped or swapped. */
  nameYear: string;
  /** Names with the day and month: finds identities whose birth year was mistyped. */
  nameDay: string;
}

/**
 * Keys of the candidate blocks besides the birth date itself. A birth-date typo changes the year or
 * the day and month, rarely both, so one of these keys survives it as long as both names keep their
 * first letter; adding a date part keeps blocks of common names (MARTIN JEAN) small.
 */
export function blockingKeys(t: {
  birthName: string;
  firstGivenName: string;
  birthDate: string;
}): BlockingKeys {
  const names = `${soundex(t.birthName)}${soundex(t.firstGivenName)}`;
  return { nameYear: `${names}${t.birthDate.slice(0, 4)}`, nameDay: `${names}${t.birthDate.slice(5)}` };
}

const A_HIT = new Uint8Array(MAX_COMPARED_CHARS);
const B_HIT = new Uint8Array(MAX_COMPARED_CHARS);

/** Jaro-Winkler similarity of the first `MAX_COMPARED_CHARS` characters of each string. */
export function jaroWinkler(longA: string, longB: string): number {
  const a = capped(longA);
  const b = capped(longB);
  if (a === b) return 1;
  if (a.length === 0 || b.length === 0) return 0;
  const window = Math.max(0, Math.floor(Math.max(a.length, b.length) / 2) - 1);
  // Marks reused from call to call (names are capped): no garbage per candidate compared.
  const aHit = A_HIT.fill(0, 0, a.length);
  const bHit = B_HIT.fill(0, 0, b.length);
  let matches = 0;
  for (let i = 0; i < a.length; i++) {
    for (let j = Math.max(0, i - window); j < Math.min(b.length, i + window + 1); j++) {
      if (bHit[j] || a[i] !== b[j]) continue;
      aHit[i] = bHit[j] = 1;
      matches++;
      break;
    }
  }
  if (matches === 0) return 0;
  let k = 0;
  let halfTranspositions = 0;
  for (let i = 0; i < a.length; i++) {
    if (!aHit[i]) continue;
    while (!bHit[k]) k++;
    if (a[i] !== b[k]) halfTranspositions++;
    k++;
  }
  const m = matches;
  const jaro = (m / a.length + m / b.length + (m - halfTranspositions / 2) / m) / 3;
  let prefix = 0;
  while (prefix < 4 && a[prefix] !== undefined && a[prefix] === b[prefix]) prefix++;
  return jaro + prefix * 0.1 * (1 - jaro);
}

/**
 * Whether one edit (an insertion, a deletion, a substitution, or a transposition of two adjacent
 * characters) turns the first `MAX_COMPARED_CHARS` characters of one string into the other's: their
 * optimal-string-alignment distance is exactly 1. One pass, where the distance itself fills a matrix.
 */
export function oneEditApart(longA: string, longB: string): boolean {
  const a = capped(longA);
  const b = capped(longB);
  if (a === b || Math.abs(a.length - b.length) > 1) return false;
  let i = 0;
  while (a[i] === b[i]) i++;
  if (a.length === b.length) {
    if (a.slice(i + 1) === b.slice(i + 1)) return true;
    return a[i] === b[i + 1] && a[i + 1] === b[i] && a.slice(i + 2) === b.slice(i + 2);
  }
  const [shorter, longer] = a.length < b.length ? [a, b] : [b, a];
  return shorter.slice(i) === longer.slice(i + 1);
}

interface TraitSimilarity {
  sim: number;
  reason: string | null;
}

/** `prefix` names the trait in the reason codes (`birth-name`, `first-given-name`). */
function compareNames(a: string, b: string, prefix: string): TraitSimilarity {
  if (referentialName(a) === referentialName(b)) return { sim: 1, reason: null };
  const fa = foldName(a);
  const fb = foldName(b);
  if (fa === fb) return { sim: 0.98, reason: `${prefix}-accents-or-punctuation` };
  // Most names are one word: no spacing to undo, no compound to look for (a candidate's name is
  // compared at each identity of its birth-date block).
  const spaced = fa.includes(' ') || fb.includes(' ');
  const ja = spaced ? fa.replace(/ /g, '') : fa;
  const jb = spaced ? fb.replace(/ /g, '') : fb;
  if (ja === jb) return { sim: 0.96, reason: `${prefix}-spacing` };
  if (spaced) {
    const ta = fa.split(' ');
    const tb = fb.split(' ');
    const [short, long] = ta.length <= tb.length ? [ta, tb] : [tb, ta];
    if (short.length < long.length && short.every((t) => long.includes(t))) {
      return { sim: 0.92, reason: `${prefix}-compound` };
    }
  }
  const jw = jaroWinkler(ja, jb);
  const oneEdit = Math.min(ja.length, jb.length) >= 4 && oneEditApart(ja, jb);
  const sim = oneEdit ? Math.max(jw, 0.9) : jw;
  // Below 0.8 Jaro-Winkler still rewards shared letters (GARCIA/MARTIN ≈ 0.67): that is not a typo, it is another name.
  return sim >= 0.8 ? { sim, reason: `${prefix}-typo` } : { sim: 0, reason: `${prefix}-differs` };
}

function compareFirstGivenNames(a: MatchTraits, b: MatchTraits): TraitSimilarity {
  const direct = compareNames(a.firstGivenName, b.firstGivenName, 'first-given-name');
  if (direct.sim >= 0.98) return direct;
  const first = (t: MatchTraits): string => foldName(t.firstGivenName);
  const all = (t: MatchTraits): string[] => foldName(`${t.givenNames} ${t.firstGivenName}`).split(' ');
  const swapped = all(b).includes(first(a)) || all(a).includes(first(b));
  return swapped && direct.sim < 0.95 ? { sim: 0.9, reason: 'given-names-swapped' } : direct;
}

function digitsOf(date: string): string {
  return date.replace(/-/g, '');
}

function compareBirthDates(a: string, b: string): TraitSimilarity {
  if (a === b) return { sim: 1, reason: null };
  const da = digitsOf(a);
  const db = digitsOf(b);
  if (da.length !== db.length) return { sim: 0, reason: 'birth-date-differs' };
  if (
    da.length === 8 &&
    da.slice(0, 4) === db.slice(0, 4) &&
    da.slice(4, 6) === db.slice(6, 8) &&
    da.slice(6, 8) === db.slice(4, 6)
  ) {
    return { sim: 0.9, reason: 'birth-date-day-month-swapped' };
  }
  // Digits alone (normalised dates): positions compare one by one.
  const diff: number[] = [];
  for (let i = 0; i < da.length; i++) if (da[i] !== db[i]) diff.push(i);
  if (
    diff.length === 2 &&
    diff[1] === diff[0]! + 1 &&
    da[diff[0]!] === db[diff[1]!] &&
    da[diff[1]!] === db[diff[0]!]
  ) {
    return { sim: 0.9, reason: 'birth-date-digits-swapped' };
  }
  if (diff.length === 1) return { sim: 0.85, reason: 'birth-date-one-digit' };
  return { sim: 0, reason: 'birth-date-differs' };
}

function compareSex(a: Sex, b: Sex): TraitSimilarity {
  if (a === b) return { sim: 1, reason: null };
  if (a === 'U' || b === 'U') return { sim: 0.8, reason: 'sex-unknown' };
  return { sim: 0, reason: 'sex-differs' };
}

function compareBirthPlaces(a: string | null, b: string | null): TraitSimilarity {
  if (a === null || b === null) return { sim: 0.9, reason: null };
  return a === b ? { sim: 1, reason: null } : { sim: 0.5, reason: 'birth-place-differs' };
}

function sameGivenNameLists(a: MatchTraits, b: MatchTraits): boolean {
  if (a.givenNames.trim() === '' || b.givenNames.trim() === '') return true;
  return referentialName(a.givenNames) === referentialName(b.givenNames);
}

/** The weighted score, summed in the one order every caller uses (floating point is not associative). */
const WEIGHT_ORDER = Object.keys(WEIGHTS) as Array<keyof typeof WEIGHTS>;

function weighted(sims: Record<keyof typeof WEIGHTS, number>): number {
  let sum = 0;
  for (const k of WEIGHT_ORDER) sum += WEIGHTS[k] * sims[k];
  return Math.round(sum * 1000) / 1000;
}

/**
 * False when `b` is surely `different` from `a` by its birth date and birth name alone (everything
 * else counted as equal): the candidate search drops it before reading the rest of its traits.
 */
export function couldBeClose(
  a: Pick<MatchTraits, 'birthDate' | 'birthName'>,
  b: Pick<MatchTraits, 'birthDate' | 'birthName'>,
  nearThreshold: number,
): boolean {
  const sims = {
    birthName: 1,
    firstGivenName: 1,
    birthDate: compareBirthDates(a.birthDate, b.birthDate).sim,
    sex: 1,
    birthPlace: 1,
  };
  // An exact pair scores 1 whatever the threshold: it must never be dropped.
  const threshold = Math.min(nearThreshold, 1);
  if (weighted(sims) < threshold) return false;
  sims.birthName = compareNames(a.birthName, b.birthName, 'birth-name').sim;
  return weighted(sims) >= threshold;
}

/**
 * Compares two identities. `exact` means every strict trait is equal in its referential form
 * (`referentialName`: case, diacritics, hyphen, apostrophe and space spellings aside),
 * a birth place or given-name list missing on one side aside; `near` means the score reaches
 * `nearThreshold` without being exact.
 */
export function compareIdentities(a: MatchTraits, b: MatchTraits, nearThreshold: number): MatchResult {
  const parts = {
    birthName: compareNames(a.birthName, b.birthName, 'birth-name'),
    firstGivenName: compareFirstGivenNames(a, b),
    birthDate: compareBirthDates(a.birthDate, b.birthDate),
    sex: compareSex(a.sex, b.sex),
    birthPlace: compareBirthPlaces(a.birthPlace, b.birthPlace),
  };
  const reasons = Object.values(parts).flatMap((p) => (p.reason === null ? [] : [p.reason]));
  const allEqual = Object.values(parts).every((p) => p.reason === null);
  const sameLists = sameGivenNameLists(a, b);
  if (!sameLists) reasons.push('given-names-differ');
  const score = weighted({
    birthName: parts.birthName.sim,
    firstGivenName: parts.firstGivenName.sim,
    birthDate: parts.birthDate.sim,
    sex: parts.sex.sim,
    birthPlace: parts.birthPlace.sim,
  });
  if (allEqual && sameLists) return { kind: 'exact', score: 1, reasons: [] };
  return { kind: score >= nearThreshold ? 'near' : 'different', score, reasons };
}

/** A patient the trait rules looked at, and how its traits compare with the incoming ones. */
export interface TraitCandidate {
  patientId: number;
  match: MatchResult;
  /**
   * Why equal traits may not designate this patient alone (an identity feed: the establishment
   * keeps it under another IPP); it is then only a review candidate, with this reason.
   */
  heldBack?: string;
}

/** A patient a person should compare with the incoming identity, and why. */
export interface ReviewCandidate {
  patientId: number;
  score: number;
  reasons: string[];
}

/** What the rules, most certain first, make of what the store knows of an incoming identity. */
export interface RuleInputs {
  /** The distinct patients the incoming IPPs designate, in the order of the IPPs. */
  byIpp: readonly number[];
  /** The patients its INS designates, or null when the INS rule does not apply to it. */
  byIns: () => readonly number[] | null;
  /** The patients close enough by traits, or the rule's name when traits may not decide here. */
  byTraits: () => readonly TraitCandidate[] | string;
  /** Equal strict traits on exactly one patient designate it (`link`), else only open a review. */
  linkOnStrictTraits: boolean;
  /**
   * When a rule designates several patients: an identity feed files on the first and reviews the
   * others (`first`); a document waits and is reviewed against them all (`none`).
   */
  several: 'first' | 'none';
}

export interface Designation {
  /** The patient designated, or null: none, or nothing certain enough. */
  patientId: number | null;
  /** The rule that decided: ipp-known, ins-qualified, strict-traits, strict-traits-review, near-match, no-match… */
  rule: string;
  reviews: ReviewCandidate[];
}

/**
 * The identity rules in their one order, for identities (vigilance.ts) and documents
 * (documents.ts) alike: 1. an IPP that designates a patient; 2. a qualified INS; 3. equal strict
 * traits (link or review); 4. close traits (review); 5. none. Lookups are functions so that a rule
 * that decides spares the queries of the rules after it.
 */
export function designate(r: RuleInputs): Designation {
  const pick = (ids: readonly number[]): number | null =>
    ids.length === 1 || (ids.length > 1 && r.several === 'first') ? ids[0]! : null;
  const onTwo = (patientId: number) => ({ patientId, score: 1, reasons: ['identifiers-on-two-patients'] });
  if (r.byIpp.length > 1 && r.several === 'none')
    return { patientId: null, rule: 'identifiers-on-two-patients', reviews: r.byIpp.map(onTwo) };
  const ipp = pick(r.byIpp);
  if (ipp !== null) return { patientId: ipp, rule: 'ipp-known', reviews: r.byIpp.slice(1).map(onTwo) };
  const insIds = r.byIns();
  const ins = insIds === null ? null : pick(insIds);
  if (ins !== null) return { patientId: ins, rule: 'ins-qualified', reviews: [] };
  const traits = r.byTraits();
  if (typeof traits === 'string') return { patientId: null, rule: traits, reviews: [] };
  const scored = traits.filter((c) => c.match.kind !== 'different');
  const review = (c: TraitCandidate, extra: string[] = []): ReviewCandidate => ({
    patientId: c.patientId,
    score: c.match.score,
    reasons:
      c.match.reasons.length > 0 || extra.length > 0
        ? [...c.match.reasons, ...extra]
        : ['strict-traits-equal'],
  });
  const exact = scored.filter((c) => c.match.kind === 'exact' && c.heldBack === undefined);
  if (exact.length === 1 && r.linkOnStrictTraits)
    return { patientId: exact[0]!.patientId, rule: 'strict-traits', reviews: [] };
  if (exact.length > 0) {
    const extra = exact.length > 1 ? ['several-strict-matches'] : [];
    return { patientId: null, rule: 'strict-traits-review', reviews: exact.map((c) => review(c, extra)) };
  }
  const near = scored.map((c) => review(c, c.heldBack === undefined ? [] : [c.heldBack]));
  return { patientId: null, rule: near.length > 0 ? 'near-match' : 'no-match', reviews: near };
}
