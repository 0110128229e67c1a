import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mapPamFr, pamFrStep, PamError, IDENTITY_CONTENT_TYPE } from '../../transformers/pam-fr.ts';
import type { IdentityEvent, PamErrorCode, PatientIdentity } from '../../transformers/pam-fr.ts';
import { parse } from '../../transformers/hl7v2.ts';
import { StepError } from '../../transformers/contract.ts';

const fixture = (name: string): Buffer => readFileSync(new URL(`../fixtures/hl7/${name}`, import.meta.url));
const map = (bytes: Buffer | string): IdentityEvent[] => mapPamFr(parse(bytes), { acceptTestIns: true });
const only = (events: IdentityEvent[]): IdentityEvent => {
  assert.equal(events.length, 1);
  return events[0] as IdentityEvent;
};
const upserted = (bytes: Buffer | string): PatientIdentity => {
  const event = only(map(bytes));
  assert.equal(event.kind, 'upsert');
  return (event as Extract<IdentityEvent, { kind: 'upsert' }>).patient;
};

// A minimal PAM FR message with one PID; `pid` replaces fields by number.
function message(event: string, pid: Record<number, string> = {}, extra: string[] = []): string {
  const fields: Record<number, string> = {
    1: '1',
    3: 'IPP9^^^HOP&750000001&M^PI',
    5: 'NOM^Prenom^^^^^L',
    7: '19700101',
    8: 'M',
    32: 'PROV',
    ...pid,
  };
  const last = Math.max(...Object.keys(fields).map(Number));
  const pidLine = ['PID', ...Array.from({ length: last }, (_, i) => fields[i + 1] ?? '')].join('|');
  return [
    `MSH|^~\\&|GAM|HOP|ONCO|DCC|20250102||ADT^${event}^ADT_A01|C-${event}|P|2.5^FRA^2.11|||||FRA|UNICODE UTF-8`,
    'EVN||20250102',
    pidLine,
    ...extra,
    '',
  ].join('\r');
}

