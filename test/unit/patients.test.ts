import assert from 'node:assert/strict';
import { acceptedInsOids } from '../../connectors/identity-writer.ts';
import { parseIdentity, PatientStore, type IdentityInput } from '../../store/patients.ts';
import { identity, ipp, NIR_OID, openPatients, type PatientFixture } from './identity-fixtures.ts';

const CHU = '310781406';
const CLINIC = '310000002';
const INS = { matricule: '258033155512345', oid: NIR_OID };

describe('patient store', () => {
  let f: PatientFixture;
  beforeEach(() => {
    f = openPatients();
  });
  afterEach(() => f.close());

  const create = (overrides: Partial<IdentityInput>) =>
    f.vigilance.applyIdentity(identity(overrides), { insOids: acceptedInsOids() }).patientId;
  const by = { author: 'iv.nurse' };

  describe('merge', () => {
    it('redirects the merged patient, its IPPs and its family to the survivor', () => {
      const a = create({ identifiers: [ipp('A1', CHU)] });
      const b = create({ birthName: 'GARCIA', identifiers: [ipp('B1', CLINIC)] });
      const d = f.patients.merge(a, b, by);
      assert.deepEqual([d.action, d.patientId], ['merged', a]);
      assert.equal(f.patients.resolvePatient(b), a);
      assert.equal(f.patients.resolveIdentifier(ipp('B1', CLINIC)), a);
      assert.deepEqual(f.patients.family(a), [a, b]);
      const view = f.patients.view(b)!;
      assert.deepEqual([view.patient.id, view.requestedId], [a, b]);
      assert.deepEqual(view.identifiers.map((i) => i.ipp).sort(), ['A1', 'B1']);
      assert.deepEqual(
        f.patients.search('GARCIA').items,
        [],
        'a merged patient is no longer found on its own',
      );
    });

    it('takes the traits of a more reliable merged identity, and gives them back on undo', () => {
      const a = create({ birthName: 'MARTAN', identifiers: [ipp('A1', CHU)] });
      const q = create({ ins: INS, reliability: 'QUAL', identifiers: [ipp('B1', CLINIC)] });
      f.patients.merge(a, q, by);
      assert.deepEqual([f.patients.get(a)!.birthName, f.patients.get(a)!.reliability], ['MARTIN', 'QUAL']);
      const undo = f.patients.unmerge(q, by);
      assert.deepEqual([undo.action, undo.patientId], ['unmerged', q]);
      assert.deepEqual([f.patients.get(a)!.birthName, f.patients.get(a)!.reliability], ['MARTAN', 'PROV']);
      assert.equal(f.patients.resolvePatient(q), q);
      assert.equal(f.patients.resolveIdentifier(ipp('B1', CLINIC)), q);
      assert.deepEqual(
        f.patients.view(a)!.merges.map((m) => m.undone),
        [true],
      );
    });

    it('follows chains of merges', () => {
      const [a, b, c] = ['MARTIN', 'GARCIA', 'DUBOIS'].map((n, i) =>
        create({ birthName: n, identifiers: [ipp(`P${i}`, CHU)] }),
      );
      f.patients.merge(b!, c!, by);
      f.patients.merge(a!, b!, by);
      assert.equal(f.patients.resolvePatient(c!), a);
      assert.deepEqual(f.patients.family(a!), [a, b, c]);
      assert.equal(
        f.patients.merge(c!, a!, by).action,
        'unchanged',
        'merging a patient with itself changes nothing',
      );
    });

    it('a PAM merge of two IPPs keeps the old IPP resolving, and can be undone', () => {
      const a = create({ identifiers: [ipp('A1', CHU)] });
      const b = create({ birthName: 'GARCIA', identifiers: [ipp('A2', CHU)] });
      const d = f.patients.mergeIdentifiers(ipp('A1', CHU), ipp('A2', CHU), { messageId: 7 });
      assert.deepEqual([d.action, d.rule], ['merged', 'pam-merge']);
      const old = f.patients.findIdentifier(CHU, 'A2')!;
      assert.deepEqual([old.status, old.mergedIntoIpp], ['merged', 'A1']);
      assert.equal(f.patients.resolveIdentifier(ipp('A2', CHU)), a);
      f.patients.unmerge(b, by);
      assert.equal(f.patients.findIdentifier(CHU, 'A2')!.status, 'active');
      assert.equal(f.patients.resolveIdentifier(ipp('A2', CHU)), b);
    });

    it('a PAM merge of an IPP never sent keeps it as an alias of the survivor, merged into its IPP', () => {
      const a = create({ identifiers: [ipp('A1', CHU)] });
      const d = f.patients.mergeIdentifiers(ipp('A1', CHU), ipp('A0', CHU), { messageId: 8 });
      assert.deepEqual([d.action, d.rule, d.patientId], ['identifier-merged', 'pam-merge', a]);
      const alias = f.patients.findIdentifier(CHU, 'A0')!;
      assert.deepEqual([alias.status, alias.mergedIntoIpp], ['merged', 'A1']);
      assert.equal(f.patients.resolveIdentifier(ipp('A0', CHU)), a);
      assert.deepEqual(
        f.patients
          .view(a)!
          .identifiers.map((i) => i.ipp)
          .sort(),
        ['A0', 'A1'],
      );
    });

    it('refuses to undo what was never merged', () => {
      const a = create({ identifiers: [ipp('A1', CHU)] });
      assert.throws(() => f.patients.unmerge(a, by), { code: 'MERGE_UNKNOWN' });
    });
  });

  describe('identifiers and links', () => {
    it('changes an IPP (A47) and refuses a new IPP already in use', () => {
      const a = create({ identifiers: [ipp('A1', CHU)] });
      create({ birthName: 'GARCIA', identifiers: [ipp('A9', CHU)] });
      f.patients.changeIdentifier(CHU, 'A1', 'A5', { messageId: 3 });
      assert.equal(f.patients.resolveIdentifier(ipp('A1', CHU)), null);
      assert.equal(f.patients.resolveIdentifier(ipp('A5', CHU)), a);
      assert.throws(() => f.patients.changeIdentifier(CHU, 'A5', 'A9', {}), {
        code: 'IDENTIFIER_TAKEN',
        hint: /A40/,
      });
      assert.throws(() => f.patients.changeIdentifier(CHU, 'NOPE', 'A6', {}), { code: 'IDENTIFIER_UNKNOWN' });
    });

    it('undoes a wrong link by detaching the IPP onto a patient built from what its establishment sent', () => {
      const a = create({ identifiers: [ipp('A1', CHU)] });
      const linked = f.vigilance.applyIdentity(
        identity({ usedName: 'DURAND', identifiers: [ipp('B1', CLINIC)] }),
        { insOids: acceptedInsOids() },
      );
      assert.equal(linked.patientId, a);
      const d = f.patients.detachIdentifier(ipp('B1', CLINIC), by);
      assert.notEqual(d.patientId, a);
      assert.equal(f.patients.resolveIdentifier(ipp('B1', CLINIC)), d.patientId);
      assert.equal(f.patients.get(d.patientId)!.usedName, 'DURAND');
      assert.deepEqual(
        f.patients.identifiers(a).map((i) => i.ipp),
        ['A1'],
      );
    });

    it('links and unlinks two patients, keeping both', () => {
      const a = create({ identifiers: [ipp('A1', CHU)] });
      const b = create({ birthName: 'GARCIA', identifiers: [ipp('B1', CLINIC)] });
      f.patients.link(b, a, by);
      assert.deepEqual(
        f.patients.view(a)!.links.map((l) => l.patientId),
        [b],
      );
      f.patients.unlink(a, b, by);
      assert.deepEqual(f.patients.view(a)!.links, []);
      assert.throws(() => f.patients.unlink(a, b, by), { code: 'LINK_UNKNOWN' });
      const authors = f.patients
        .view(a)!
        .history.filter((h) => h.action.startsWith('patients-'))
        .map((h) => h.author);
      assert.deepEqual(authors, ['iv.nurse', 'iv.nurse']);
    });
  });

  describe('search', () => {
    const people: Array<Partial<IdentityInput>> = [
      {
        birthName: 'Lefèvre',
        firstGivenName: 'Hélène',
        givenNames: ['Hélène'],
        identifiers: [ipp('L1', CHU)],
      },
      {
        birthName: 'LEFEVRE',
        firstGivenName: 'PAUL',
        givenNames: ['PAUL'],
        sex: 'M',
        identifiers: [ipp('L2', CHU)],
      },
      {
        birthName: 'LEFEBVRE',
        firstGivenName: 'ANNE',
        birthDate: '1970-01-01',
        identifiers: [ipp('L3', CHU)],
      },
      {
        birthName: 'LE FEVRE',
        firstGivenName: 'JULES',
        birthDate: '1971-01-01',
        identifiers: [ipp('L4', CHU)],
      },
      { birthName: 'DUPONT', usedName: 'LEFORT', birthDate: '1972-01-01', identifiers: [ipp('L5', CHU)] },
      {
        birthName: 'LEGRAND',
        birthDate: '1973-01-01',
        ins: INS,
        reliability: 'QUAL',
        identifiers: [ipp('L6', CHU)],
      },
      { birthName: 'MARTIN', birthDate: '1974-01-01', identifiers: [ipp('L7', CHU)] },
    ];
    const names = (q: string) => f.patients.search(q).items.map((p) => p.birthName);
    beforeEach(() =>
      people.forEach((p) => f.vigilance.applyIdentity(identity(p), { insOids: acceptedInsOids() })),
    );

    const cases: Array<[string, string[]]> = [
      ['lefevre', ['Lefèvre', 'LEFEVRE']],
      ['LÉFÈV', ['Lefèvre', 'LEFEVRE']],
      ['lefevre, hel', ['Lefèvre']],
      ['le f', ['LE FEVRE']],
      ['lefo', ['DUPONT']],
      ['hélène', ['Lefèvre']],
      ['fevre', ['LE FEVRE']],
      ['258033155512345', ['LEGRAND']],
      ['L7', ['MARTIN']],
      ['zz', []],
    ];
    for (const [q, expected] of cases) {
      it(`"${q}" finds ${expected.join(', ') || 'nobody'}`, () => assert.deepEqual(names(q), expected));
    }

    it('pages through every match once, in name order', () => {
      const seen: string[] = [];
      let next: string | null = null;
      do {
        const page = f.patients.search('le', { limit: 2, after: next });
        seen.push(...page.items.map((p) => p.birthName));
        next = page.next;
      } while (next !== null);
      assert.deepEqual(seen, ['LE FEVRE', 'LEFEBVRE', 'Lefèvre', 'LEFEVRE', 'DUPONT', 'LEGRAND']);
    });

    it('finds an IPP under every establishment that uses it', () => {
      create({ birthName: 'DURAND', identifiers: [ipp('L7', CLINIC)] });
      create({ birthName: 'ROUX', identifiers: [ipp('L7', '820000016')] });
      assert.deepEqual(names('L7').sort(), ['DURAND', 'MARTIN', 'ROUX']);
    });

    it('forgets the names a patient no longer has, birth and used', () => {
      const id = create({ birthName: 'MARTAN', usedName: 'DUVAL', identifiers: [ipp('R1', CHU)] });
      create({ birthName: 'MARTINEAU', usedName: 'DUVALLON', identifiers: [ipp('R1', CHU)] });
      assert.deepEqual([names('martan'), names('duval')], [[], ['MARTINEAU']]);
      f.patients.writeUsedNames(id, 'BLANC', null, by);
      assert.deepEqual([names('duval'), names('blanc')], [[], ['MARTINEAU']]);
    });

    it('indexes the patients of a store opened before given names were searchable', () => {
      f.db.exec('DELETE FROM patient_search; INSERT INTO patient_search_pending SELECT id FROM patients');
      assert.deepEqual(names('hélène'), []);
      f.patients = new PatientStore(f.db);
      assert.deepEqual(names('hélène'), ['Lefèvre']);
      assert.deepEqual(names('lefo'), ['DUPONT']);
    });

    it('asks for more letters than one, and refuses a forged cursor', () => {
      assert.throws(() => f.patients.search('l'), { code: 'SEARCH_TOO_SHORT' });
      assert.throws(() => f.patients.search('le', { after: 'bm90IGEgY3Vyc29y' }), { code: 'CURSOR_INVALID' });
    });
  });

  describe('identity input', () => {
    const dates: Array<[string, string | null]> = [
      ['19580314', '1958-03-14'],
      ['1958-03-14', '1958-03-14'],
      ['195803141030', '1958-03-14'],
      ['1958', '1958'],
      ['195803', '1958-03'],
      ['19580230', null],
      ['14/03/1958', null],
    ];
    for (const [raw, expected] of dates) {
      it(`birth date ${raw} ${expected ? `reads as ${expected}` : 'is refused'}`, () => {
        if (expected) assert.equal(parseIdentity(identity({ birthDate: raw })).birthDate, expected);
        else assert.throws(() => parseIdentity(identity({ birthDate: raw })), { code: 'IDENTITY_INVALID' });
      });
    }

    it('takes the INS of a patient born in Corsica (2A, 2B), refuses a malformed one', () => {
      const ins = (matricule: string) => ({ matricule, oid: NIR_OID });
      assert.equal(
        parseIdentity(identity({ ins: ins('271122A00401044') })).ins?.matricule,
        '271122A00401044',
      );
      assert.throws(() => parseIdentity(identity({ ins: ins('27112ZZ00401044') })), {
        code: 'IDENTITY_INVALID',
      });
    });

    it('refuses a name longer than a comparison looks at, naming the field and the length', () => {
      assert.throws(() => parseIdentity(identity({ birthName: 'A'.repeat(200_000) })), {
        code: 'IDENTITY_INVALID',
        message: 'identity field birthName is 200000 characters; at most 100 are allowed',
      });
      assert.equal(parseIdentity(identity({ birthName: 'A'.repeat(100) })).birthName.length, 100);
    });

    it('reads its own reliability codes, anything else as PROV, and unknown sexes', () => {
      assert.equal(parseIdentity(identity({ reliability: 'dout' })).reliability, 'DOUT');
      assert.equal(parseIdentity(identity({ reliability: 'VIDE' })).reliability, 'PROV');
      assert.equal(parseIdentity(identity({ reliability: 'toString' })).reliability, 'PROV');
      assert.equal(parseIdentity(identity({ sex: 'I' })).sex, 'U');
    });
  });
});
