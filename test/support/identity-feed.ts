// A realistic, deterministic PAM FR identity feed for the vigilance rules: fictitious people with
// skewed name frequencies, accents, hyphens, particles and compound names, seen again by other
// establishments (exact copies, typos, swapped given names, birth-date slips, an unknown sex), updated
// by their own establishment (status up or down, used name, death), duplicated inside one
// establishment and then merged (A40), renumbered (A47), linked and unlinked (A24/A37), sharing a
// qualified INS, fictitious or doubtful, and a few messages the rules must refuse. Same seed, same
// feed: the decision-equivalence test compares the store this feed leaves with a recorded digest.
import { insOf } from './pam.ts';

export const FEED_FINESSES = ['310000001', '310000002', '820000016', '340780477', '660780180'] as const;

/** The directory the feed files under (a sixth FINESS, outside it, is used by refused messages). */
export const feedDirectory = {
  establishments: FEED_FINESSES.map((finess) => ({
    finess,
    name: `Établissement ${finess}`,
    kind: 'hospital',
  })),
};

interface Person {
  birthName: string;
  usedName?: string;
  given: string[];
  birthDate: string;
  sex: 'M' | 'F' | 'U';
  birthPlace?: string;
  status: string;
  ins?: { matricule: string; oid: string };
  deathDate?: string;
}

interface Ref {
  ipp: string;
  finess: string;
}

