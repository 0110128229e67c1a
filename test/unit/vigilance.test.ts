import assert from 'node:assert/strict';
import type { IdentityInput } from '../../store/patients.ts';
import type { IdentityContext } from '../../store/vigilance.ts';
import { acceptedInsOids } from '../../connectors/identity-writer.ts';
import { identity, ipp, NIR_OID, openPatients, TEST_OID, type PatientFixture } from './identity-fixtures.ts';

const CHU = '310781406';
const CLINIC = '310000002';
const CH = '820000016';
const INS = { matricule: '258033155512345', oid: NIR_OID };

describe('identity vigilance', () => {
  let f: PatientFixture;
  beforeEach(() => {
    f = openPatients();
  });
  afterEach(() => f.close());

  const apply = (input: IdentityInput, ctx: Partial<IdentityContext> = {}) =>
    f.vigilance.applyIdentity(input, { messageId: 1, insOids: acceptedInsOids(), ...ctx });
  const livePatients = () =>
    f.db.prepare('SELECT count(*) FROM patients WHERE merged_into IS NULL').pluck().get();

  describe('the same patient from three hospitals ends as one patient', () => {
    const withIns = identity({
      identifiers: [ipp('A1', CHU)],
      ins: INS,
      reliability: 'QUAL',
      collectionMode: 'INSI',
    });
    const clinic = identity({ identifiers: [ipp('B7', CLINIC)], reliability: 'PROV' });
    const hospital = identity({ identifiers: [ipp('C3', CH)], reliability: 'VALI', usedName: 'DURAND' });
    const orders: Array<[string, IdentityInput[]]> = [
      ['INS first', [withIns, clinic, hospital]],
      ['INS last', [clinic, hospital, withIns]],
      ['INS in the middle', [clinic, withIns, hospital]],
    ];
    for (const [name, feed] of orders) {
      it(name, () => {
        const decisions = feed.map((i) => apply(i));
        assert.equal(livePatients(), 1);
        assert.deepEqual(
          decisions.slice(1).map((d) => [d.action, d.rule]),
          [
            ['linked', 'strict-traits'],
            ['linked', 'strict-traits'],
          ],
        );
        const view = f.patients.view(decisions[0]!.patientId)!;
        assert.deepEqual(view.identifiers.map((i) => `${i.ipp}@${i.finess}`).sort(), [
          `A1@${CHU}`,
          `B7@${CLINIC}`,
          `C3@${CH}`,
        ]);
        assert.equal(view.patient.reliability, 'QUAL');
        assert.deepEqual(view.patient.ins, { ...INS, status: 'QUAL' });
        assert.equal(view.patient.usedName, 'DURAND');
        assert.equal(f.vigilance.listOpen().items.length, 0);
      });
    }

    it('links a qualified INS even when the traits were typed differently elsewhere', () => {
      apply(withIns);
      const d = apply({ ...withIns, birthName: 'MARTINN', identifiers: [ipp('Z9', CH)] });
      assert.deepEqual([d.action, d.rule], ['linked', 'ins-qualified']);
      assert.equal(livePatients(), 1);
    });
  });

  describe('near matches create a second patient and open a review item', () => {
    const cases: Array<[string, Partial<IdentityInput>, string]> = [
      ['a typo in the birth name', { birthName: 'MARTAN' }, 'birth-name-typo'],
      ['a space for a hyphen in the birth name', { birthName: 'MAR TIN' }, 'birth-name-spacing'],
      ['a hyphenated compound birth name', { birthName: 'MARTIN-DUBOIS' }, 'birth-name-compound'],
      [
        'swapped given names',
        { firstGivenName: 'LOUISE', givenNames: ['LOUISE', 'JEANNE'] },
        'given-names-swapped',
      ],
      ['two swapped digits of the birth date', { birthDate: '1985-03-14' }, 'birth-date-digits-swapped'],
      ['a mistyped digit of the birth date', { birthDate: '1958-03-04' }, 'birth-date-one-digit'],
      ['a sex left unknown', { sex: 'U' }, 'sex-unknown'],
      [
        'near-identical twins',
        { firstGivenName: 'JEANNA', givenNames: ['JEANNA', 'LOUISE'] },
        'first-given-name-typo',
      ],
    ];
    for (const [name, change, reason] of cases) {
      it(name, () => {
        const first = apply(identity({ identifiers: [ipp('A1', CHU)] }));
        const second = apply(identity({ ...change, identifiers: [ipp('B1', CLINIC)] }));
        assert.deepEqual([second.action, second.rule], ['created-with-review', 'near-match']);
        assert.notEqual(second.patientId, first.patientId);
        const item = f.vigilance.getReview(second.reviewItemId!)!;
        assert.deepEqual(
          [item.patientId, item.candidateId, item.status],
          [second.patientId, first.patientId, 'open'],
        );
        assert.ok(item.reasons.includes(reason), `reasons ${item.reasons.join(',')} lack ${reason}`);
      });
    }

    it('day and month swapped', () => {
      const first = apply(identity({ birthDate: '1958-03-04', identifiers: [ipp('A1', CHU)] }));
      const second = apply(identity({ birthDate: '19580403', identifiers: [ipp('B1', CLINIC)] }));
      assert.equal(second.action, 'created-with-review');
      assert.deepEqual(f.vigilance.getReview(second.reviewItemId!)!.reasons, [
        'birth-date-day-month-swapped',
      ]);
      assert.notEqual(first.patientId, second.patientId);
    });

    it('an unrelated person born the same day is simply created', () => {
      apply(identity({ identifiers: [ipp('A1', CHU)] }));
      const d = apply(
        identity({
          birthName: 'GARCIA',
          firstGivenName: 'PAUL',
          givenNames: ['PAUL'],
          sex: 'M',
          identifiers: [ipp('B1', CLINIC)],
        }),
      );
      assert.deepEqual([d.action, d.rule, d.reviewItemIds], ['created', 'no-match', []]);
    });
  });

  describe('strict traits', () => {
    it('compares them as the INS referential records them: accents, case and apostrophe spellings aside', () => {
      const first = apply(identity({ birthName: "D'ARC", identifiers: [ipp('A1', CHU)] }));
      const second = apply(
        identity({
          birthName: 'd\u2019Arc',
          firstGivenName: 'Jéanne',
          givenNames: ['Jéanne', 'Louise'],
          identifiers: [ipp('B1', CLINIC)],
        }),
      );
      assert.deepEqual(
        [second.action, second.rule, second.patientId],
        ['linked', 'strict-traits', first.patientId],
      );
      assert.equal(
        f.patients.identifiers(first.patientId).find((i) => i.ipp === 'B1')!.identity.birthName,
        'd\u2019Arc',
      );
    });

    it('create and review when the rule says so', () => {
      const a = apply(identity({ identifiers: [ipp('A1', CHU)] }));
      const b = apply(identity({ identifiers: [ipp('B1', CLINIC)] }), {
        rules: { strictTraitsMatch: 'create-and-review' },
      });
      assert.deepEqual([b.action, b.rule], ['created-with-review', 'strict-traits-review']);
      const item = f.vigilance.getReview(b.reviewItemId!)!;
      assert.deepEqual([item.candidateId, item.reasons], [a.patientId, ['strict-traits-equal']]);
    });

    it('an establishment holding the patient under another IPP gets a review, not a link', () => {
      apply(identity({ identifiers: [ipp('A1', CHU)] }));
      const d = apply(identity({ identifiers: [ipp('A2', CHU)] }));
      assert.equal(d.action, 'created-with-review');
      assert.ok(f.vigilance.getReview(d.reviewItemId!)!.reasons.includes('same-establishment-other-ipp'));
    });

    it('a fictitious identity is never linked by resemblance', () => {
      apply(identity({ identifiers: [ipp('A1', CHU)] }));
      const d = apply(identity({ reliability: 'FICT', identifiers: [ipp('X1', CLINIC)] }));
      assert.deepEqual([d.action, d.rule], ['created', 'untrusted-identity']);
    });

    it('a known IPP updates its patient whatever the traits say', () => {
      const a = apply(identity({ identifiers: [ipp('A1', CHU)] }));
      const d = apply(identity({ birthName: 'DUPONT', identifiers: [ipp('A1', CHU)] }));
      assert.deepEqual([d.patientId, d.action, d.rule], [a.patientId, 'updated', 'ipp-known']);
      assert.equal(f.patients.get(a.patientId)!.birthName, 'DUPONT');
    });
  });

  describe('a lower reliability never overwrites more reliable traits', () => {
    const cases: Array<[string, string, string | null, boolean]> = [
      // stored, incoming, source cap, traits replaced?
      ['QUAL', 'VALI', null, false],
      ['QUAL', 'PROV', null, false],
      ['QUAL', 'DOUT', null, false],
      ['QUAL', 'QUAL', null, true],
      ['QUAL', 'QUAL', 'VALI', false],
      ['VALI', 'PROV', null, false],
      ['PROV', 'VALI', null, true],
      ['PROV', 'PROV', null, true],
    ];
    for (const [stored, incoming, cap, replaced] of cases) {
      it(`${stored} then ${incoming}${cap ? ` from a source capped at ${cap}` : ''}: ${replaced ? 'replaced' : 'kept'}`, () => {
        const insFor = (r: string) => (r === 'QUAL' ? INS : null);
        const a = apply(
          identity({ reliability: stored, ins: insFor(stored), identifiers: [ipp('A1', CHU)] }),
        );
        const d = apply(
          identity({
            birthName: 'MARTINEZ',
            reliability: incoming,
            ins: insFor(incoming),
            identifiers: [ipp('A1', CHU)],
          }),
          cap ? { sourceReliability: cap } : {},
        );
        const p = f.patients.get(a.patientId)!;
        assert.equal(p.birthName, replaced ? 'MARTINEZ' : 'MARTIN');
        assert.equal(p.reliability, replaced ? incoming : stored);
        assert.equal(d.notes.includes('traits-kept-more-reliable'), !replaced);
      });
    }

    it('a death (PID-29/30) is stored from any source, and kept when a later message says nothing', () => {
      const a = apply(identity({ reliability: 'QUAL', ins: INS, identifiers: [ipp('A1', CHU)] }));
      assert.deepEqual(
        [f.patients.get(a.patientId)!.deathDate, f.patients.get(a.patientId)!.deceased],
        [null, null],
      );
      apply(identity({ deathDate: '20240102', identifiers: [ipp('A1', CHU)] }));
      apply(identity({ identifiers: [ipp('A1', CHU)] }));
      const p = f.patients.get(a.patientId)!;
      assert.deepEqual([p.deathDate, p.deceased], ['2024-01-02', true]);
    });

    it('used names change from any source', () => {
      const a = apply(identity({ reliability: 'QUAL', ins: INS, identifiers: [ipp('A1', CHU)] }));
      apply(identity({ reliability: 'PROV', usedName: 'DURAND', identifiers: [ipp('A1', CHU)] }));
      assert.equal(f.patients.get(a.patientId)!.usedName, 'DURAND');
    });
  });

  describe('INS OIDs', () => {
    const cases: Array<[string, boolean, boolean]> = [
      // oid, acceptTestIns, INS used
      [NIR_OID, false, true],
      [TEST_OID, false, false],
      [TEST_OID, true, true],
      ['1.2.250.1.213.1.4.11', false, false],
      ['1.2.3.4', true, false],
    ];
    for (const [oid, acceptTestIns, used] of cases) {
      it(`${oid} with acceptTestIns=${acceptTestIns}: ${used ? 'used' : 'refused'}`, () => {
        const ins = { matricule: INS.matricule, oid };
        const insOids = acceptedInsOids({ acceptTestIns });
        const a = apply(identity({ ins, reliability: 'QUAL', identifiers: [ipp('A1', CHU)] }), { insOids });
        const b = apply(
          identity({ birthName: 'MARTAN', ins, reliability: 'QUAL', identifiers: [ipp('B1', CLINIC)] }),
          { insOids },
        );
        assert.equal(f.patients.get(a.patientId)!.ins?.oid ?? null, used ? oid : null);
        assert.equal(f.patients.get(a.patientId)!.reliability, used ? 'QUAL' : 'VALI');
        assert.equal(a.notes.includes('ins-oid-refused'), !used);
        assert.deepEqual(
          [b.rule, b.patientId === a.patientId],
          used ? ['ins-qualified', true] : ['near-match', false],
        );
      });
    }
  });

  describe('conflicts', () => {
    it('two IPPs of one message designating two patients open a review', () => {
      const a = apply(identity({ identifiers: [ipp('A1', CHU)] }));
      const b = apply(identity({ birthName: 'GARCIA', identifiers: [ipp('B1', CLINIC)] }));
      const d = apply(identity({ identifiers: [ipp('A1', CHU), ipp('B1', CLINIC)] }));
      assert.equal(d.patientId, a.patientId);
      assert.deepEqual(f.vigilance.getReview(d.reviewItemId!)!.candidateId, b.patientId);
    });

    it('a second patient given an INS that another carries opens a review', () => {
      const a = apply(identity({ ins: INS, reliability: 'QUAL', identifiers: [ipp('A1', CHU)] }));
      const b = apply(identity({ birthName: 'GARCIA', identifiers: [ipp('B1', CLINIC)] }));
      const d = apply(
        identity({ birthName: 'GARCIA', ins: INS, reliability: 'QUAL', identifiers: [ipp('B1', CLINIC)] }),
      );
      assert.equal(d.patientId, b.patientId);
      const item = f.vigilance.getReview(d.reviewItemId!)!;
      assert.deepEqual([item.candidateId, item.reasons], [a.patientId, ['same-ins']]);
    });
  });

  describe('every decision is journaled with its rule', () => {
    it('records rule, input, message id and review reasons', () => {
      apply(identity({ identifiers: [ipp('A1', CHU)] }), { messageId: 41 });
      const d = apply(identity({ birthName: 'MARTAN', identifiers: [ipp('B1', CLINIC)] }), { messageId: 42 });
      const entry = f.patients.view(d.patientId)!.history.find((h) => h.id === d.decisionId)!;
      assert.deepEqual(
        [entry.action, entry.rule, entry.messageId],
        ['created-with-review', 'near-match', 42],
      );
      assert.equal((entry.input as IdentityInput).birthName, 'MARTAN');
      assert.deepEqual((entry.detail as { reviews: Array<{ reasons: string[] }> }).reviews[0]!.reasons, [
        'birth-name-typo',
      ]);
    });

    it('runs as a savepoint of the caller transaction: a rollback leaves nothing', () => {
      assert.throws(() =>
        f.db.transaction(() => {
          apply(identity({ identifiers: [ipp('A1', CHU)] }));
          throw new Error('engine failed later in the batch');
        })(),
      );
      assert.equal(livePatients(), 0);
      assert.equal(f.db.prepare('SELECT count(*) FROM identity_decisions').pluck().get(), 0);
    });

    it('refuses an identity without a usable birth date, naming the field', () => {
      assert.throws(() => apply(identity({ birthDate: '1958-02-30' })), {
        code: 'IDENTITY_INVALID',
        message: /birthDate/,
      });
    });
  });

  describe('review queue', () => {
    const twoNearPatients = () => {
      const a = apply(identity({ identifiers: [ipp('A1', CHU)] }));
      const b = apply(identity({ birthName: 'MARTAN', identifiers: [ipp('B1', CLINIC)] }));
      return { a: a.patientId, b: b.patientId, item: b.reviewItemId! };
    };

    it('lists open items in keyset pages', () => {
      apply(identity({ identifiers: [ipp('A1', CHU)] }));
      const opened = ['MARTAN', 'MARTIM', 'MERTIN', 'MARTINN', 'MARTYN'].flatMap(
        (name, i) => apply(identity({ birthName: name, identifiers: [ipp(`B${i}`, CLINIC)] })).reviewItemIds,
      );
      assert.ok(opened.length >= 5);
      const seen: number[] = [];
      let next: string | null = null;
      do {
        const page = f.vigilance.listOpen({ limit: 2, after: next });
        seen.push(...page.items.map((i) => i.id));
        next = page.next;
      } while (next !== null);
      assert.deepEqual(seen, opened);
    });

    it('confirm merges into the more reliable patient and records the author', () => {
      const a = apply(identity({ identifiers: [ipp('A1', CHU)] }));
      const q = apply(
        identity({ birthName: 'MARTAN', ins: INS, reliability: 'QUAL', identifiers: [ipp('B1', CLINIC)] }),
      );
      const d = f.vigilance.confirm(q.reviewItemId!, { author: 'iv.nurse' });
      assert.deepEqual([d.action, d.patientId], ['merged', q.patientId]);
      assert.equal(f.patients.resolvePatient(a.patientId), q.patientId);
      assert.equal(f.patients.resolveIdentifier(ipp('A1', CHU)), q.patientId);
      const item = f.vigilance.getReview(q.reviewItemId!)!;
      assert.deepEqual([item.status, item.resolvedBy], ['confirmed', 'iv.nurse']);
      assert.equal(f.vigilance.listOpen().items.length, 0);
    });

    it('confirm as a link keeps both patients and links them', () => {
      const { a, b, item } = twoNearPatients();
      f.vigilance.confirm(item, { author: 'iv.nurse', as: 'link' });
      assert.equal(livePatients(), 2);
      assert.deepEqual(
        f.patients.view(a)!.links.map((l) => l.patientId),
        [b],
      );
    });

    it('reject keeps two patients and never proposes the pair again', () => {
      const { a, b, item } = twoNearPatients();
      f.vigilance.reject(item, { author: 'iv.nurse', note: 'different mothers' });
      assert.deepEqual([f.vigilance.getReview(item)!.status, livePatients()], ['rejected', 2]);
      const again = apply(
        identity({ birthName: 'MARTAN', ins: INS, reliability: 'QUAL', identifiers: [ipp('B1', CLINIC)] }),
      );
      apply(identity({ ins: INS, reliability: 'QUAL', identifiers: [ipp('A1', CHU)] }));
      assert.equal(again.patientId, b);
      assert.deepEqual(
        f.vigilance.reviewsOf(a).map((r) => r.status),
        ['rejected'],
        'the shared INS does not reopen a pair judged apart',
      );
    });

    it('refuses to decide twice or without an author', () => {
      const { item } = twoNearPatients();
      assert.throws(() => f.vigilance.reject(item, { author: ' ' }), { code: 'AUTHOR_REQUIRED' });
      f.vigilance.reject(item, { author: 'iv.nurse' });
      assert.throws(() => f.vigilance.confirm(item, { author: 'iv.nurse' }), { code: 'REVIEW_NOT_OPEN' });
    });
  });
});
