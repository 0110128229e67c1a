// Conformance of the CDA documents we write against the national agency's oracle: the CDA XSD and
// the official CI-SIS schematrons (CANCER-FRCP and CANCER-PPS 2022.01), read from ONCO_ANS_KIT.
// Controls first: the kit's own examples must pass and deliberately broken copies must fail with
// the named asserts, or a "0 errors" on our documents would prove nothing. Every document is
// validated in one batch per schematron (compiling and starting Java is what costs).
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { writeFrcp } from '../../transformers/cda-frcp.ts';
import { writePps } from '../../transformers/cda-pps.ts';
import {
  correctedForm,
  correctedPps,
  fullForm,
  fullPps,
  hostileForm,
  minimalUncodedForm,
  minimalUncodedPps,
} from '../fixtures/documents/rcp-forms.ts';
import { AnsValidator, locateTools } from './ans-cda-validator.ts';
import { storeProducedDocuments } from '../support/documents-out.ts';
import type { CdaDocument, CdaKind, CdaReport } from './ans-cda-validator.ts';

/** Removes the `<component>` holding the section with this template (the first one). */
function withoutSection(xml: string, templateRoot: string): string {
  const at = xml.search(new RegExp(`<templateId root="${templateRoot.replace(/\./g, '\\.')}"\\s*/>`));
  assert.ok(at > 0, `section ${templateRoot} not found`);
  const start = xml.lastIndexOf('<component>', at);
  const tags = /<(\/?)component\b[^>]*>/g;
  tags.lastIndex = start;
  let depth = 0;
  for (let m = tags.exec(xml); m !== null; m = tags.exec(xml)) {
    depth += m[1] === '/' ? -1 : 1;
    if (depth === 0) return xml.slice(0, start) + xml.slice(tags.lastIndex);
  }
  throw new Error(`unbalanced <component> around ${templateRoot}`);
}

function replaceOnce(xml: string, from: string, to: string): string {
  assert.ok(xml.includes(from), `"${from}" not found`);
  return xml.replace(from, to);
}

const CARE_PLAN = '1.3.6.1.4.1.19376.1.5.3.1.3.36';

