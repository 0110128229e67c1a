// The documents-out steps on what the store's outbox really carries: a validated form or programme
// (store/rcp.ts ValidatedDocument) becomes a CDA whose header the steps build (ids, version chain,
// author, custodian, validation, patient), and that CDA must pass the agency's XSD and schematrons
// like the writers' own fixtures do; then each recipient format is read back.
import assert from 'node:assert/strict';
import { builtinRegistry } from '../../channels/builtins.ts';
import type { Step, StepInput } from '../../transformers/contract.ts';
import { VALIDATED_DOCUMENT_TYPE } from '../../transformers/document-steps.ts';
import type { ValidatedDocument } from '../../transformers/document-steps.ts';
import { correction, validatedForm, validatedPps } from '../fixtures/documents/validated.ts';
import { get, parse, segmentsNamed } from '../../transformers/hl7v2.ts';
import { attr, element, elements, parseXml } from '../../transformers/xml.ts';
import { pdfText } from '../support/pdf-text.ts';
import { AnsValidator, locateTools } from './ans-cda-validator.ts';
import yauzl from 'yauzl';

const registry = builtinRegistry();
const step = (type: string, options: Record<string, unknown> = {}): Step =>
  registry.createStep({ type, ...options });
const cdaStep = step('rcp-cda', { oidRoot: '1.2.250.1.999.7' });

const input = (v: ValidatedDocument): StepInput => ({
  content: Buffer.from(JSON.stringify(v)),
  contentType: VALIDATED_DOCUMENT_TYPE,
  meta: { documentKind: v.kind, documentId: v.documentId, recipient: 'anne.oncotest@chu-sud.mssante.fr' },
});

async function run(s: Step, i: StepInput): Promise<StepInput> {
  const out = await s(i);
  assert.ok(out !== null);
  return out;
}

