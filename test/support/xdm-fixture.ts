// IHE XDM archives for tests, written with yazl: a well-formed one (INDEX.HTM, README.TXT,
// IHE_XDM/SUBSET01/METADATA.XML and the documents) and the hostile shapes a reader must refuse; and
// read back with yauzl, to check what the appliance packed.
import yauzl from 'yauzl';
import yazl from 'yazl';

/** Every entry of a zip, by name. */
export async function unzip(zip: Buffer): Promise<Map<string, Buffer>> {
  const archive = await yauzl.fromBufferPromise(zip, {});
  const files = new Map<string, Buffer>();
  for await (const entry of archive.eachEntry()) {
    const chunks: Buffer[] = [];
    for await (const chunk of await archive.openReadStreamPromise(entry)) chunks.push(chunk as Buffer);
    files.set(entry.fileName, Buffer.concat(chunks));
  }
  return files;
}

export interface ZipEntry {
  name: string;
  content: Buffer;
  /** Store without compression (default: deflate). */
  store?: boolean;
}

export function zip(entries: ZipEntry[]): Promise<Buffer> {
  const file = new yazl.ZipFile();
  for (const e of entries) file.addBuffer(e.content, e.name, { compress: !e.store, mtime: new Date(0) });
  file.end();
  const chunks: Buffer[] = [];
  return new Promise((resolve, reject) => {
    file.outputStream.on('data', (c: Buffer) => chunks.push(c));
    file.outputStream.on('end', () => resolve(Buffer.concat(chunks)));
    file.outputStream.on('error', reject);
  });
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/"/g, '&quot;');
const slot = (name: string, ...values: string[]): string =>
  `<rim:Slot name="${name}"><rim:ValueList>${values.map((v) => `<rim:Value>${esc(v)}</rim:Value>`).join('')}</rim:ValueList></rim:Slot>`;
const classification = (scheme: string, code: string, codingScheme: string, display: string): string =>
  `<rim:Classification classificationScheme="${scheme}" nodeRepresentation="${code}">${slot('codingScheme', codingScheme)}<rim:Name><rim:LocalizedString value="${display}"/></rim:Name></rim:Classification>`;

export interface XdmDocument {
  file: string;
  mimeType: string;
  content: Buffer;
  uniqueId: string;
  typeCode: string;
  formatCode: string;
  title: string;
}

/** METADATA.XML of an XDS submission holding these documents, for the patient given (INS + OID). */
export function metadataXml(
  docs: XdmDocument[],
  patient = '1790328123456^^^&1.2.250.1.213.1.4.8&ISO^NH',
): string {
  const entries = docs
    .map(
      (d, i) => `
    <rim:ExtrinsicObject id="Document${i + 1}" mimeType="${d.mimeType}" objectType="urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1">
      ${slot('creationTime', '20261130080000')}
      ${slot('languageCode', 'fr-FR')}
      ${slot('sourcePatientId', patient)}
      ${slot('sourcePatientInfo', 'PID-3|' + patient, 'PID-5|DUPONT^MARIE^^^^^L', 'PID-7|19790328', 'PID-8|F')}
      ${slot('URI', d.file)}
      ${slot('size', String(d.content.length))}
      <rim:Name><rim:LocalizedString value="${d.title}"/></rim:Name>
      ${classification('urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a', '10', '1.2.250.1.213.1.1.4.1', 'Compte rendu')}
      ${classification('urn:uuid:f0306f51-975f-434e-a61c-c59651d33983', d.typeCode, '2.16.840.1.113883.6.1', d.title)}
      ${classification('urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d', d.formatCode, '1.2.250.1.213.1.1.4.2.282', d.formatCode)}
      <rim:ExternalIdentifier identificationScheme="urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427" value="${esc(patient)}" registryObject="Document${i + 1}"/>
      <rim:ExternalIdentifier identificationScheme="urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab" value="${d.uniqueId}" registryObject="Document${i + 1}"/>
    </rim:ExtrinsicObject>`,
    )
    .join('');
  return `<?xml version="1.0" encoding="UTF-8"?>
<lcm:SubmitObjectsRequest xmlns:lcm="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0" xmlns:rim="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0">
  <rim:RegistryObjectList>${entries}
  </rim:RegistryObjectList>
</lcm:SubmitObjectsRequest>
`;
}

/** An IHE_XDM.ZIP holding these documents in SUBSET01. */
export function xdmZip(docs: XdmDocument[], extra: ZipEntry[] = []): Promise<Buffer> {
  return zip([
    { name: 'INDEX.HTM', content: Buffer.from('<html><body>Documents</body></html>') },
    { name: 'README.TXT', content: Buffer.from('IHE XDM') },
    { name: 'IHE_XDM/SUBSET01/METADATA.XML', content: Buffer.from(metadataXml(docs)) },
    ...docs.map((d) => ({ name: `IHE_XDM/SUBSET01/${d.file}`, content: d.content })),
    ...extra,
  ]);
}
