// IHE XDM packaging (ITI-32, "Distribute Document Set on Media") of CDA documents, as MSSanté
// mail carries them to professionals and to Mon espace santé: `IHE_XDM.ZIP` holding INDEX.HTM,
// README.TXT and `IHE_XDM/SUBSET01/` with METADATA.XML (an ebRS 3.0 SubmitObjectsRequest: one
// XDSDocumentEntry per file, the submission set, their associations) beside the documents.
//
// Every metadata value is read from the CDA itself (type, confidentiality, patient, author, legal
// authenticator, facility type, times), so the metadata cannot contradict the document; only what a
// CDA does not say is given: the class code (per document type, JDV_J06), the practice setting when
// the author's organisation does not carry one. A PDF given beside a CDA is its own entry, declared
// as the CDA's transformation (XFRM). Entry UUIDs are derived from the document ids, so the same
// documents give the same package, and a replacement's RPLC association names the UUID the receiver
// filed the replaced version under.
import { createHash } from 'node:crypto';
import { el, type Xml } from './cda-header.ts';
import { StepError } from './contract.ts';
import { summarizeCda, type CdaSummary } from './mdm-out.ts';
import { tsToDate } from './pdf-render.ts';
import { zipBytes, type ZipEntry } from './zip-write.ts';
import { attr, element, elements, parseXml, text } from './xml.ts';
import type { XmlElement } from './xml.ts';

export const XDM_CONTENT_TYPE = 'application/zip';
export const XDM_FILE_NAME = 'IHE_XDM.ZIP';

/** A coded metadata value: code, display name and the OID of its code system (XDS codingScheme). */
export interface XdsCode {
  code: string;
  displayName: string;
  codingScheme: string;
}

export interface XdmDocument {
  /**
   * The CDA R2 document, as written (its bytes are what the hash and size describe): its bytes when
   * the caller holds them (a step's input), not encoded again.
   */
  cda: string | Buffer;
  /** The CDA already parsed by the caller (the product's XML reader): spares a second parse. */
  parsed?: XmlElement;
  /** Its PDF rendering, carried beside it. */
  pdf?: Uint8Array;
  /** XDS classCode (JDV_J06); by default chosen from the document type (CLASS_CODES). */
  classCode?: XdsCode;
  /** XDS practiceSettingCode when the CDA's author organisation carries none (JDV_J04). */
  practiceSetting?: XdsCode;
}

export interface XdmSubmission {
  /** Submission set uniqueId, an OID: stable per outbound message, so a re-send is the same set. */
  uniqueId: string;
  /** OID of the sending system (sourceId). */
  sourceId: string;
  /** When the set was made, HL7 TS; also the zip entries' date, this module has no clock. */
  submissionTime: string;
  /** Whom the set is for: MSSanté addresses (XDM intendedRecipient, as its XTN: `||^^Internet^address`). */
  recipients?: string[];
  title?: string;
  /** XDS contentTypeCode of the submission set, when the receiver asks for one. */
  contentType?: XdsCode;
}

const CLASS_SCHEME = '1.2.250.1.213.1.1.4.1';
const FORMAT_SCHEME = '1.2.250.1.213.1.1.4.2.282';
const LOINC = '2.16.840.1.113883.6.1';

/** classCode by LOINC document type (STANDARDS.md: `10` report, `44` care plan); unverified: overridable. */
export const CLASS_CODES: Readonly<Record<string, XdsCode>> = {
  '34794-8': { code: '10', displayName: 'Compte rendu', codingScheme: CLASS_SCHEME },
  '18776-5': { code: '44', displayName: 'Plan de soins', codingScheme: CLASS_SCHEME },
};

