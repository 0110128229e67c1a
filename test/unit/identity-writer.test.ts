import assert from 'node:assert/strict';
import { acceptedInsOids, SenderScope } from '../../connectors/identity-writer.ts';
import { mapPamFr } from '../../transformers/pam-fr.ts';
import { parse } from '../../transformers/hl7v2.ts';
import { a28, a40 } from '../support/pam.ts';

const directory = {
  establishments: [
    { finess: '310000001', kind: 'hospital' },
    { finess: '310000004', kind: 'hospital', reportsFor: ['310000001'] },
    { finess: '310000005', kind: 'hospital' },
    { finess: '310000002', kind: 'pathology-lab' },
    { finess: '310000003', kind: 'molecular-lab', reportsFor: [] },
  ],
};
const person = { birthName: 'NOM', given: 'ANNE', birthDate: '19600101', sex: 'F' } as const;
const events = (finess: string) => mapPamFr(parse(a28({ ...person, ipp: 'I1', finess }, 'C1')));

describe('identity writer: who may file under which FINESS', () => {
  const scope = new SenderScope(directory);
  const cases: Array<[string, string | null, string, string | null]> = [
    ['its own FINESS', '310000001', '310000001', null],
    ['another establishment', '310000001', '310000005', 'IDENTITY_FINESS_NOT_GRANTED'],
    ['an establishment granted by reportsFor', '310000004', '310000001', null],
    ['one not in its reportsFor', '310000004', '310000005', 'IDENTITY_FINESS_NOT_GRANTED'],
    ['a lab, by default every establishment', '310000002', '310000005', null],
    ['a lab whose grants were taken away', '310000003', '310000005', 'IDENTITY_FINESS_NOT_GRANTED'],
    ['no owner (unbound listener): any of the directory', null, '310000005', null],
    ['no owner: none outside the directory', null, '000897406', 'IDENTITY_FINESS_UNKNOWN'],
    ['a sender outside the directory', '999999999', '999999999', 'IDENTITY_FINESS_UNKNOWN'],
  ];
  for (const [name, owner, finess, code] of cases) {
    it(`${name}: ${code ?? 'filed'}`, () => {
      if (code === null) scope.check(events(finess), owner);
      else assert.throws(() => scope.check(events(finess), owner), { code, retryable: false });
    });
  }

  it('checks the merged IPP of an A40 too', () => {
    const merge = mapPamFr(parse(a40({ ...person, ipp: 'I1', finess: '310000001' }, 'I2', 'C2')));
    scope.check(merge, '310000001');
    assert.throws(() => scope.check(merge, '310000005'), { code: 'IDENTITY_FINESS_NOT_GRANTED' });
  });
});

describe('identity writer: the INS OIDs the store is given', () => {
  it('passes the national OIDs, and the test and demo ones only with acceptTestIns', () => {
    assert.deepEqual(acceptedInsOids(), ['1.2.250.1.213.1.4.8', '1.2.250.1.213.1.4.9']);
    assert.deepEqual(acceptedInsOids({ acceptTestIns: false }), acceptedInsOids());
    assert.deepEqual(acceptedInsOids({ acceptTestIns: true }), [
      '1.2.250.1.213.1.4.8',
      '1.2.250.1.213.1.4.9',
      '1.2.250.1.213.1.4.10',
      '1.2.250.1.213.1.4.11',
    ]);
  });
});