/** mulberry32: deterministic, no short cycle. */
function rng(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const SPECIAL_SURNAMES = [
  'LÉGER',
  'Lefèvre',
  "D'ESTAING",
  'DE LA FONTAINE',
  'MARTIN-LÉGER',
  'CŒUR',
  'MÜLLER',
  "O'NEILL",
  'DUPONT MARTIN',
  'NGUYEN',
  'GARCÍA',
  'BÉNÉZECH',
];

function cx(r: Ref): string {
  return `${r.ipp}^^^HOP&${r.finess}&M^PI`;
}

function pid(n: number, ids: string[], p: Person): string {
  const names = [`${p.birthName}^${p.given[0]}^${p.given.join(' ')}^^^^L`];
  if (p.usedName) names.push(`${p.usedName}^${p.given[0]}^^^^^D`);
  const fields = [
    'PID',
    String(n),
    '',
    ids.join('~'),
    '',
    names.join('~'),
    '',
    p.birthDate,
    p.sex,
    '',
    '',
    p.birthPlace ? `^^^^^^BDL^^${p.birthPlace}` : '',
    ...Array(17).fill(''),
    p.deathDate ?? '',
    p.deathDate ? 'Y' : '',
    '',
    p.status,
  ];
  return fields.join('|');
}

function msh(event: string, structure: string, control: string): string {
  return `MSH|^~\\&|GAM|HOP|ONCO|DCC|20250102103000||ADT^${event}^${structure}|${control}|P|2.5^FRA^2.11|||||FRA|UNICODE UTF-8|FR||2.11^IHE_FRANCE-2.11-PAM`;
}

function frame(segments: string[]): string {
  return `${segments.join('\r')}\r`;
}

export interface FeedOptions {
  /** Distinct people; messages are about 1.6 times as many. */
  people: number;
  seed?: number;
}

/** The feed, in arrival order, one HL7 message a string. */
export function identityFeed(o: FeedOptions): string[] {
  const random = rng(o.seed ?? 7);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const skewed = <T>(xs: readonly T[], power: number): T => xs[Math.floor(xs.length * random() ** power)]!;
  const word = (length: number): string =>
    Array.from({ length }, (_, k) =>
      k % 2 === 0 ? pick([...'BCDFGHJLMNPRSTVZ']) : pick([...'AEIOUYÉÈ']),
    ).join('');
  const surnames = [
    ...SPECIAL_SURNAMES,
    ...Array.from({ length: Math.max(200, o.people / 8) }, () => word(4 + Math.floor(random() * 5))),
  ];
  const givens = Array.from({ length: 300 }, () => word(4 + Math.floor(random() * 3)));
  const date = (): string => {
    const y = 1925 + Math.floor(random() * 86);
    const r = random();
    if (r < 0.005) return String(y);
    const m = String(1 + Math.floor(random() * 12)).padStart(2, '0');
    if (r < 0.01) return `${y}${m}`;
    return `${y}${m}${String(1 + Math.floor(random() * 28)).padStart(2, '0')}`;
  };

  const events: Array<{ at: number; text: (control: string) => string }> = [];
  let nextIpp = 0;
  let nextIns = 0;
  const newRef = (finess: string): Ref => ({ ipp: `G${nextIpp++}`, finess });
  const otherFiness = (f: string): string => pick(FEED_FINESSES.filter((x) => x !== f));
  const newIns = (): { matricule: string; oid: string } => ({
    matricule: insOf(String(1_850_575_000_000 + nextIns++)),
    oid: '1.2.250.1.213.1.4.8',
  });
  const a28 = (at: number, ref: Ref, p: Person, event = 'A28'): void => {
    const ids = [cx(ref)];
    if (p.ins) ids.push(`${p.ins.matricule}^^^ASIP-SANTE-INS-NIR&${p.ins.oid}&ISO^INS`);
    events.push({
      at,
      text: (c) => frame([msh(event, 'ADT_A05', c), 'EVN||20250102103000', pid(1, ids, p)]),
    });
  };
  const typo = (name: string): string => {
    const k = 1 + Math.floor(random() * Math.max(1, name.length - 2));
    const r = random();
    if (r < 0.4) return name.slice(0, k) + pick([...'AEIOURST']) + name.slice(k + 1);
    if (r < 0.7) return name.slice(0, k) + (name[k + 1] ?? '') + name[k] + name.slice(k + 2);
    return name.slice(0, k) + name.slice(k + 1);
  };
  const slipDate = (d: string): string => {
    if (d.length !== 8) return d;
    const r = random();
    if (r < 0.33) return `${d.slice(0, 4)}${d.slice(6, 8)}${d.slice(4, 6)}`;
    if (r < 0.66) return `${d.slice(0, 2)}${d[3]}${d[2]}${d.slice(4)}`;
    return `${d.slice(0, 7)}${(Number(d[7]) + 1) % 10 || 1}`;
  };

  const homes: Ref[] = [];
  for (let i = 0; i < o.people; i++) {
    const at = i;
    const given = Array.from({ length: 1 + Math.floor(random() ** 2 * 3) }, () => skewed(givens, 1.7));
    const statusRoll = random();
    const qualified = statusRoll < 0.3;
    const p: Person = {
      birthName: skewed(surnames, 2),
      given,
      birthDate: date(),
      sex: random() < 0.5 ? 'F' : 'M',
      status: qualified
        ? 'QUAL'
        : statusRoll < 0.6
          ? 'VALI'
          : statusRoll < 0.96
            ? 'PROV'
            : statusRoll < 0.98
              ? 'FICT'
              : 'DOUT',
    };
    if (random() < 0.8) p.birthPlace = String(10000 + Math.floor(random() * 85000));
    if (qualified) p.ins = newIns();
    if (p.sex === 'F' && random() < 0.2) p.usedName = skewed(surnames, 2);
    const home = newRef(pick(FEED_FINESSES));
    homes.push(home);
    a28(at, home, p);

    const later = (): number => at + 1 + random() * 3000;
    const roll = random();
    if (roll < 0.3) {
      // Seen by another establishment, as it wrote the identity down.
      const q: Person = { ...p, status: pick(['PROV', 'VALI']) };
      delete q.ins;
      const v = random();
      if (v < 0.1) q.birthName = p.birthName.toLowerCase();
      else if (v < 0.3) q.birthName = typo(p.birthName);
      else if (v < 0.37)
        q.given = [...p.given].reverse().concat(p.given.length === 1 ? [skewed(givens, 1.7)] : []);
      else if (v < 0.37 + 0.12) q.birthDate = slipDate(p.birthDate);
      else if (v < 0.53) q.birthName = p.birthName.replace(/[- ]/g, (c) => (c === '-' ? ' ' : '-'));
      else if (v < 0.56) q.birthName = `${p.birthName}-${skewed(surnames, 2)}`;
      else if (v < 0.6) q.sex = 'U';
      else if (v < 0.63) delete q.birthPlace;
      a28(later(), newRef(otherFiness(home.finess)), q);
    } else if (roll < 0.38) {
      // Its own establishment sends it again: status up or down, a used name, a death.
      const q: Person = { ...p };
      const v = random();
      if (v < 0.3) {
        q.status = 'QUAL';
        q.ins ??= newIns();
      } else if (v < 0.5) {
        q.status = 'PROV';
        q.birthName = typo(p.birthName);
        delete q.ins;
      } else if (v < 0.75) q.usedName = skewed(surnames, 2);
      else q.deathDate = '20240315';
      a28(later(), home, q, pick(['A31', 'A08']));
    } else if (roll < 0.41 && p.ins) {
      // Another establishment with the same qualified INS and its own spelling of the traits.
      a28(later(), newRef(otherFiness(home.finess)), { ...p, birthName: typo(p.birthName) });
    } else if (roll < 0.45) {
      // A duplicate inside the establishment, later merged into the first IPP (or not).
      const dup = newRef(home.finess);
      const when = later();
      a28(when, dup, { ...p, status: 'PROV', ins: undefined });
      const merged = random() < 0.7;
      if (random() < 0.3)
        a28(when + 1 + random() * 500, newRef(otherFiness(home.finess)), { ...p, ins: undefined });
      else if (!merged && random() < 0.5)
        // One message naming both IPPs: they designate two patients, which is for a reviewer.
        events.push({
          at: when + 1 + random() * 500,
          text: (c) =>
            frame([msh('A31', 'ADT_A05', c), 'EVN||20250102103000', pid(1, [cx(home), cx(dup)], p)]),
        });
      if (merged) {
        const ids = [cx(home)];
        if (p.ins) ids.push(`${p.ins.matricule}^^^ASIP-SANTE-INS-NIR&${p.ins.oid}&ISO^INS`);
        events.push({
          at: when + 1 + random() * 500,
          text: (c) =>
            frame([msh('A40', 'ADT_A39', c), 'EVN||20250102103000', pid(1, ids, p), `MRG|${cx(dup)}`]),
        });
      }
    } else if (roll < 0.46) {
      // The establishment renumbers the patient.
      const renumbered = newRef(home.finess);
      events.push({
        at: later(),
        text: (c) =>
          frame([
            msh('A47', 'ADT_A30', c),
            'EVN||20250102103000',
            pid(1, [cx(renumbered)], p),
            `MRG|${cx(home)}`,
          ]),
      });
    } else if (roll < 0.475) {
      // Linked to the patient before it (A24), and for some unlinked again (A37).
      const other = homes[i - 1];
      if (other !== undefined) {
        const when = later();
        for (const event of random() < 0.3 ? ['A24', 'A37'] : ['A24']) {
          events.push({
            at: event === 'A24' ? when : when + 100,
            text: (c) =>
              frame([
                msh(event, `ADT_${event}`, c),
                'EVN||20250102103000',
                pid(1, [cx(home)], p),
                'PV1|1|N',
                pid(2, [cx(other)], p),
                'PV1|1|N',
              ]),
          });
        }
      }
    } else if (roll < 0.48) {
      // Refused: an establishment outside the directory, a test INS, no birth date.
      const v = random();
      const bad: Person = { ...p };
      let ref = newRef(home.finess);
      if (v < 0.4) ref = newRef('999999999');
      else if (v < 0.7) bad.ins = { matricule: insOf('2850575056123'), oid: '1.2.250.1.213.1.4.10' };
      else bad.birthDate = '';
      a28(later(), ref, bad);
    }
  }
  return events
    .map((e, k) => ({ ...e, k }))
    .sort((a, b) => a.at - b.at || a.k - b.k)
    .map((e, n) => e.text(`F${n}`));
}
