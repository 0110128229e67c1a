// Loads the region's identity base (557,842 patients by default) through the vigilance rules, the
// way the identity feed does: many identities per transaction, synchronous=FULL, a file database.
// Synthetic people: random names with a skewed frequency, births 1925-2010, one patient in five also known to a
// second establishment (one in four of those with a typo), one in three with a qualified INS.
//   node --import tsx test/bench/patients-load.ts [count] [batch]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { migrate, openDatabase } from '../../store/db.ts';
import { PatientStore, patientMigrations, type IdentityInput } from '../../store/patients.ts';
import { Vigilance } from '../../store/vigilance.ts';
import { acceptedInsOids } from '../../connectors/identity-writer.ts';

const count = Number(process.argv[2] ?? 557_842);
const batch = Number(process.argv[3] ?? 1000);

// mulberry32: deterministic runs, and no short cycle that would repeat people.
let seed = 42;
const random = (): number => {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
};
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
const word = (length: number): string =>
  Array.from({ length }, (_, k) => (k % 2 === 0 ? pick([...'BCDFGHJLMNPRSTVZ']) : pick([...'AEIOUY']))).join(
    '',
  );
// Skewed picks: a few names are common (MARTIN is ~0.4% of France), most are rare.
const skewed = <T>(xs: readonly T[], power: number): T => xs[Math.floor(xs.length * random() ** power)]!;
const surnamePool = Array.from({ length: 120_000 }, () => word(4 + Math.floor(random() * 6)));
const givenPool = Array.from({ length: 1500 }, () => word(4 + Math.floor(random() * 4)));
const surname = () => skewed(surnamePool, 2);
const given = () => skewed(givenPool, 1.7);
const finesses = ['310781406', '310000002', '820000016', '340780477', '660780180'];

function person(i: number): IdentityInput {
  const first = given();
  const y = 1925 + Math.floor(random() * 86);
  const m = 1 + Math.floor(random() * 12);
  const d = 1 + Math.floor(random() * 28);
  const qualified = random() < 0.33;
  return {
    birthName: surname(),
    givenNames: random() < 0.5 ? [first, given()] : [first],
    firstGivenName: first,
    birthDate: `${y}${String(m).padStart(2, '0')}${String(d).padStart(2, '0')}`,
    sex: random() < 0.5 ? 'F' : 'M',
    birthPlace: String(10000 + Math.floor(random() * 85000)),
    reliability: qualified ? 'QUAL' : pick(['PROV', 'VALI']),
    ins: qualified ? { matricule: String(100_000_000_000_000 + i), oid: '1.2.250.1.213.1.4.8' } : null,
    identifiers: [{ ipp: `P${i}`, finess: pick(finesses) }],
  };
}

function seenElsewhere(p: IdentityInput, i: number): IdentityInput {
  const typo = random() < 0.25;
  return {
    ...p,
    birthName: typo ? p.birthName.slice(0, -1) + 'X' : p.birthName,
    ins: null,
    reliability: 'PROV',
    identifiers: [{ ipp: `S${i}`, finess: finesses.find((f) => f !== p.identifiers[0]!.finess)! }],
  };
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onco-bench-patients-'));
const db = openDatabase(path.join(dir, 'bench.db'), { synchronous: 'FULL' });
db.pragma(`cache_size = -${Number(process.env.CACHE_MB ?? 2) * 1024}`);
migrate(db, patientMigrations);
const vigilance = new Vigilance(new PatientStore(db));
const feed: IdentityInput[] = [];
for (let i = 0; i < count; i++) {
  const p = person(i);
  feed.push(p);
  if (random() < 0.2) feed.push(seenElsewhere(p, i));
}

const actions = new Map<string, number>();
const started = process.hrtime.bigint();
const cpu0 = process.cpuUsage();
let slowest = 0;
const insOids = acceptedInsOids();
for (let at = 0; at < feed.length; at += batch) {
  const t0 = process.hrtime.bigint();
  db.transaction(() => {
    for (const [k, input] of feed.slice(at, at + batch).entries()) {
      const d = vigilance.applyIdentity(input, { messageId: at + k, insOids });
      actions.set(d.action, (actions.get(d.action) ?? 0) + 1);
    }
  })();
  slowest = Math.max(slowest, Number(process.hrtime.bigint() - t0) / 1e6);
}
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
const cpu = process.cpuUsage(cpu0);
const size =
  fs.statSync(path.join(dir, 'bench.db')).size +
  (fs.statSync(path.join(dir, 'bench.db-wal'), { throwIfNoEntry: false })?.size ?? 0);
console.log(
  JSON.stringify({
    identities: feed.length,
    patients: db.prepare('SELECT count(*) FROM patients').pluck().get(),
    seconds: Math.round(seconds * 10) / 10,
    perSecond: Math.round(feed.length / seconds),
    cpuSeconds: Math.round((cpu.user + cpu.system) / 1e5) / 10,
    slowestBatchMs: Math.round(slowest),
    batch,
    actions: Object.fromEntries(actions),
    databaseMB: Math.round(size / 1e6),
  }),
);
db.close();
fs.rmSync(dir, { recursive: true, force: true });
