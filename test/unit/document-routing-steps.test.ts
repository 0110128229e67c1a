// The steps the way channels run per recipient (documents-pickup, -sftp, -mail): `document-format`
// sends an establishment what its directory route asks, `document-mail` makes the MSSanté mail.
import assert from 'node:assert/strict';
import yauzl from 'yauzl';
import { builtinRegistry } from '../../channels/builtins.ts';
import { writeFrcp } from '../../transformers/cda-frcp.ts';
import type { Step, StepInput } from '../../transformers/contract.ts';
import { get, parse, segmentsNamed } from '../../transformers/hl7v2.ts';
import { readMailJson } from '../../transformers/mss-mail.ts';
import { correctedForm, fullForm, minimalUncodedForm } from '../fixtures/documents/rcp-forms.ts';

const registry = builtinRegistry();
const step = (type: string, options: Record<string, unknown> = {}): Step =>
  registry.createStep({ type, ...options });

const cda = (meta: StepInput['meta'] = {}, form = fullForm): StepInput => ({
  content: Buffer.from(writeFrcp(form), 'utf8'),
  contentType: 'application/hl7-cda+xml',
  meta: { fileName: 'FRCP-42-1', finess: '310000001', ...meta },
});

async function entries(zip: Buffer): Promise<string[]> {
  const archive = await yauzl.fromBufferPromise(zip, {});
  const names: string[] = [];
  for await (const entry of archive.eachEntry()) names.push(entry.fileName);
  return names.sort();
}

const isPdf = (b: Buffer): boolean => b.subarray(0, 5).toString('latin1') === '%PDF-';

describe('document-format: what an establishment’s route asks for', () => {
  const documentPart = step('document-format', { sourceId: '1.2.250.1.999.7' });
  const pdfPart = step('document-format', { part: 'pdf' });

  it('cda (and no format): the CDA itself as NAME.xml, and its PDF beside it', async () => {
    for (const meta of [{ format: 'cda' }, {}] as StepInput['meta'][]) {
      const doc = (await documentPart(cda(meta)))!;
      assert.equal(doc.content.toString('utf8'), writeFrcp(fullForm));
      assert.equal(doc.meta.fileExtension, 'xml');
      const pdf = (await pdfPart(cda(meta)))!;
      assert.equal(pdf.contentType, 'application/pdf');
      assert.equal(pdf.meta.fileExtension, 'pdf');
      assert.ok(isPdf(pdf.content));
    }
  });

  it('xdm: IHE_XDM.ZIP holding METADATA.XML, the CDA and the PDF; no PDF beside it', async () => {
    const doc = (await documentPart(cda({ format: 'xdm' })))!;
    assert.equal(doc.contentType, 'application/zip');
    assert.equal(doc.meta.fileExtension, 'zip');
    const names = await entries(doc.content);
    for (const name of [
      'IHE_XDM/SUBSET01/METADATA.XML',
      'IHE_XDM/SUBSET01/DOC0001.XML',
      'IHE_XDM/SUBSET01/DOC0002.PDF',
    ])
      assert.ok(names.includes(name), `${name} in ${names.join(', ')}`);
    assert.equal(await pdfPart(cda({ format: 'xdm' })), null, 'the zip carries the PDF: FILTERED');
  });

  it('hl7v2: MDM^T02 to the route’s application at the establishment’s FINESS, T10 for a correction', async () => {
    const doc = (await documentPart(cda({ format: 'hl7v2', receivingApplication: 'DPI-SUD' })))!;
    assert.equal(doc.meta.fileExtension, 'hl7');
    const mdm = parse(doc.content);
    assert.equal(get(mdm, 'MSH-9.2'), 'T02');
    assert.equal(get(mdm, 'MSH-5'), 'DPI-SUD');
    assert.equal(get(mdm, 'MSH-6'), '310000001');
    assert.equal(segmentsNamed(mdm, 'OBX').length, 2, 'the CDA and the PDF');
    const corrected = parse((await documentPart(cda({ format: 'hl7v2' }, correctedForm)))!.content);
    assert.equal(get(corrected, 'MSH-9.2'), 'T10');
    const t04 = step('document-format', { hl7v2: { replacementEvent: 'T04' } });
    assert.equal(get(parse((await t04(cda({ format: 'hl7v2' }, correctedForm)))!.content), 'MSH-9.2'), 'T04');
    assert.equal(await pdfPart(cda({ format: 'hl7v2' })), null);
  });

  it('refuses a format it does not know, naming it', async () => {
    await assert.rejects(
      async () => documentPart(cda({ format: 'mdm' })),
      (e: unknown) => (e as { code?: string }).code === 'DOCUMENT_FORMAT_UNKNOWN' && /"mdm"/.test(String(e)),
    );
  });
});

describe('document-mail: the MSSanté mail of a document', () => {
  const mail = step('document-mail', { sourceId: '1.2.250.1.999.7' });

  it('XDM zip and PDF attached, subject and X-MSS headers; X-MSS-MES: FIN to the patient only', async () => {
    const pro = readMailJson(
      (await mail(cda({ to: 'jean.adresseur@demo.mssante.fr', recipientKind: 'referring' })))!.content,
    );
    assert.deepEqual(pro.to, ['jean.adresseur@demo.mssante.fr']);
    assert.equal(pro.subject, 'XDM/1.0/DDM+FRCP PAT-TEST CAMILLE 19790328');
    assert.deepEqual(pro.headers, { 'X-MSS-CODECDA': '34794-8', 'X-MSS-INS': 'O' });
    assert.deepEqual(
      pro.attachments.map((a) => [a.fileName, a.contentType]),
      [
        ['IHE_XDM.ZIP', 'application/zip'],
        ['FRCP-42-1.pdf', 'application/pdf'],
      ],
    );
    assert.ok((await entries(pro.attachments[0]!.content)).includes('IHE_XDM/SUBSET01/METADATA.XML'));
    assert.ok(isPdf(pro.attachments[1]!.content));
    const mes = readMailJson(
      (await mail(cda({ to: '279035121518989@patient.mssante.fr', recipientKind: 'patient' })))!.content,
    );
    assert.equal(mes.headers?.['X-MSS-MES'], 'FIN');
    const unqualified = readMailJson(
      (await mail(cda({ to: 'a@b.mssante.fr' }, minimalUncodedForm)))!.content,
    );
    assert.equal(unqualified.headers?.['X-MSS-INS'], 'N');
  });
});
