// The CDA writers as pure functions of their model, without the kit: escaping, determinism,
// identities in recordTarget, coded versus uncoded values, the version chain and input errors.
// Their conformance to the agency's XSD and schematrons is proved in ans-cda.test.ts.
import assert from 'node:assert/strict';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { writeFrcp } from '../../transformers/cda-frcp.ts';
import { writePps } from '../../transformers/cda-pps.ts';
import { StepError } from '../../transformers/contract.ts';
import {
  HOSTILE_TEXT,
  correctedForm,
  correctedPps,
  fullForm,
  fullPps,
  hostileForm,
  minimalUncodedForm,
} from '../fixtures/documents/rcp-forms.ts';

type Node = { [key: string]: unknown };

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: false,
  processEntities: true,
  htmlEntities: false,
  isArray: (_name: string, _path: unknown, _leaf: boolean, isAttribute: boolean) => !isAttribute,
});

function parse(xml: string): Node {
  const valid = XMLValidator.validate(xml);
  assert.equal(valid, true, `not well-formed: ${JSON.stringify(valid)}`);
  return parser.parse(xml) as Node;
}

/** Every element named `name` anywhere under `node`. */
function all(node: unknown, name: string): Node[] {
  // Text-only elements parse to strings: callers read them with text().
  if (Array.isArray(node)) return node.flatMap((n) => all(n, name));
  if (node === null || typeof node !== 'object') return [];
  return Object.entries(node as Node).flatMap(([key, value]) =>
    key === name ? [...(value as Node[]), ...all(value, name)] : key.startsWith('@') ? [] : all(value, name),
  );
}

/** The text of an element (a text-only element parses to its string). */
function text(node: unknown): string {
  if (typeof node === 'string') return node;
  const inner = (node as Node | undefined)?.['#text'];
  return Array.isArray(inner) ? inner.join('') : String(inner ?? '');
}

function byId(doc: Node, id: string): Node {
  const found = all(doc, 'content').find((c) => c['@ID'] === id);
  assert.ok(found !== undefined, `no <content ID="${id}">`);
  return found;
}

describe('CDA writers (FRCP, PPS): pure content', () => {
  it('keeps markup, entities and quotes in free text as text (no XML injection)', () => {
    const xml = writeFrcp(hostileForm);
    const doc = parse(xml);
    assert.equal(all(doc, 'evil').length, 0, 'an element was injected');
    assert.equal(all(doc, 'script').length, 0, 'an element was injected');
    assert.equal(text(byId(doc, 'question')), HOSTILE_TEXT);
    const [family] = all(doc, 'family');
    assert.equal(family !== undefined && text(family), `O"BRIEN<&>`);
    const ipp = all(doc, 'patientRole').flatMap((r) => all(r, 'id'))[0];
    assert.equal(ipp?.['@extension'], `IPP"<&>`);
    assert.equal(text(all(doc, 'title')[0] ?? {}), `ONCO-OCCITANIE / 3C CHU Sud / Sein & "gynéco" <2>`);
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
    const root = all(doc, 'ClinicalDocument')[0] as Node;
    assert.deepEqual(
      (root['id'] as Node[]).map((i) => [i['@root'], i['@extension']]),
      [[fullForm.id.root, fullForm.id.extension]],
    );
    assert.equal((root['effectiveTime'] as Node[])[0]?.['@value'], fullForm.effectiveTime);
    assert.equal((root['versionNumber'] as Node[])[0]?.['@value'], '1');
  });

  it('writes the INS and the IPP under the establishment OID in recordTarget, and only the IPP without a qualified INS', () => {
    const ids = (form: typeof fullForm): string[][] =>
      all(all(parse(writeFrcp(form)), 'patientRole'), 'id').map((i) => [
        String(i['@root']),
        String(i['@extension']),
      ]);
    assert.deepEqual(ids(fullForm), [
      ['1.2.250.1.213.1.4.10', '279035121518989'],
      ['1.2.250.1.71.4.2.2.310000001', 'IPP-000123'],
    ]);
    assert.deepEqual(ids(minimalUncodedForm), [['1.2.250.1.71.4.2.2.310000001', 'IPP-000123']]);
    const patient = all(parse(writeFrcp(fullForm)), 'patient')[0] as Node;
    const given = all(patient, 'given').map((g) => [g['@qualifier'], text(g)]);
    assert.deepEqual(given, [
      [undefined, 'CAMILLE MARIE'],
      ['BR', 'CAMILLE'],
    ]);
    assert.equal(all(patient, 'county').map(text)[0], '51215');
  });

  it('codes the diagnosis when the form is coded (ICD-10 topography, ICD-O-3 morphology, TNM) and keeps the words when not', () => {
    const coded = parse(writeFrcp(fullForm));
    const site = all(coded, 'targetSiteCode')[0];
    assert.equal(site?.['@code'], 'C50.2');
    assert.equal(site?.['@codeSystem'], '2.16.840.1.113883.6.3');
    const values = all(coded, 'value').map((v) => v['@code']);
    for (const code of ['8500/3', 'T1c', 'N0', 'M0'])
      assert.ok(values.includes(code), `${code} not among ${values.join(' ')}`);
    const procedures = all(coded, 'procedure').map((p) => (p['code'] as Node[])[0]?.['@code']);
    assert.deepEqual(procedures, ['C15313', 'C547']);
    const uncoded = parse(writeFrcp(minimalUncodedForm));
    const siteText = all(uncoded, 'targetSiteCode')[0];
    assert.equal(siteText?.['@nullFlavor'], 'OTH');
    assert.equal(text(all(siteText, 'originalText')[0] ?? {}), 'Côlon, sans précision');
    const treatment = all(uncoded, 'procedure')[0];
    assert.equal((treatment?.['code'] as Node[])[0]?.['@code'], 'GEN-092.03.01');
  });

  it('writes a correction as the next version of the same set, replacing the previous one (RPLC)', () => {
    for (const [xml, previous] of [
      [writeFrcp(correctedForm), fullForm],
      [writePps(correctedPps), fullPps],
    ] as const) {
      const doc = parse(xml);
      const root = all(doc, 'ClinicalDocument')[0] as Node;
      assert.equal((root['versionNumber'] as Node[])[0]?.['@value'], '2');
      assert.equal((root['setId'] as Node[])[0]?.['@extension'], previous.setId.extension);
      const related = (root['relatedDocument'] as Node[])[0];
      assert.equal(related?.['@typeCode'], 'RPLC');
      assert.equal(all(related, 'id')[0]?.['@extension'], previous.id.extension);
    }
    assert.equal(all(parse(writeFrcp(fullForm)), 'relatedDocument').length, 0);
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