describe('ANS CDA conformance: CDA XSD and CI-SIS schematrons (FRCP, PPS)', function () {
  const tools = locateTools();
  let validator: AnsValidator | undefined;
  const reports = new Map<string, CdaReport>();
  const documents: CdaDocument[] = [];
  const examples: Record<CdaKind, string[]> = { FRCP: [], PPS: [] };

  before(async function () {
    if ('missing' in tools) {
      const what = tools.missing.join('; ');
      // CI must prove conformance: a runner without the kit or Java is broken, not excused.
      if (process.env.CI === 'true')
        throw new Error(
          `ANS_CONFORMANCE_UNAVAILABLE: the CDA conformance suite cannot run under CI: ${what}. ` +
            'Hint: .ci/run installs libsaxonhe-java, python3-lxml, libxml2-utils and a JRE, and points ONCO_ANS_KIT at ../shared/ans',
        );
      console.log(`    skipped: ${what}`);
      this.skip();
    }
    this.timeout(600_000);
    const exampleDir = path.join(tools.cdaKit, 'ExemplesCDA');
    const kitXml: Record<CdaKind, string> = { FRCP: '', PPS: '' };
    for (const kind of ['FRCP', 'PPS'] as const) {
      for (const name of readdirSync(exampleDir).filter((n) => n.startsWith(`CANCER-${kind}_2022.01_`))) {
        const xml = readFileSync(path.join(exampleDir, name), 'utf8');
        examples[kind].push(name);
        documents.push({ name, kind, xml });
        kitXml[kind] ||= xml;
      }
    }
    const ourFrcp = writeFrcp(fullForm);
    const frcp = (name: string, xml: string): CdaDocument => ({ name, kind: 'FRCP', xml });
    const pps = (name: string, xml: string): CdaDocument => ({ name, kind: 'PPS', xml });
    documents.push(
      frcp('ours-frcp-full.xml', ourFrcp),
      frcp('ours-frcp-minimal-uncoded.xml', writeFrcp(minimalUncodedForm)),
      frcp('ours-frcp-v2-replacement.xml', writeFrcp(correctedForm)),
      frcp('ours-frcp-hostile-text.xml', writeFrcp(hostileForm)),
      pps('ours-pps-full.xml', writePps(fullPps)),
      pps('ours-pps-minimal-uncoded.xml', writePps(minimalUncodedPps)),
      pps('ours-pps-v2-replacement.xml', writePps(correctedPps)),
      // What the appliance sends: validated in the store, taken from the outbox, written by rcp-cda.
      ...(await storeProducedDocuments()),
      frcp(
        'broken-kit-frcp.xml',
        withoutSection(replaceOnce(kitXml.FRCP, 'code="34794-8"', 'code="11488-4"'), CARE_PLAN),
      ),
      pps('broken-kit-pps.xml', replaceOnce(kitXml.PPS, 'code="18776-5"', 'code="11488-4"')),
      frcp('broken-ours-frcp-value-set.xml', replaceOnce(ourFrcp, 'code="ORG-117"', 'code="ORG-999"')),
      frcp(
        'broken-ours-frcp-xsd.xml',
        replaceOnce(ourFrcp, '<versionNumber value="1"/>', '<versionNumber value="one"/>'),
      ),
      frcp(
        'broken-ours-frcp-entry.xml',
        replaceOnce(ourFrcp, '<text><reference value="#tumeur-primitive"/></text>', ''),
      ),
    );
    validator = new AnsValidator(tools);
    for (const r of await validator.validate(documents)) reports.set(r.name, r);
  });

  after(async () => {
    await validator?.dispose();
  });

  function report(name: string): CdaReport {
    const r = reports.get(name);
    assert.ok(r !== undefined, `no report for ${name}`);
    return r;
  }

  /** XSD-valid, 0 failed asserts in both schematrons, and enough rules fired to show they applied. */
  function assertConformant(name: string, minRules: { document: number; contentModels: number }): void {
    const r = report(name);
    assert.deepEqual(r.xsdErrors, [], `${name}: CDA XSD errors`);
    for (const which of ['document', 'contentModels'] as const) {
      assert.deepEqual(r[which].failedAsserts, [], `${name}: ${which} schematron failed asserts`);
      // A schematron that recognised nothing would also report no failure.
      assert.ok(
        r[which].firedRules >= minRules[which],
        `${name}: only ${r[which].firedRules} ${which} rules fired`,
      );
    }
  }

  describe('positive control: the kit’s own examples', () => {
    it('finds the FRCP and PPS examples of the kit', () => {
      assert.ok(examples.FRCP.length >= 2, `FRCP examples: ${examples.FRCP.join(', ')}`);
      assert.ok(examples.PPS.length >= 2, `PPS examples: ${examples.PPS.join(', ')}`);
    });

    it('every FRCP and PPS example of the kit is XSD-valid with 0 failed asserts in its document schematron', () => {
      for (const name of [...examples.FRCP, ...examples.PPS]) {
        const r = report(name);
        assert.deepEqual(r.xsdErrors, [], `${name}: CDA XSD errors`);
        assert.deepEqual(r.document.failedAsserts, [], `${name}: failed asserts`);
        assert.ok(r.document.firedRules >= 10, `${name}: only ${r.document.firedRules} rules fired`);
      }
    });

    it('against the content models, the PPS examples pass and the FRCP examples fail only the kit’s known author-code value set', () => {
      for (const name of examples.PPS) assert.deepEqual(report(name).contentModels.failedAsserts, [], name);
      for (const name of examples.FRCP) {
        const r = report(name).contentModels;
        assert.ok(r.firedRules >= 50, `${name}: only ${r.firedRules} content-model rules fired`);
        // The agency's own FRCP examples code an entry author's speciality outside JDV_J01_XdsAuthorSpecialty.
        assert.deepEqual(
          [...new Set(r.failedAsserts.map((f) => f.text.split(' [')[0]))],
          ["[dansJeuDeValeurs] L'élément author/assignedAuthor/code"],
          `${name}: ${JSON.stringify(r.failedAsserts.map((f) => f.text))}`,
        );
      }
    });
  });

  describe('negative control: broken documents fail with the asserts named', () => {
    it('an FRCP with a wrong document code and no care-plan section fails both asserts', () => {
      const tests = report('broken-kit-frcp.xml').document.failedAsserts.map((f) => f.test);
      assert.ok(
        tests.some((t) => t.includes("@code='34794-8'")),
        `document-code assert missing from ${JSON.stringify(tests)}`,
      );
      assert.ok(
        tests.some((t) => t.includes(CARE_PLAN)),
        `care-plan section assert missing from ${JSON.stringify(tests)}`,
      );
    });

    it('a PPS with a wrong document code fails the header assert', () => {
      const tests = report('broken-kit-pps.xml').document.failedAsserts.map((f) => f.test);
      assert.ok(
        tests.some((t) => t.includes("@code='18776-5'")),
        `document-code assert missing from ${JSON.stringify(tests)}`,
      );
    });

    it('a code outside its value set fails the value-set assert (the value sets are loaded)', () => {
      const failed = report('broken-ours-frcp-value-set.xml').document.failedAsserts;
      assert.ok(
        failed.some((f) => f.text.includes('JDV_NatureDiscussion')),
        `value-set assert missing from ${JSON.stringify(failed)}`,
      );
    });

    it('a diagnosis entry without its narrative reference fails the content-model assert', () => {
      const failed = report('broken-ours-frcp-entry.xml').contentModels.failedAsserts;
      assert.ok(
        failed.some(
          (f) => f.text.includes('E_diagnosticDuCancer_fr.sch') && f.test.includes('cda:text/cda:reference'),
        ),
        `content-model assert missing from ${JSON.stringify(failed)}`,
      );
    });

    it('a document breaking the CDA schema fails the XSD', () => {
      const errors = report('broken-ours-frcp-xsd.xml').xsdErrors;
      assert.ok(
        errors.some((e) => e.includes('versionNumber')),
        `XSD error on versionNumber missing from ${JSON.stringify(errors)}`,
      );
    });
  });

  describe('our writers: 0 errors (XSD, document schematron, CI-SIS content models)', () => {
    const frcpRules = { document: 12, contentModels: 20 };
    const ppsRules = { document: 3, contentModels: 5 };
    it('a full, coded FRCP', () =>
      assertConformant('ours-frcp-full.xml', { document: 15, contentModels: 24 }));
    it('a minimal FRCP whose diagnosis, treatments and apparatus are not coded', () =>
      assertConformant('ours-frcp-minimal-uncoded.xml', frcpRules));
    it('an FRCP version 2 replacing version 1', () =>
      assertConformant('ours-frcp-v2-replacement.xml', frcpRules));
    it('an FRCP whose free text is full of markup', () =>
      assertConformant('ours-frcp-hostile-text.xml', frcpRules));
    it('a full, coded PPS', () => assertConformant('ours-pps-full.xml', { document: 5, contentModels: 8 }));
    it('a minimal PPS whose acts are not coded', () =>
      assertConformant('ours-pps-minimal-uncoded.xml', ppsRules));
    it('a PPS version 2 replacing version 1', () =>
      assertConformant('ours-pps-v2-replacement.xml', ppsRules));
  });

  describe('documents the appliance sends (store → outbox → rcp-cda): 0 errors', () => {
    const frcpRules = { document: 12, contentModels: 20 };
    it('an FRCP made from the API’s JSON (codes, RPPS and FINESS completed from the directory)', () =>
      assertConformant('store-frcp-api-input.xml', frcpRules));
    it('its correction, version 2 with relatedDocument RPLC', () =>
      assertConformant('store-frcp-api-v2.xml', frcpRules));
    it('an FRCP given in the model’s own shape', () => assertConformant('store-frcp-model.xml', frcpRules));
    it('an uncoded FRCP of a patient without a qualified INS', () =>
      assertConformant('store-frcp-uncoded-unqualified.xml', frcpRules));
    it('a PPS', () => assertConformant('store-pps-model.xml', { document: 3, contentModels: 5 }));
  });
});