/** formatCode by CI-SIS document template (STANDARDS.md). */
const FORMAT_CODES: Readonly<Record<string, XdsCode>> = {
  '1.2.250.1.213.1.1.1.8': {
    code: 'urn:asip:ci-sis:frcp:2011',
    displayName: 'Fiche RCP',
    codingScheme: FORMAT_SCHEME,
  },
  '1.2.250.1.213.1.1.1.26': {
    code: 'urn:asip:ci-sis:pps-cancer:2017',
    displayName: 'PPS cancérologie',
    codingScheme: FORMAT_SCHEME,
  },
  '1.2.250.1.213.1.1.1.32': {
    code: 'urn:asip:ci-sis:crgm:2018',
    displayName: 'CR de génétique moléculaire',
    codingScheme: FORMAT_SCHEME,
  },
  '1.2.250.1.213.1.1.1.57': {
    code: 'urn:ihe:palm:apsr:2016',
    displayName: 'CR-ACP',
    codingScheme: FORMAT_SCHEME,
  },
};

const PDF_FORMAT: XdsCode = {
  code: 'urn:ihe:iti:xds:2017:mimeTypeSufficient',
  displayName: 'Format défini par le type MIME',
  codingScheme: '1.3.6.1.4.1.19376.1.2.3',
};

/** The agency's examples' practice setting for documents of a health establishment. */
export const ESTABLISHMENT_PRACTICE: XdsCode = {
  code: 'ETABLISSEMENT',
  displayName: 'Etablissement de santé',
  codingScheme: '1.2.250.1.213.1.1.4.9',
};

// ebRIM / XDS.b identifiers (IHE ITI TF-3 4.2.5).
const UUID = {
  documentEntry: 'urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1',
  submissionSet: 'urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd',
  entryAuthor: 'urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d',
  classCode: 'urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a',
  confidentiality: 'urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f',
  formatCode: 'urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d',
  facilityType: 'urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1',
  practiceSetting: 'urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead',
  typeCode: 'urn:uuid:f0306f51-975f-434e-a61c-c59651d33983',
  entryPatientId: 'urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427',
  entryUniqueId: 'urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab',
  setAuthor: 'urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d',
  contentType: 'urn:uuid:aa543740-bdda-424e-8c96-df4873be8500',
  setUniqueId: 'urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8',
  setSourceId: 'urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832',
  setPatientId: 'urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446',
};
const APPROVED = 'urn:oasis:names:tc:ebxml-regrep:StatusType:Approved';
const ASSOCIATION = 'urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember';
const XFRM = 'urn:ihe:iti:2007:AssociationType:XFRM';
const RPLC = 'urn:ihe:iti:2007:AssociationType:RPLC';

const NS = {
  'xmlns:lcm': 'urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0',
  'xmlns:rim': 'urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0',
};

const INS_ROOTS = new Set([
  '1.2.250.1.213.1.4.8',
  '1.2.250.1.213.1.4.9',
  '1.2.250.1.213.1.4.10',
  '1.2.250.1.213.1.4.11',
]);
const RPPS_ROOT = '1.2.250.1.71.4.2.1';
const FINESS_ROOT = '1.2.250.1.71.4.2.2';

function incomplete(what: string): StepError {
  return new StepError(
    'XDM_CDA_INCOMPLETE',
    `the CDA document has no ${what}: its XDS metadata cannot be written`,
  );
}