describe('documents-out steps (rcp-cda, cda-pdf, cda-xdm, cda-hl7v2)', () => {
  it('writes the CDA header from the validated document: ids under ROOT.1, version chain, validation time, patient', async () => {
    const cda = await run(cdaStep, input(correction));
    assert.equal(cda.contentType, 'application/hl7-cda+xml');
    assert.equal(cda.meta.cdaId, '1.2.250.1.999.7.1^frcp-43');
    const doc = parseXml(cda.content);
    const ii = (path: string): [string | undefined, string | undefined] => {
      const e = element(doc, path);
      return [attr(e, 'root'), attr(e, 'extension')];
    };
    assert.deepEqual(ii('id'), ['1.2.250.1.999.7.1', 'frcp-43']);
    assert.deepEqual(ii('setId'), ['1.2.250.1.999.7.1', 'frcp-set-42']);
    assert.deepEqual(ii('relatedDocument/parentDocument/id'), ['1.2.250.1.999.7.1', 'frcp-42']);
    assert.equal(attr(element(doc, 'versionNumber'), 'value'), '2');
    assert.equal(attr(element(doc, 'effectiveTime'), 'value'), '20260113080000+0000');
    assert.equal(attr(element(doc, 'legalAuthenticator/time'), 'value'), '20260113080000+0000');
    // The meeting's coordinator signs; the IPP is the meeting site's (CHU Sud, 310000001).
    assert.equal(attr(element(doc, 'legalAuthenticator/assignedEntity/id'), 'extension'), '810000000001');
    assert.deepEqual(
      elements(doc, 'recordTarget/patientRole/id').map((i) => [attr(i, 'root'), attr(i, 'extension')]),
      [
        ['1.2.250.1.213.1.4.10', '279035121518989'],
        ['1.2.250.1.71.4.2.2.310000001', 'IPP-000123'],
      ],
    );
    assert.equal(attr(element(doc, 'recordTarget/patientRole/patient/birthTime'), 'value'), '19790328');
  });

  it('leaves the INS out of a PPS whose identity is not qualified', async () => {
    const doc = parseXml((await run(cdaStep, input(validatedPps))).content);
    assert.deepEqual(
      elements(doc, 'recordTarget/patientRole/id').map((i) => attr(i, 'root')),
      ['1.2.250.1.71.4.2.2.310000001'],
    );
  });

  it('turns the CDA into each recipient format: PDF, XDM zip, MDM with the PDF', async () => {
    const cda = await run(cdaStep, input(validatedForm));
    const pdf = await run(step('cda-pdf'), cda);
    assert.equal(pdf.contentType, 'application/pdf');
    assert.equal(pdf.meta.fileName, '1.2.250.1.999.7.1_frcp-42.pdf');
    assert.ok(pdfText(pdf.content).some((l) => l.includes('279035121518989')));

    const xdm = await run(step('cda-xdm', { sourceId: '1.2.250.1.999.7' }), cda);
    assert.equal(xdm.meta.fileName, 'IHE_XDM.ZIP');
    const zip = await yauzl.fromBufferPromise(xdm.content, {});
    const names: string[] = [];
    for await (const e of zip.eachEntry()) names.push(e.fileName);
    assert.deepEqual(names.slice(2), [
      'IHE_XDM/SUBSET01/METADATA.XML',
      'IHE_XDM/SUBSET01/DOC0001.XML',
      'IHE_XDM/SUBSET01/DOC0002.PDF',
    ]);
    // A retried delivery is the same set, byte for byte; another recipient, another set.
    const xdmStep = step('cda-xdm', { sourceId: '1.2.250.1.999.7' });
    assert.ok((await run(xdmStep, cda)).content.equals(xdm.content));
    const other = await run(xdmStep, { ...cda, meta: { ...cda.meta, recipient: 'x@patient.mssante.fr' } });
    assert.ok(!other.content.equals(xdm.content));

    const mdmStep = step('cda-hl7v2', { receivingApplication: 'DPI', receivingFacility: 'CHU-SUD' });
    const mdm = parse((await run(mdmStep, cda)).content);
    assert.equal(get(mdm, 'MSH-9.2'), 'T02');
    assert.equal(segmentsNamed(mdm, 'OBX').length, 2);
    assert.equal(get(mdm, 'MSH-10'), get(parse((await run(mdmStep, cda)).content), 'MSH-10'));
    const corrected = parse((await run(mdmStep, await run(cdaStep, input(correction)))).content);
    assert.equal(get(corrected, 'MSH-9.2'), 'T10');
    assert.equal(get(corrected, 'OBX-11'), 'C');
  });

  it('refuses content that is not a validated document, saying what it expected', async () => {
    await assert.rejects(
      async () => cdaStep({ content: Buffer.from('{}'), contentType: 'text/plain', meta: {} }),
      (e: unknown) => (e as { code?: string }).code === 'DOCUMENT_KIND_UNKNOWN',
    );
    await assert.rejects(
      async () => cdaStep({ content: Buffer.from('{'), contentType: VALIDATED_DOCUMENT_TYPE, meta: {} }),
      (e: unknown) => (e as { code?: string }).code === 'DOCUMENT_NOT_JSON',
    );
  });

  describe('the CDA built from the outbox against the agency’s XSD and schematrons', function () {
    const tools = locateTools();
    let validator: AnsValidator | undefined;

    before(function () {
      if ('missing' in tools) {
        if (process.env.CI === 'true')
          throw new Error(`ANS_CONFORMANCE_UNAVAILABLE: ${tools.missing.join('; ')}`);
        console.log(`    skipped: ${tools.missing.join('; ')}`);
        this.skip();
      }
    });

    after(async () => {
      await validator?.dispose();
    });

    it('FRCP (first version and correction) and PPS: XSD-valid, 0 failed asserts', async function () {
      this.timeout(600_000);
      if ('missing' in tools) return;
      validator = new AnsValidator(tools);
      const xml = async (v: ValidatedDocument): Promise<string> =>
        (await run(cdaStep, input(v))).content.toString('utf8');
      const reports = await validator.validate([
        { name: 'outbox-frcp.xml', kind: 'FRCP', xml: await xml(validatedForm) },
        { name: 'outbox-frcp-v2.xml', kind: 'FRCP', xml: await xml(correction) },
        { name: 'outbox-pps.xml', kind: 'PPS', xml: await xml(validatedPps) },
      ]);
      for (const r of reports) {
        assert.deepEqual(r.xsdErrors, [], `${r.name}: XSD`);
        assert.deepEqual(r.document.failedAsserts, [], `${r.name}: document schematron`);
        assert.deepEqual(r.contentModels.failedAsserts, [], `${r.name}: content models`);
        // The PPS schematron has fewer rules than the FRCP one (ans-cda.test.ts: at least 5 against 10).
        const least = r.name.includes('pps') ? 5 : 10;
        assert.ok(r.document.firedRules >= least, `${r.name}: ${r.document.firedRules} rules fired`);
      }
    });
  });
});