function refusal(
  text: string,
  code: PamErrorCode,
  location?: string,
  options = { acceptTestIns: true },
): PamError {
  let caught: unknown;
  try {
    mapPamFr(parse(text), options);
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof PamError, `expected ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code);
  if (location !== undefined) assert.equal(caught.location, location);
  assert.ok(caught.hint.length > 0);
  return caught;
}

describe('PAM FR identity mapping', () => {
  it('maps an A28 with INS, strict traits, used name, birth place, reliability and collection mode', () => {
    const event = only(map(fixture('a28-utf8.hl7')));
    assert.deepEqual(event, {
      kind: 'upsert',
      source: {
        event: 'A28',
        controlId: 'T0001',
        sendingApp: 'GAM-TEST',
        sendingFacility: 'HOP-TEST',
        messageDateTime: '20250102103000',
      },
      patient: {
        identifiers: [
          { value: 'IPP0001', type: 'PI', namespace: 'HOP-TEST', authority: '750000001', authorityType: 'M' },
        ],
        ins: { matricule: '285057505612338', oid: '1.2.250.1.213.1.4.10', kind: 'INS-NIR-TEST' },
        birthName: 'LÉGER',
        firstGivenName: 'Zoé',
        givenNames: ['Zoé', 'Amélie'],
        birthDate: '1985-05-12',
        sex: 'F',
        birthPlace: '75056',
        usedName: 'MARTIN-LÉGER',
        usedGivenName: 'Zoé',
        reliability: { status: 'QUAL', codes: ['QUAL'], doubtful: false, fictitious: false },
        collectionMode: 'INSI',
        deceased: false,
      },
    });
  });

  it('maps the same identity whatever the charset it travelled in', () => {
    assert.equal(upserted(fixture('a28-8859-1.hl7')).birthName, 'FRANÇOIS');
    const latin9 = upserted(fixture('a31-8859-15.hl7'));
    assert.equal(latin9.birthName, 'CŒUR');
    assert.deepEqual(latin9.givenNames, ['Léon'], 'no XPN-3: the first given name is the list');
    assert.equal(latin9.collectionMode, 'CV');
    assert.equal(latin9.reliability.status, 'VALI');
  });

  it('takes the identity from every event carrying PID (ITI-30 and ITI-31) and ignores the movement', () => {
    for (const event of ['A28', 'A31', 'A08', 'A01', 'A03', 'A04', 'A05', 'A11', 'A13', 'Z99']) {
      const out = only(map(message(event, {}, ['PV1|1|I'])));
      assert.equal(out.kind, 'upsert', event);
      assert.equal(out.source.event, event);
    }
  });

  it('accepts partial birth dates and a date-time, and Corsican INSEE codes', () => {
    assert.equal(upserted(fixture('a28-no-charset-latin1.hl7').toString('latin1')).birthDate, '1971');
    assert.equal(upserted(fixture('a28-no-charset-latin1.hl7').toString('latin1')).birthPlace, '2A004');
    assert.equal(upserted(message('A28', { 7: '197002' })).birthDate, '1970-02');
    assert.equal(upserted(message('A28', { 7: '197002281230+0100' })).birthDate, '1970-02-28');
  });

  it('maps sex codes to M, F or I and reads both reliability vocabularies', () => {
    assert.equal(upserted(message('A28', { 8: 'U' })).sex, 'I');
    assert.equal(upserted(message('A28', { 8: '' })).sex, undefined);
    assert.deepEqual(upserted(message('A28', { 32: 'VIDE' })).reliability, {
      status: 'PROV',
      codes: ['VIDE'],
      doubtful: false,
      fictitious: false,
    });
    assert.equal(upserted(message('A28', { 32: 'RECUP' })).reliability.status, 'RECUP');
    assert.deepEqual(upserted(message('A28', { 32: 'VALI~DOUTE' })).reliability, {
      status: 'VALI',
      codes: ['VALI', 'DOUTE'],
      doubtful: true,
      fictitious: false,
    });
    assert.equal(upserted(message('A28', { 32: 'FICT' })).reliability.fictitious, true);
    assert.equal(
      upserted(message('A28', { 32: 'QUAL~PROV' })).reliability.status,
      'PROV',
      'contradictory statuses: the lowest wins',
    );
  });

  it('keeps every IPP with its FINESS and other identifiers, the INS apart', () => {
    const p = upserted(
      message('A28', {
        3: 'IPP1^^^HOP-A&750000001&M^PI~IPP2^^^HOP-B&130000002&M^PI~NH9^^^CPAM&1.2.3&ISO^NH',
      }),
    );
    assert.deepEqual(
      p.identifiers.map((id) => [id.type, id.value, id.authority]),
      [
        ['PI', 'IPP1', '750000001'],
        ['PI', 'IPP2', '130000002'],
        ['NH', 'NH9', '1.2.3'],
      ],
    );
    assert.equal(p.ins, undefined);
  });

  it('maps an A40 with two PID/MRG pairs to two merges', () => {
    const events = map(fixture('a40-merge.hl7'));
    assert.deepEqual(
      events.map((e) => {
        assert.equal(e.kind, 'merge');
        const m = e as Extract<IdentityEvent, { kind: 'merge' }>;
        return [m.survivor.identifiers[0]?.value, m.merged.identifiers.map((id) => id.value)];
      }),
      [
        ['IPP0010', ['IPP0011']],
        ['IPP0020', ['IPP0021', 'IPP0022']],
      ],
    );
  });

  it('maps an A47 to an identifier change from MRG-1 to the PID-3 identifier of the same authority', () => {
    const event = only(map(fixture('a47-change-ipp.hl7')));
    assert.equal(event.kind, 'change-identifier');
    const change = event as Extract<IdentityEvent, { kind: 'change-identifier' }>;
    assert.deepEqual(
      [change.from.value, change.to.value, change.to.authority],
      ['IPP0030', 'IPP0031', '750000001'],
    );
  });

  it('maps A24 and A37 to link and unlink of the two PIDs', () => {
    for (const [file, kind] of [
      ['a24-link.hl7', 'link'],
      ['a37-unlink.hl7', 'unlink'],
    ] as const) {
      const event = only(map(fixture(file)));
      assert.equal(event.kind, kind);
      const pair = event as Extract<IdentityEvent, { kind: 'link' | 'unlink' }>;
      assert.deepEqual(
        [pair.a.identifiers[0]?.value, pair.b.identifiers[0]?.value, pair.b.ins?.kind],
        ['IPP0040', 'IPP0041', 'INS-NIR-TEST'],
      );
    }
  });

  it('refuses non-ADT messages and unknown events with AR and the matching table 0357 code', () => {
    const oru = message('R01').replace('ADT^R01^ADT_A01', 'ORU^R01^ORU_R01');
    const e1 = refusal(oru, 'PAM_UNSUPPORTED_MESSAGE', 'MSH-9');
    assert.deepEqual([e1.ackCode, e1.hl7Code], ['AR', '200']);
    const e2 = refusal(message('A34'), 'PAM_UNKNOWN_EVENT', 'MSH-9.2');
    assert.deepEqual([e2.ackCode, e2.hl7Code], ['AR', '201']);
  });

  it('refuses content the sender must correct with AE, naming the field', () => {
    const noPid = message('A28').replace(/PID\|[^\r]*\r/, '');
    const cases: [string, PamErrorCode, string][] = [
      [noPid, 'PAM_MISSING_PID', 'PID'],
      [message('A28', { 3: 'NH9^^^CPAM&1.2.3&ISO^NH' }), 'PAM_MISSING_IPP', 'PID-3'],
      [message('A28', { 3: 'IPP1^^^^PI' }), 'PAM_BAD_IDENTIFIER', 'PID-3[1].4'],
      [message('A28', { 5: '^Prenom^^^^^L' }), 'PAM_MISSING_BIRTH_NAME', 'PID-5'],
      [message('A28', { 7: '19701332' }), 'PAM_BAD_DATE', 'PID-7'],
      [message('A28', { 7: '19700229' }), 'PAM_BAD_DATE', 'PID-7'],
      [message('A28', { 7: 'hier' }), 'PAM_BAD_DATE', 'PID-7'],
      [message('A28', { 8: 'X' }), 'PAM_BAD_SEX', 'PID-8'],
      [message('A28', { 11: '^^^^^^BDL^^Paris' }), 'PAM_BAD_BIRTH_PLACE', 'PID-11.9'],
      [message('A28', { 32: 'SURE' }), 'PAM_BAD_RELIABILITY', 'PID-32'],
      [message('A28', {}, ['ZFD|||||FAX']), 'PAM_BAD_COLLECTION_MODE', 'ZFD-5'],
      [message('A40'), 'PAM_MISSING_MRG', 'PID[1]'],
      [
        message('A47', { 3: 'IPP1^^^HOP&750000001&M^PI' }, ['MRG|OLD^^^OTHER&130000002&M^PI']),
        'PAM_BAD_IDENTIFIER',
        'PID-3',
      ],
      [message('A24'), 'PAM_BAD_STRUCTURE', 'PID'],
      [message('A28', { 7: '' }), 'PAM_MISSING_BIRTH_DATE', 'PID-7'],
      [message('A28', { 5: 'NOM^^^^^^L' }), 'PAM_MISSING_GIVEN_NAME', 'PID-5.2'],
      [message('A28', { 3: 'IPP1^^^HOP&1.2.3&ISO^PI' }), 'PAM_IPP_WITHOUT_FINESS', 'PID-3[1].4.2'],
      [message('A28', { 3: 'IPP1^^^HOP^PI' }), 'PAM_IPP_WITHOUT_FINESS', 'PID-3[1].4.2'],
      [message('A28', { 30: 'X' }), 'PAM_BAD_DEATH', 'PID-30'],
      [message('A47', {}, ['MRG|NH9^^^CPAM&1.2.3&ISO^NH']), 'PAM_MISSING_MRG', 'MRG-1'],
    ];
    for (const [text, code, location] of cases)
      assert.equal(refusal(text, code, location).ackCode, 'AE', code);
  });

  it('refuses a field longer than PAM FR allows, naming it and the limit, before any other check', () => {
    const long = 'A'.repeat(200_000);
    const e = refusal(message('A28', { 5: `${long}^Prenom^^^^^L` }), 'PAM_FIELD_TOO_LONG', 'PID-5[1].1');
    assert.equal(e.message, 'PID-5[1].1 is 200000 characters; PAM FR allows at most 100');
    assert.equal(e.ackCode, 'AE');
    refusal(message('A28', { 3: `${long}^^^HOP&750000001&M^PI` }), 'PAM_FIELD_TOO_LONG', 'PID-3[1].1');
    refusal(message('A28', { 5: `NOM^Prenom^${long}^^^^L` }), 'PAM_FIELD_TOO_LONG', 'PID-5[1].3');
    assert.equal(upserted(message('A28', { 5: `${'B'.repeat(100)}^Prenom^^^^^L` })).birthName.length, 100);
  });

  it('maps the death date and indicator (PID-29, PID-30)', () => {
    const p = upserted(message('A28', { 29: '20240102', 30: 'Y' }));
    assert.deepEqual([p.deathDate, p.deceased], ['2024-01-02', true]);
    assert.equal(upserted(message('A28')).deceased, undefined);
  });

  it('checks the INS: OID, control key, and test OIDs only when allowed', () => {
    const ins = (value: string, oid: string): string =>
      message('A28', { 3: `IPP1^^^HOP&750000001&M^PI~${value}^^^ASIP-SANTE-INS-NIR&${oid}&ISO^INS` });
    assert.equal(upserted(ins('285057505612338', '1.2.250.1.213.1.4.8')).ins?.kind, 'INS-NIR');
    assert.equal(
      upserted(ins('271122A00401044', '1.2.250.1.213.1.4.8')).ins?.matricule,
      '271122A00401044',
      'Corsica: 2A counts as 19 in the key',
    );
    refusal(ins('285057505612339', '1.2.250.1.213.1.4.8'), 'PAM_BAD_INS', 'PID-3[2].1');
    refusal(ins('285057505612338', '1.2.3.4'), 'PAM_BAD_INS', 'PID-3[2].4.2');
    const test = ins('285057505612338', '1.2.250.1.213.1.4.10');
    refusal(test, 'PAM_TEST_INS', 'PID-3[2].4.2', { acceptTestIns: false });
  });
});

describe('pam-fr step', () => {
  it('outputs the identity events as JSON with the identity content type', async () => {
    const step = pamFrStep.create({ acceptTestIns: true });
    const out = await step({
      content: fixture('a40-merge.hl7'),
      contentType: 'application/hl7-v2',
      meta: { file: 'm.hl7' },
    });
    assert.ok(out);
    assert.equal(out.contentType, IDENTITY_CONTENT_TYPE);
    assert.deepEqual(out.meta, {
      file: 'm.hl7',
      pamEvent: 'A40',
      identityEvents: 2,
      hl7Messages: 1,
      controlId: 'T0005',
      ipp: '750000001/IPP0010,750000001/IPP0011,750000001/IPP0020,750000001/IPP0021,750000001/IPP0022',
      ins: '285057505612338',
    });
    const events = JSON.parse(out.content.toString('utf8')) as IdentityEvent[];
    assert.deepEqual(
      events.map((e) => e.kind),
      ['merge', 'merge'],
    );
  });

  it('maps every message of a file with several, in order, and refuses the whole file naming the bad one', async () => {
    const step = pamFrStep.create({ acceptTestIns: true });
    const two = Buffer.concat([fixture('a28-utf8.hl7'), fixture('a40-merge.hl7')]);
    const out = await step({ content: two, contentType: 'application/hl7-v2', meta: {} });
    assert.ok(out);
    const events = JSON.parse(out.content.toString('utf8')) as IdentityEvent[];
    assert.deepEqual(
      events.map((e) => e.kind),
      ['upsert', 'merge', 'merge'],
    );
    assert.equal(out.meta.hl7Messages, 2);
    const broken = Buffer.concat([
      fixture('a28-utf8.hl7'),
      Buffer.from('MSH|^~\\&|X|Y|||20240101||ADT^A99|1|P|2.5\r'),
    ]);
    await assert.rejects(
      async () => step({ content: broken, contentType: 'application/hl7-v2', meta: {} }),
      (e: unknown) => e instanceof StepError && /^message 2 of 2: /.test(e.message),
    );
  });

  it('fails with a StepError whose code is the refusal code (or the parser code)', async () => {
    const step = pamFrStep.create({});
    await assert.rejects(
      async () => step({ content: fixture('a28-utf8.hl7'), contentType: 'application/hl7-v2', meta: {} }),
      (e: unknown) =>
        e instanceof StepError && e.code === 'PAM_TEST_INS' && /ONCO_ACCEPT_TEST_INS=true/.test(e.hint ?? ''),
    );
    await assert.rejects(
      async () =>
        step({ content: fixture('a28-no-charset-latin1.hl7'), contentType: 'application/hl7-v2', meta: {} }),
      (e: unknown) => e instanceof StepError && e.code === 'HL7_CHARSET_INVALID_BYTES',
    );
  });
});
