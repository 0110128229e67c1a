// IHE XDM packages of our documents, opened with yauzl (as the MSSanté side reads them) and their
// METADATA.XML read back with the product's XML reader: every XDS value must match the CDA it
// describes, hashes and sizes the bytes in the zip.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import yauzl from 'yauzl';
import { writeFrcp } from '../../transformers/cda-frcp.ts';
import { writePps } from '../../transformers/cda-pps.ts';
import { StepError } from '../../transformers/contract.ts';
import { renderPdf } from '../../transformers/pdf-render.ts';
import { entryUuid, xdmPackage } from '../../transformers/xdm-package.ts';
import type { XdmSubmission } from '../../transformers/xdm-package.ts';
import { attr, element, elements, parseXml, text } from '../../transformers/xml.ts';
import type { XmlElement } from '../../transformers/xml.ts';
import { correctedForm, fullForm, fullPps, minimalUncodedForm } from '../fixtures/documents/rcp-forms.ts';

const submission: XdmSubmission = {
  uniqueId: '2.25.123456789',
  sourceId: '1.2.250.1.999.2',
  submissionTime: '20260112160500+0100',
  recipients: ['anne.oncotest@chu-sud.mssante.fr'],
};

interface Unzipped {
  names: string[];
  files: Map<string, Buffer>;
}

async function unzip(zip: Buffer): Promise<Unzipped> {
  const archive = await yauzl.fromBufferPromise(zip, { strictFileNames: true, validateEntrySizes: true });
  const names: string[] = [];
  const files = new Map<string, Buffer>();
  for await (const entry of archive.eachEntry()) {
    names.push(entry.fileName);
    const chunks: Buffer[] = [];
    for await (const chunk of await archive.openReadStreamPromise(entry)) chunks.push(chunk as Buffer);
    files.set(entry.fileName, Buffer.concat(chunks));
  }
  return { names, files };
}

const slot = (o: XmlElement, name: string): string[] =>
  elements(o, 'Slot')
    .filter((s) => attr(s, 'name') === name)
    .flatMap((s) => elements(s, 'ValueList/Value').map((v) => text(v)));

function classification(o: XmlElement, scheme: string): { code: string; scheme: string; name: string } {
  const c = elements(o, 'Classification').find((x) => attr(x, 'classificationScheme') === scheme);
  assert.ok(c !== undefined, `no classification ${scheme}`);
  return {
    code: attr(c, 'nodeRepresentation') ?? '',
    scheme: slot(c, 'codingScheme')[0] ?? '',
    name: attr(element(c, 'Name/LocalizedString'), 'value') ?? '',
  };
}

const externalId = (o: XmlElement, scheme: string): string | undefined =>
  attr(
    elements(o, 'ExternalIdentifier').find((x) => attr(x, 'identificationScheme') === scheme),
    'value',
  );

const SCHEME = {
  classCode: 'urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a',
  confidentiality: 'urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f',
  formatCode: 'urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d',
  facilityType: 'urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1',
  practiceSetting: 'urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead',
  typeCode: 'urn:uuid:f0306f51-975f-434e-a61c-c59651d33983',
  patientId: 'urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427',
  uniqueId: 'urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab',
  setPatientId: 'urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446',
  setUniqueId: 'urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8',
  setSourceId: 'urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832',
};

async function open(zip: Buffer): Promise<{ z: Unzipped; entries: XmlElement[]; metadata: XmlElement }> {
  const z = await unzip(zip);
  const metadata = parseXml(z.files.get('IHE_XDM/SUBSET01/METADATA.XML') ?? '');
  return { z, entries: elements(metadata, 'RegistryObjectList/ExtrinsicObject'), metadata };
}