/** A name-based UUID (RFC 9562 version 5 layout over SHA-1): the same document id, the same entry UUID. */
export function entryUuid(uniqueId: string): string {
  const h = createHash('sha1').update(`onco-relay:xds:${uniqueId}`).digest();
  h[6] = ((h[6] ?? 0) & 0x0f) | 0x50;
  h[8] = ((h[8] ?? 0) & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `urn:uuid:${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/** XDS DTM: the instant in UTC, `YYYYMMDDHHMMSS` (or the date alone when the TS is only a date). */
function dtm(ts: string | undefined): string | undefined {
  if (ts === undefined || ts === '') return undefined;
  if (/^\d{4,8}$/.test(ts)) return ts;
  const date = tsToDate(ts);
  return date === undefined ? undefined : date.toISOString().replace(/[-:T]/g, '').slice(0, 14);
}

function uniqueIdOf(i: { root: string; extension?: string }): string {
  return i.extension === undefined ? i.root : `${i.root}^${i.extension}`;
}

/** `matricule^^^&OID&ISO^NH` for the INS, `IPP^^^&OID&ISO^PI` for an establishment's id. */
function cx(i: { root: string; extension?: string }): string {
  return `${i.extension ?? ''}^^^&${i.root}&ISO^${INS_ROOTS.has(i.root) ? 'NH' : 'PI'}`;
}

/** XCN of a professional: `IdNat^FAMILY^Given^^^Prefix^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS`. */
function xcn(entity: XmlElement | undefined, personPath: string): string | undefined {
  if (entity === undefined) return undefined;
  const id = element(entity, 'id');
  const name = element(entity, `${personPath}/name`);
  const part = (local: string): string => (name === undefined ? '' : text(element(name, local)));
  const rpps = attr(id, 'root') === RPPS_ROOT;
  const ext = attr(id, 'extension') ?? '';
  return `${ext}^${part('family')}^${part('given')}^^^${part('prefix')}^^^${
    ext === '' ? '' : `&${attr(id, 'root') ?? ''}&ISO`
  }^D^^^${rpps ? 'IDNPS' : ''}`;
}

/** XON of an organisation: `Name^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^1310000001`. */
function xon(org: XmlElement | undefined): string | undefined {
  if (org === undefined) return undefined;
  const id = element(org, 'id');
  const name = text(element(org, 'name'));
  const ext = attr(id, 'extension');
  if (ext === undefined) return name;
  return `${name}^^^^^&${attr(id, 'root') ?? ''}&ISO^${attr(id, 'root') === FINESS_ROOT ? 'IDNST' : ''}^^^${ext}`;
}

function codeOf(node: XmlElement | undefined): XdsCode | undefined {
  const code = attr(node, 'code');
  const scheme = attr(node, 'codeSystem');
  if (code === undefined || scheme === undefined) return undefined;
  return { code, displayName: attr(node, 'displayName') ?? code, codingScheme: scheme };
}

interface Entry {
  id: string;
  uniqueId: string;
  uri: string;
  bytes: Buffer;
  mimeType: string;
  formatCode: XdsCode;
  summary: CdaSummary;
  header: XmlElement;
  classCode: XdsCode;
  practiceSetting: XdsCode;
}

function slot(name: string, ...values: Array<string | undefined>): Xml | false {
  const present = values.filter((v): v is string => v !== undefined && v !== '');
  return (
    present.length > 0 &&
    el(
      'rim:Slot',
      { name },
      el(
        'rim:ValueList',
        {},
        present.map((v) => el('rim:Value', {}, v)),
      ),
    )
  );
}

function localized(tag: 'rim:Name' | 'rim:Description', value: string): Xml {
  return el(tag, {}, el('rim:LocalizedString', { value, 'xml:lang': 'fr-FR', charset: 'UTF-8' }));
}

function classification(scheme: string, object: string, code: XdsCode, ids: () => string): Xml {
  return el(
    'rim:Classification',
    { classificationScheme: scheme, classifiedObject: object, nodeRepresentation: code.code, id: ids() },
    slot('codingScheme', code.codingScheme),
    localized('rim:Name', code.displayName),
  );
}

function externalIdentifier(
  scheme: string,
  object: string,
  value: string,
  name: string,
  ids: () => string,
): Xml {
  return el(
    'rim:ExternalIdentifier',
    { identificationScheme: scheme, value, id: ids(), registryObject: object },
    localized('rim:Name', name),
  );
}

function documentEntry(e: Entry, patientId: string, ids: () => string): Xml {
  const doc = e.header;
  const s = e.summary;
  const author = element(doc, 'author/assignedAuthor');
  const event = element(doc, 'documentationOf/serviceEvent/effectiveTime');
  const ipp = s.patientIds.find((i) => !INS_ROOTS.has(i.root)) ?? s.patientIds[0];
  const confidentiality = codeOf(element(doc, 'confidentialityCode'));
  const facility = codeOf(element(doc, 'componentOf/encompassingEncounter/location/healthCareFacility/code'));
  if (confidentiality === undefined) throw incomplete('confidentialityCode');
  if (facility === undefined) throw incomplete('healthCareFacility code (healthcareFacilityTypeCode)');
  return el(
    'rim:ExtrinsicObject',
    { id: e.id, mimeType: e.mimeType, objectType: UUID.documentEntry, status: APPROVED },
    slot('creationTime', dtm(s.effectiveTime)),
    slot('hash', createHash('sha1').update(e.bytes).digest('hex')),
    slot('languageCode', attr(element(doc, 'languageCode'), 'code') ?? 'fr-FR'),
    slot('legalAuthenticator', xcn(element(doc, 'legalAuthenticator/assignedEntity'), 'assignedPerson')),
    slot('serviceStartTime', dtm(attr(element(event ?? doc, 'low'), 'value') ?? attr(event, 'value'))),
    slot('serviceStopTime', dtm(attr(element(event ?? doc, 'high'), 'value'))),
    slot('size', String(e.bytes.length)),
    slot('sourcePatientId', ipp === undefined ? undefined : cx(ipp)),
    slot(
      'sourcePatientInfo',
      ...s.patientIds.map((i) => `PID-3|${cx(i)}`),
      `PID-5|${s.birthName}^${s.firstGivenName}^^^^^L`,
      s.usedName === undefined ? undefined : `PID-5|${s.usedName}^^^^^^D`,
      `PID-7|${s.birthDate}`,
      `PID-8|${s.sex}`,
    ),
    slot('URI', e.uri),
    localized('rim:Name', text(element(doc, 'title')) || s.code.displayName),
    el(
      'rim:Classification',
      { classificationScheme: UUID.entryAuthor, classifiedObject: e.id, nodeRepresentation: '', id: ids() },
      slot('authorPerson', xcn(author, 'assignedPerson')),
      slot(
        'authorInstitution',
        xon(author === undefined ? undefined : element(author, 'representedOrganization')),
      ),
      slot(
        'authorSpecialty',
        (() => {
          const c = codeOf(author === undefined ? undefined : element(author, 'code'));
          return c === undefined ? undefined : `${c.code}^${c.displayName}^${c.codingScheme}`;
        })(),
      ),
    ),
    classification(UUID.classCode, e.id, e.classCode, ids),
    classification(UUID.confidentiality, e.id, confidentiality, ids),
    classification(UUID.formatCode, e.id, e.formatCode, ids),
    classification(UUID.facilityType, e.id, facility, ids),
    classification(UUID.practiceSetting, e.id, e.practiceSetting, ids),
    classification(UUID.typeCode, e.id, { ...s.code, codingScheme: LOINC }, ids),
    externalIdentifier(UUID.entryPatientId, e.id, patientId, 'XDSDocumentEntry.patientId', ids),
    externalIdentifier(UUID.entryUniqueId, e.id, e.uniqueId, 'XDSDocumentEntry.uniqueId', ids),
  );
}

function association(type: string, source: string, target: string, id: string, ...children: Xml[]): Xml {
  return el(
    'rim:Association',
    { associationType: type, sourceObject: source, targetObject: target, id },
    ...children,
  );
}

function entriesOf(documents: readonly XdmDocument[]): Entry[] {
  const entries: Entry[] = [];
  documents.forEach((d) => {
    const header = d.parsed ?? parseXml(d.cda);
    if (header.local !== 'ClinicalDocument') throw incomplete('ClinicalDocument root');
    const summary = summarizeCda(header);
    const template = elements(header, 'templateId')
      .map((t) => attr(t, 'root') ?? '')
      .find((root) => FORMAT_CODES[root] !== undefined);
    const formatCode = template === undefined ? undefined : FORMAT_CODES[template];
    if (formatCode === undefined)
      throw incomplete('CI-SIS document template this packaging knows (FRCP, PPS, CR-GM, CR-ACP)');
    const classCode = d.classCode ?? CLASS_CODES[summary.code.code];
    if (classCode === undefined) {
      throw new StepError(
        'XDM_NO_CLASS_CODE',
        `no XDS classCode is known for documents of type ${summary.code.code}`,
      );
    }
    const practiceSetting =
      codeOf(element(header, 'author/assignedAuthor/representedOrganization/standardIndustryClassCode')) ??
      d.practiceSetting ??
      ESTABLISHMENT_PRACTICE;
    const base = { summary, header, classCode, practiceSetting };
    const uniqueId = uniqueIdOf(summary.id);
    const n = entries.length + 1;
    entries.push({
      ...base,
      id: entryUuid(uniqueId),
      uniqueId,
      uri: `DOC${String(n).padStart(4, '0')}.XML`,
      bytes: typeof d.cda === 'string' ? Buffer.from(d.cda, 'utf8') : d.cda,
      mimeType: 'text/xml',
      formatCode,
    });
    if (d.pdf !== undefined) {
      const pdfId = `${uniqueId}${summary.id.extension === undefined ? '^' : ''}-PDF`;
      entries.push({
        ...base,
        id: entryUuid(pdfId),
        uniqueId: pdfId,
        uri: `DOC${String(n + 1).padStart(4, '0')}.PDF`,
        // Read only (the zip copies it): the caller's rendering itself, no copy of it.
        bytes: Buffer.isBuffer(d.pdf) ? d.pdf : Buffer.from(d.pdf),
        mimeType: 'application/pdf',
        formatCode: PDF_FORMAT,
      });
    }
  });
  return entries;
}

/** The patient every document of the set is about, as XDS patientId (the INS when qualified). */
function setPatient(entries: readonly Entry[]): string {
  const ids = new Set(
    entries.map((e) => {
      const ins = e.summary.patientIds.find((i) => INS_ROOTS.has(i.root));
      return cx(ins ?? (e.summary.patientIds[0] as { root: string; extension?: string }));
    }),
  );
  if (ids.size !== 1) {
    throw new StepError(
      'XDM_MIXED_PATIENTS',
      'the documents of one XDM set must all be about the same patient',
    );
  }
  return [...ids][0] as string;
}

/** METADATA.XML of a submission set and its documents. */
export function xdmMetadata(documents: readonly XdmDocument[], submission: XdmSubmission): string {
  return metadataOf(entriesOf(documents), submission);
}

function metadataOf(entries: readonly Entry[], submission: XdmSubmission): string {
  if (entries.length === 0) {
    throw new StepError('XDM_EMPTY', 'an XDM submission set needs at least one document');
  }
  let n = 0;
  const ids = (): string => `id-${++n}`;
  const patientId = setPatient(entries);
  const first = entries[0] as Entry;
  const author = element(first.header, 'author/assignedAuthor');
  // A UUID, as XDM media want every entryUUID to be; derived, so the same set has the same one.
  const set = entryUuid(`submission-set:${submission.uniqueId}`);
  const pdfTarget = new Map<Entry, Entry>();
  entries.forEach((e, i) => {
    const previous = entries[i - 1];
    if (e.mimeType === 'application/pdf' && previous !== undefined) pdfTarget.set(e, previous);
  });
  const objects: Xml[] = [
    ...entries.map((e) => documentEntry(e, patientId, ids)),
    el(
      'rim:RegistryPackage',
      { id: set, objectType: 'urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:RegistryPackage' },
      slot('submissionTime', dtm(submission.submissionTime)),
      slot('intendedRecipient', ...(submission.recipients ?? []).map((r) => `||^^Internet^${r}`)),
      localized(
        'rim:Name',
        submission.title ?? (text(element(first.header, 'title')) || first.summary.code.displayName),
      ),
      el(
        'rim:Classification',
        { classificationScheme: UUID.setAuthor, classifiedObject: set, nodeRepresentation: '', id: ids() },
        slot('authorPerson', xcn(author, 'assignedPerson')),
        slot(
          'authorInstitution',
          xon(author === undefined ? undefined : element(author, 'representedOrganization')),
        ),
      ),
      submission.contentType !== undefined &&
        classification(UUID.contentType, set, submission.contentType, ids),
      externalIdentifier(UUID.setUniqueId, set, submission.uniqueId, 'XDSSubmissionSet.uniqueId', ids),
      externalIdentifier(UUID.setSourceId, set, submission.sourceId, 'XDSSubmissionSet.sourceId', ids),
      externalIdentifier(UUID.setPatientId, set, patientId, 'XDSSubmissionSet.patientId', ids),
    ),
    el('rim:Classification', { classifiedObject: set, classificationNode: UUID.submissionSet, id: ids() }),
    ...entries.map((e) =>
      association(ASSOCIATION, set, e.id, ids(), slot('SubmissionSetStatus', 'Original') as Xml),
    ),
    ...entries.flatMap((e) => {
      const target = pdfTarget.get(e);
      const replaced = e.summary.replaces;
      return [
        target !== undefined && association(XFRM, e.id, target.id, ids()),
        replaced !== undefined &&
          e.mimeType === 'text/xml' &&
          association(RPLC, e.id, entryUuid(uniqueIdOf(replaced)), ids()),
      ].filter((x): x is Xml => x !== false);
    }),
  ];
  const root = el('lcm:SubmitObjectsRequest', NS, el('rim:RegistryObjectList', {}, objects));
  return `<?xml version="1.0" encoding="UTF-8"?>\n${root.markup}\n`;
}

function readme(entries: readonly Entry[], submission: XdmSubmission): string {
  return [
    'IHE XDM (ITI-32) - Onco-Relay, Dossier Communicant de Cancérologie',
    '',
    `Lot ${submission.uniqueId}, émis par ${submission.sourceId} le ${dtm(submission.submissionTime) ?? ''} (UTC).`,
    `Documents (${entries.length}) dans IHE_XDM/SUBSET01/, métadonnées XDS dans IHE_XDM/SUBSET01/METADATA.XML :`,
    ...entries.map((e) => `  ${e.uri}  ${e.mimeType}  ${e.summary.code.displayName}`),
    '',
  ].join('\r\n');
}

function index(entries: readonly Entry[]): string {
  const page = el(
    'html',
    {},
    el('head', {}, el('meta', { charset: 'UTF-8' }), el('title', {}, 'IHE XDM')),
    el(
      'body',
      {},
      el('h1', {}, 'Documents transmis (IHE XDM)'),
      el('p', {}, el('a', { href: 'README.TXT' }, 'README.TXT')),
      el(
        'ul',
        {},
        entries.map((e) =>
          el(
            'li',
            {},
            el('a', { href: `IHE_XDM/SUBSET01/${e.uri}` }, `${e.summary.code.displayName} (${e.uri})`),
          ),
        ),
      ),
      el('p', {}, el('a', { href: 'IHE_XDM/SUBSET01/METADATA.XML' }, 'METADATA.XML')),
    ),
  );
  return `<!DOCTYPE html>\n${page.markup}\n`;
}

/**
 * `IHE_XDM.ZIP` of a set of documents for one patient, as bytes. Deterministic: entries in a fixed
 * order, dated from the submission time.
 */
export async function xdmPackage(
  documents: readonly XdmDocument[],
  submission: XdmSubmission,
): Promise<Buffer> {
  const entries = entriesOf(documents);
  const metadata = metadataOf(entries, submission);
  const mtime = tsToDate(submission.submissionTime);
  if (mtime === undefined) {
    throw new StepError(
      'XDM_BAD_TIME',
      `the submission time "${submission.submissionTime}" is not an HL7 TS`,
    );
  }
  // Deflated: the XML, which shrinks to a fifth. Stored: the PDF, whose pages are deflated already,
  // and the two small texts, for which setting up a deflate stream costs more than the bytes it saves.
  const file = (name: string, content: string | Buffer, deflate: boolean): ZipEntry => ({
    name,
    content: typeof content === 'string' ? Buffer.from(content, 'utf8') : content,
    deflate,
  });
  return zipBytes(
    [
      file('INDEX.HTM', index(entries), false),
      file('README.TXT', readme(entries, submission), false),
      file('IHE_XDM/SUBSET01/METADATA.XML', metadata, true),
      ...entries.map((e) => file(`IHE_XDM/SUBSET01/${e.uri}`, e.bytes, e.mimeType !== 'application/pdf')),
    ],
    mtime,
  );
}
