// The CDA writers as pure functions of their model, without the kit: escaping, determinism,
// identities in recordTarget, coded versus uncoded values, the version chain and input errors.
// Their conformance to the agency's XSD and schematrons is proved in ans-cda.test.ts.
import assert from 'node:assert/strict';
import { writeFrcp } from '../../transformers/cda-frcp.ts';
import { writePps } from '../../transformers/cda-pps.ts';
import { StepError } from '../../transformers/contract.ts';
import { attr, descendants, element, elements, parseXml, text } from '../../transformers/xml.ts';
import type { XmlElement } from '../../transformers/xml.ts';
import {
  HOSTILE_TEXT,
  correctedForm,
  correctedPps,
  fullForm,
  fullPps,
  hostileForm,
  minimalUncodedForm,
  minimalUncodedPps,
} from '../fixtures/documents/rcp-forms.ts';

// The product's XML reader: it refuses anything that is not well-formed, so parsing is itself a check.
const parse = (xml: string): XmlElement => parseXml(xml);

function byId(doc: XmlElement, id: string): XmlElement {
  const found = descendants(doc, 'content').find((c) => attr(c, 'ID') === id);
  assert.ok(found !== undefined, `no <content ID="${id}">`);
  return found;
}

describe('CDA writers (FRCP, PPS): pure content', () => {
  it('keeps markup, entities and quotes in free text as text (no XML injection)', () => {
    const xml = writeFrcp(hostileForm);
    const doc = parse(xml);
    assert.equal(descendants(doc, 'evil').length, 0, 'an element was injected');
    assert.equal(descendants(doc, 'script').length, 0, 'an element was injected');
    assert.equal(byId(doc, 'question').children.join(''), HOSTILE_TEXT);
    assert.equal(text(element(doc, 'recordTarget/patientRole/patient/name/family')), `O"BRIEN<&>`);
    assert.equal(attr(element(doc, 'recordTarget/patientRole/id'), 'extension'), `IPP"<&>`);
    assert.equal(text(element(doc, 'title')), `ONCO-OCCITANIE / 3C CHU Sud / Sein & "gynéco" <2>`);
  });

  it('refuses a control character that XML cannot carry, naming it, with a hint', () => {
    assert.throws(
      () => writeFrcp({ ...fullForm, question: 'avant\u0007après' }),
      (error: unknown) =>
        error instanceof StepError &&
        error.code === 'CDA_INVALID_CHARACTER' &&
        error.message.includes('U+0007') &&
        error.hint !== undefined,
    );
  });

  it('is a pure function: the same form gives the same bytes, with the ids, times and version given', () => {
    assert.equal(writeFrcp(fullForm), writeFrcp(structuredClone(fullForm)));
    assert.equal(writePps(fullPps), writePps(structuredClone(fullPps)));
    const doc = parse(writeFrcp(fullForm));
    assert.deepEqual(
      elements(doc, 'id').map((i) => [attr(i, 'root'), attr(i, 'extension')]),
      [[fullForm.id.root, fullForm.id.extension]],
    );
    assert.equal(attr(element(doc, 'effectiveTime'), 'value'), fullForm.effectiveTime);
    assert.equal(attr(element(doc, 'versionNumber'), 'value'), '1');
  });

  it('writes the INS and the IPP under the establishment OID in recordTarget, and only the IPP without a qualified INS', () => {
    const ids = (form: typeof fullForm): string[][] =>
      elements(parse(writeFrcp(form)), 'recordTarget/patientRole/id').map((i) => [
        attr(i, 'root') ?? '',
        attr(i, 'extension') ?? '',
      ]);
    assert.deepEqual(ids(fullForm), [
      ['1.2.250.1.213.1.4.10', '279035121518989'],
      ['1.2.250.1.71.4.2.2.310000001', 'IPP-000123'],
    ]);
    assert.deepEqual(ids(minimalUncodedForm), [['1.2.250.1.71.4.2.2.310000001', 'IPP-000123']]);
    const patient = element(parse(writeFrcp(fullForm)), 'recordTarget/patientRole/patient') as XmlElement;
    const given = elements(patient, 'name/given').map((g) => [attr(g, 'qualifier'), text(g)]);
    assert.deepEqual(given, [
      [undefined, 'CAMILLE MARIE'],
      ['BR', 'CAMILLE'],
    ]);
    assert.equal(text(element(patient, 'birthplace/place/addr/county')), '51215');
  });

  it('codes the diagnosis when the form is coded (ICD-10 topography, ICD-O-3 morphology, TNM) and keeps the words when not', () => {
    const coded = parse(writeFrcp(fullForm));
    const site = descendants(coded, 'targetSiteCode')[0];
    assert.equal(attr(site, 'code'), 'C50.2');
    assert.equal(attr(site, 'codeSystem'), '2.16.840.1.113883.6.3');
    const values = descendants(coded, 'value').map((v) => attr(v, 'code'));
    for (const code of ['8500/3', 'T1c', 'N0', 'M0'])
      assert.ok(values.includes(code), `${code} not among ${values.join(' ')}`);
    const procedures = descendants(coded, 'procedure').map((p) => attr(element(p, 'code'), 'code'));
    assert.deepEqual(procedures, ['C15313', 'C547']);
    const uncoded = parse(writeFrcp(minimalUncodedForm));
    const siteText = descendants(uncoded, 'targetSiteCode')[0];
    assert.equal(attr(siteText, 'nullFlavor'), 'OTH');
    assert.equal(text(siteText), 'Côlon, sans précision');
    assert.equal(
      attr(element(descendants(uncoded, 'procedure')[0] as XmlElement, 'code'), 'code'),
      'GEN-092.03.01',
    );
  });

  it('writes PPS acts with their kind and value-set value, an uncoded one as the set\'s "other" value with its words', () => {
    const qualifiers = (xml: string): Array<[string | undefined, string | undefined, string]> =>
      descendants(parse(xml), 'procedure').map((p) => {
        const code = element(p, 'code');
        const value = element(p, 'code/qualifier/value');
        return [attr(code, 'code'), attr(value, 'code'), attr(element(p, 'text/reference'), 'value') ?? ''];
      });
    assert.deepEqual(qualifiers(writePps(fullPps)), [
      ['MED-568', '387713003', '#traitement-1'],
      ['MED-568', 'C15313', '#traitement-2'],
      ['MED-571', '11429006', '#suivi-1'],
      ['MED-571', 'MED-092', '#suivi-2'],
      ['MED-572', 'ORG-036', '#support-1'],
    ]);
    const minimal = parse(writePps(minimalUncodedPps));
    assert.deepEqual(
      qualifiers(writePps(minimalUncodedPps)).map(([kind, value]) => [kind, value]),
      [
        ['MED-568', 'GEN-092.03.01'],
        ['MED-571', 'GEN-092.04.06'],
        ['MED-572', 'GEN-092.04.07'],
      ],
    );
    assert.match(text(byId(minimal, 'support-1')), /Socio-esthétique/);
    const gp = elements(parse(writePps(fullPps)), 'participant').filter(
      (p) => attr(element(p, 'functionCode'), 'code') === 'PCP',
    );
    assert.deepEqual(
      gp.map((p) => text(element(p, 'associatedEntity/associatedPerson/name/family'))),
      ['GENERALE'],
    );
  });

  it('writes a correction as the next version of the same set, replacing the previous one (RPLC)', () => {
    for (const [xml, previous] of [
      [writeFrcp(correctedForm), fullForm],
      [writePps(correctedPps), fullPps],
    ] as const) {
      const doc = parse(xml);
      assert.equal(attr(element(doc, 'versionNumber'), 'value'), '2');
      assert.equal(attr(element(doc, 'setId'), 'extension'), previous.setId.extension);
      assert.equal(attr(element(doc, 'relatedDocument'), 'typeCode'), 'RPLC');
      assert.equal(
        attr(element(doc, 'relatedDocument/parentDocument/id'), 'extension'),
        previous.id.extension,
      );
    }
    assert.equal(elements(parse(writeFrcp(fullForm)), 'relatedDocument').length, 0);
  });

  it('refuses a version chain that does not hold, saying how to number versions', () => {
    const refused = (error: unknown): boolean =>
      error instanceof StepError &&
      error.code === 'CDA_BAD_VERSION' &&
      (error.hint ?? '').includes('replaces');
    assert.throws(() => writeFrcp({ ...correctedForm, replaces: undefined }), refused);
    assert.throws(() => writePps({ ...fullPps, replaces: correctedPps.id }), refused);
    assert.throws(
      () => writeFrcp({ ...fullForm, version: 0 }),
      (e: unknown) => e instanceof StepError && e.code === 'CDA_BAD_VERSION',
    );
  });
});