describe('IHE XDM packaging (transformers/xdm-package.ts)', () => {
  it('zips INDEX.HTM, README.TXT, METADATA.XML, the CDA and the PDF; hash and size describe the zipped bytes', async () => {
    const cda = writeFrcp(fullForm);
    const pdf = renderPdf(cda);
    const { z, entries } = await open(await xdmPackage([{ cda, pdf }], submission));
    assert.deepEqual(z.names, [
      'INDEX.HTM',
      'README.TXT',
      'IHE_XDM/SUBSET01/METADATA.XML',
      'IHE_XDM/SUBSET01/DOC0001.XML',
      'IHE_XDM/SUBSET01/DOC0002.PDF',
    ]);
    assert.equal(z.files.get('IHE_XDM/SUBSET01/DOC0001.XML')?.toString('utf8'), cda);
    assert.ok(z.files.get('IHE_XDM/SUBSET01/DOC0002.PDF')?.equals(pdf));
    assert.match(z.files.get('INDEX.HTM')?.toString('utf8') ?? '', /href="IHE_XDM\/SUBSET01\/DOC0001.XML"/);
    assert.match(z.files.get('INDEX.HTM')?.toString('utf8') ?? '', /href="README.TXT"/);
    assert.equal(entries.length, 2);
    for (const e of entries) {
      const bytes = z.files.get(`IHE_XDM/SUBSET01/${slot(e, 'URI')[0] ?? ''}`);
      assert.ok(bytes !== undefined, 'URI names a file of the subset');
      assert.deepEqual(slot(e, 'hash'), [createHash('sha1').update(bytes).digest('hex')]);
      assert.deepEqual(slot(e, 'size'), [String(bytes.length)]);
    }
    assert.deepEqual(
      entries.map((e) => attr(e, 'mimeType')),
      ['text/xml', 'application/pdf'],
    );
  });

  it('writes the FRCP’s XDS metadata from the CDA: codes, patient as INS^^^&OID&ISO^NH, author, times', async () => {
    const { entries, metadata } = await open(await xdmPackage([{ cda: writeFrcp(fullForm) }], submission));
    const e = entries[0] as XmlElement;
    assert.deepEqual(classification(e, SCHEME.typeCode), {
      code: '34794-8',
      scheme: '2.16.840.1.113883.6.1',
      name: 'CR de réunion de concertation pluridisciplinaire',
    });
    assert.deepEqual(classification(e, SCHEME.formatCode), {
      code: 'urn:asip:ci-sis:frcp:2011',
      scheme: '1.2.250.1.213.1.1.4.2.282',
      name: 'Fiche RCP',
    });
    assert.equal(classification(e, SCHEME.classCode).code, '10');
    assert.deepEqual(classification(e, SCHEME.confidentiality), {
      code: 'N',
      scheme: '2.16.840.1.113883.5.25',
      name: 'Normal',
    });
    assert.deepEqual(classification(e, SCHEME.facilityType), {
      code: 'SA01',
      scheme: '1.2.250.1.71.4.2.4',
      name: 'Etablissement public de santé',
    });
    assert.equal(classification(e, SCHEME.practiceSetting).code, 'ETABLISSEMENT');
    assert.equal(externalId(e, SCHEME.patientId), '279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH');
    assert.equal(externalId(e, SCHEME.uniqueId), '1.2.250.1.999.1.8^FRCP-2026-000001-1');
    assert.equal(attr(e, 'id'), entryUuid('1.2.250.1.999.1.8^FRCP-2026-000001-1'));
    // 16:00 +01:00 is 15:00 UTC, as XDS times are.
    assert.deepEqual(slot(e, 'creationTime'), ['20260112150000']);
    assert.deepEqual(slot(e, 'serviceStartTime'), ['20260112130000']);
    assert.deepEqual(slot(e, 'sourcePatientId'), ['IPP-000123^^^&1.2.250.1.71.4.2.2.310000001&ISO^PI']);
    assert.ok(slot(e, 'sourcePatientInfo').includes('PID-5|PAT-TEST^CAMILLE^^^^^L'));
    assert.ok(slot(e, 'sourcePatientInfo').includes('PID-7|19790328'));
    assert.deepEqual(slot(e, 'legalAuthenticator'), [
      '810000000001^ONCOTEST^Anne^^^DR^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS',
    ]);
    const author = elements(e, 'Classification').find(
      (c) => attr(c, 'classificationScheme') === 'urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d',
    ) as XmlElement;
    assert.deepEqual(slot(author, 'authorInstitution'), [
      'CHU Sud^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^1310000001',
    ]);

    const set = element(metadata, 'RegistryObjectList/RegistryPackage') as XmlElement;
    const uuid = /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
    assert.match(attr(set, 'id') ?? '', uuid);
    assert.match(attr(e, 'id') ?? '', uuid);
    assert.equal(externalId(set, SCHEME.setPatientId), externalId(e, SCHEME.patientId));
    assert.equal(externalId(set, SCHEME.setUniqueId), '2.25.123456789');
    assert.equal(externalId(set, SCHEME.setSourceId), '1.2.250.1.999.2');
    assert.deepEqual(slot(set, 'submissionTime'), ['20260112150500']);
    assert.deepEqual(slot(set, 'intendedRecipient'), ['||^^Internet^anne.oncotest@chu-sud.mssante.fr']);
    const members = elements(metadata, 'RegistryObjectList/Association');
    assert.deepEqual(
      members.map((a) => [attr(a, 'associationType'), attr(a, 'sourceObject'), attr(a, 'targetObject')]),
      [['urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember', attr(set, 'id'), attr(e, 'id')]],
    );
  });

  it('writes a PPS with its own format and class codes', async () => {
    const { entries } = await open(await xdmPackage([{ cda: writePps(fullPps) }], submission));
    const e = entries[0] as XmlElement;
    assert.equal(classification(e, SCHEME.formatCode).code, 'urn:asip:ci-sis:pps-cancer:2017');
    assert.equal(classification(e, SCHEME.typeCode).code, '18776-5');
    assert.equal(classification(e, SCHEME.classCode).code, '44');
  });

  it('falls back to the IPP as patient id when the identity is not qualified', async () => {
    const { entries } = await open(await xdmPackage([{ cda: writeFrcp(minimalUncodedForm) }], submission));
    assert.equal(
      externalId(entries[0] as XmlElement, SCHEME.patientId),
      'IPP-000123^^^&1.2.250.1.71.4.2.2.310000001&ISO^PI',
    );
  });

  it('declares the PDF as the CDA’s transformation, and a correction as replacing the entry first sent', async () => {
    const first = await open(await xdmPackage([{ cda: writeFrcp(fullForm) }], submission));
    const cda = writeFrcp(correctedForm);
    const { entries, metadata } = await open(await xdmPackage([{ cda, pdf: renderPdf(cda) }], submission));
    const [doc, pdf] = entries as [XmlElement, XmlElement];
    const assoc = (type: string): Array<[string | undefined, string | undefined]> =>
      elements(metadata, 'RegistryObjectList/Association')
        .filter((a) => attr(a, 'associationType') === type)
        .map((a) => [attr(a, 'sourceObject'), attr(a, 'targetObject')]);
    assert.deepEqual(assoc('urn:ihe:iti:2007:AssociationType:XFRM'), [[attr(pdf, 'id'), attr(doc, 'id')]]);
    assert.deepEqual(assoc('urn:ihe:iti:2007:AssociationType:RPLC'), [
      [attr(doc, 'id'), attr(first.entries[0], 'id')],
    ]);
  });

  it('is deterministic: the same documents and submission give the same zip', async () => {
    const cda = writeFrcp(fullForm);
    const a = await xdmPackage([{ cda }], submission);
    assert.ok(a.equals(await xdmPackage([{ cda }], submission)));
  });

  it('refuses documents about two patients in one set', async () => {
    const other = writeFrcp({
      ...fullForm,
      patient: { ...fullForm.patient, ins: { matricule: '180012B01234567', oid: '1.2.250.1.213.1.4.10' } },
    });
    await assert.rejects(
      xdmPackage([{ cda: writeFrcp(fullForm) }, { cda: other }], submission),
      (e: unknown) => e instanceof StepError && e.code === 'XDM_MIXED_PATIENTS',
    );
  });
});
