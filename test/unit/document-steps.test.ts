// The packaging steps of documents out as a channel builds them (registry, options from the
// schema): a CDA written by the FRCP writer becomes each recipient's format, read back.
import assert from 'node:assert/strict';
import { builtinRegistry } from '../../channels/builtins.ts';
import { writeFrcp } from '../../transformers/cda-frcp.ts';
import type { Step, StepInput } from '../../transformers/contract.ts';
import { get, parse, segmentsNamed } from '../../transformers/hl7v2.ts';
import { attr, element, elements, parseXml } from '../../transformers/xml.ts';
import { pdfText } from '../support/pdf-text.ts';
import { unzip } from '../support/xdm-fixture.ts';
import { correctedForm, fullForm } from '../fixtures/documents/rcp-forms.ts';

const registry = builtinRegistry();
const step = (type: string, options: Record<string, unknown> = {}): Step =>
  registry.createStep({ type, ...options });

const cda = (form = fullForm, meta: StepInput['meta'] = {}): StepInput => ({
  content: Buffer.from(writeFrcp(form), 'utf8'),
  contentType: 'application/hl7-cda+xml',
  meta: { fileName: 'frcp-42', to: 'anne.oncotest@chu-sud.mssante.fr', ...meta },
});

async function run(s: Step, i: StepInput): Promise<StepInput> {
  const out = await s(i);
  assert.ok(out !== null);
  return out;
}

describe('documents-out packaging steps (cda-pdf, cda-xdm, cda-hl7v2)', () => {
  it('cda-pdf: the PDF of the CDA, the meta kept, the extension named', async () => {
    const out = await run(step('cda-pdf'), cda());
    assert.equal(out.contentType, 'application/pdf');
    assert.equal(out.meta.fileName, 'frcp-42');
    assert.equal(out.meta.fileExtension, 'pdf');
    assert.ok(pdfText(out.content).some((l) => l.includes('279035121518989')));
  });

  it('cda-xdm: IHE_XDM.ZIP with the CDA and its PDF, addressed to meta.to, the same set when retried', async () => {
    const xdm = step('cda-xdm', { sourceId: '1.2.250.1.999.7' });
    const out = await run(xdm, cda());
    assert.equal(out.contentType, 'application/zip');
    assert.equal(out.meta.attachmentName, 'IHE_XDM.ZIP');
    const files = await unzip(out.content);
    assert.equal(files.get('IHE_XDM/SUBSET01/DOC0001.XML')?.toString('utf8'), writeFrcp(fullForm));
    assert.equal(files.get('IHE_XDM/SUBSET01/DOC0002.PDF')?.subarray(0, 5).toString('latin1'), '%PDF-');
    const metadata = parseXml(files.get('IHE_XDM/SUBSET01/METADATA.XML') ?? '');
    const set = element(metadata, 'RegistryObjectList/RegistryPackage');
    assert.ok(set !== undefined);
    const recipients = elements(set, 'Slot').find((s) => attr(s, 'name') === 'intendedRecipient');
    assert.ok(recipients !== undefined);
    assert.deepEqual(
      elements(recipients, 'ValueList/Value').map((v) => v.children.join('')),
      ['||^^Internet^anne.oncotest@chu-sud.mssante.fr'],
    );
    const setId = (zip: Buffer): Promise<string | undefined> =>
      unzip(zip).then((f) =>
        attr(
          elements(
            parseXml(f.get('IHE_XDM/SUBSET01/METADATA.XML') ?? ''),
            'RegistryObjectList/RegistryPackage/ExternalIdentifier',
          ).find((e) => attr(e, 'identificationScheme') === 'urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8'),
          'value',
        ),
      );
    assert.match((await setId(out.content)) ?? '', /^2\.25\.\d+$/);
    assert.ok((await run(xdm, cda())).content.equals(out.content));
    const other = await run(xdm, cda(fullForm, { to: '279035121518989@patient.mssante.fr' }));
    assert.notEqual(await setId(other.content), await setId(out.content));
    const withoutPdf = await unzip(
      (await run(step('cda-xdm', { sourceId: '1.2.250.1.999.7', includePdf: false }), cda())).content,
    );
    assert.equal(withoutPdf.has('IHE_XDM/SUBSET01/DOC0002.PDF'), false);
  });

  it('cda-hl7v2: MDM^T02 with the CDA and the PDF, a correction as T10 (or T04), MSH-10 stable per receiver', async () => {
    const mdm = step('cda-hl7v2', { receivingApplication: 'DPI', receivingFacility: 'CHU-SUD' });
    const out = await run(mdm, cda());
    assert.equal(out.contentType, 'application/hl7-v2');
    assert.equal(out.meta.fileExtension, 'hl7');
    const message = parse(out.content);
    assert.equal(get(message, 'MSH-9.2'), 'T02');
    assert.equal(get(message, 'MSH-5'), 'DPI');
    assert.equal(segmentsNamed(message, 'OBX').length, 2);
    assert.equal(get(message, 'MSH-10'), get(parse((await run(mdm, cda())).content), 'MSH-10'));
    const elsewhere = step('cda-hl7v2', { receivingApplication: 'DPI', receivingFacility: 'CH-NORD' });
    assert.notEqual(get(message, 'MSH-10'), get(parse((await run(elsewhere, cda())).content), 'MSH-10'));
    const corrected = parse((await run(mdm, cda(correctedForm))).content);
    assert.equal(get(corrected, 'MSH-9.2'), 'T10');
    assert.equal(get(corrected, 'OBX-11'), 'C');
    const t04 = step('cda-hl7v2', {
      receivingApplication: 'DPI',
      receivingFacility: 'CHU-SUD',
      replacementEvent: 'T04',
      structure: 'MDM',
      includePdf: false,
    });
    const replaced = parse((await run(t04, cda(correctedForm))).content);
    assert.equal(get(replaced, 'MSH-9.2'), 'T04');
    assert.equal(segmentsNamed(replaced, 'OBX').length, 1);
    const oru = parse(
      (
        await run(
          step('cda-hl7v2', { receivingApplication: 'DPI', receivingFacility: 'X', structure: 'ORU' }),
          cda(),
        )
      ).content,
    );
    assert.equal(get(oru, 'MSH-9.1'), 'ORU');
  });

  it('refuses content that is not a CDA, naming what is missing', async () => {
    await assert.rejects(
      async () => step('cda-pdf')({ content: Buffer.from('<html/>'), contentType: 'text/html', meta: {} }),
      (e: unknown) => (e as { code?: string }).code === 'PDF_CDA_INCOMPLETE',
    );
  });
});
