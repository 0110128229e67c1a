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
  const documents: Record<CdaKind, CdaDocument[]> = { FRCP: [], PPS: [] };
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
    const kit = tools.cdaKit;
    const exampleDir = path.join(kit, 'ExemplesCDA');
    for (const kind of ['FRCP', 'PPS'] as const) {
      for (const name of readdirSync(exampleDir).filter((n) => n.startsWith(`CANCER-${kind}_2022.01_`))) {
        examples[kind].push(name);
        documents[kind].push({ name, xml: readFileSync(path.join(exampleDir, name), 'utf8') });
      }
    }
    const kitFrcp = documents.FRCP[0]?.xml ?? '';
    const kitPps = documents.PPS[0]?.xml ?? '';
    const ourFrcp = writeFrcp(fullForm);
    documents.FRCP.push(
      { name: 'ours-frcp-full.xml', xml: ourFrcp },
      { name: 'ours-frcp-minimal-uncoded.xml', xml: writeFrcp(minimalUncodedForm) },
      { name: 'ours-frcp-v2-replacement.xml', xml: writeFrcp(correctedForm) },
      { name: 'ours-frcp-hostile-text.xml', xml: writeFrcp(hostileForm) },
      {
        name: 'broken-kit-frcp.xml',
        xml: withoutSection(replaceOnce(kitFrcp, 'code="34794-8"', 'code="11488-4"'), CARE_PLAN),
      },
      {
        name: 'broken-ours-frcp-value-set.xml',
        xml: replaceOnce(ourFrcp, 'code="ORG-117"', 'code="ORG-999"'),
      },
      {
        name: 'broken-ours-frcp-xsd.xml',
        xml: replaceOnce(ourFrcp, '<versionNumber value="1"/>', '<versionNumber value="one"/>'),
      },
    );
    documents.PPS.push(
      { name: 'ours-pps-full.xml', xml: writePps(fullPps) },
      { name: 'ours-pps-minimal-uncoded.xml', xml: writePps(minimalUncodedPps) },
      { name: 'ours-pps-v2-replacement.xml', xml: writePps(correctedPps) },
      { name: 'broken-kit-pps.xml', xml: replaceOnce(kitPps, 'code="18776-5"', 'code="11488-4"') },
    );
    validator = new AnsValidator(tools);
    const batches = await Promise.all(
      (['FRCP', 'PPS'] as const).map((kind) => validator?.validate(kind, documents[kind]) ?? []),
    );
    for (const report of batches.flat()) reports.set(report.name, report);
  });

  after(async () => {
    await validator?.dispose();
  });

  function report(name: string): CdaReport {
    const r = reports.get(name);
    assert.ok(r !== undefined, `no report for ${name}`);
    return r;
  }

  function assertConformant(name: string, minRules: number): void {
    const r = report(name);
    assert.deepEqual(r.xsdErrors, [], `${name}: CDA XSD errors`);
    assert.deepEqual(r.failedAsserts, [], `${name}: schematron failed asserts`);
    // A schematron that recognised nothing would also report no failure.
    assert.ok(r.firedRules >= minRules, `${name}: only ${r.firedRules} rules fired`);
  }

  describe('positive control: the kit’s own examples', () => {
    it('finds the FRCP and PPS examples of the kit', () => {
      assert.ok(examples.FRCP.length >= 2, `FRCP examples: ${examples.FRCP.join(', ')}`);
      assert.ok(examples.PPS.length >= 2, `PPS examples: ${examples.PPS.join(', ')}`);
    });

    it('every FRCP and PPS example of the kit is XSD-valid with 0 failed asserts', () => {
      for (const name of examples.FRCP) assertConformant(name, 15);
      for (const name of examples.PPS) assertConformant(name, 10);
    });
  });

  describe('negative control: broken documents fail with the asserts named', () => {
    it('an FRCP with a wrong document code and no care-plan section fails both asserts', () => {
      const tests = report('broken-kit-frcp.xml').failedAsserts.map((f) => f.test);
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
      const tests = report('broken-kit-pps.xml').failedAsserts.map((f) => f.test);
      assert.ok(
        tests.some((t) => t.includes("@code='18776-5'")),
        `document-code assert missing from ${JSON.stringify(tests)}`,
      );
    });

    it('a code outside its value set fails the value-set assert (the value sets are loaded)', () => {
      const failed = report('broken-ours-frcp-value-set.xml').failedAsserts;
      assert.ok(
        failed.some((f) => f.text.includes('JDV_NatureDiscussion')),
        `value-set assert missing from ${JSON.stringify(failed)}`,
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

  describe('our writers: 0 errors', () => {
    it('a full, coded FRCP', () => assertConformant('ours-frcp-full.xml', 15));
    it('a minimal FRCP whose diagnosis, treatments and apparatus are not coded', () =>
      assertConformant('ours-frcp-minimal-uncoded.xml', 12));
    it('an FRCP version 2 replacing version 1', () => assertConformant('ours-frcp-v2-replacement.xml', 15));
    it('an FRCP whose free text is full of markup', () => assertConformant('ours-frcp-hostile-text.xml', 12));
    it('a full, coded PPS', () => assertConformant('ours-pps-full.xml', 5));
    it('a minimal PPS whose acts are not coded', () => assertConformant('ours-pps-minimal-uncoded.xml', 3));
    it('a PPS version 2 replacing version 1', () => assertConformant('ours-pps-v2-replacement.xml', 5));
  });
});
