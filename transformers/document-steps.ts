// Packaging steps of documents out (issue 11 items 4-5): after `rcp-cda` (transformers/rcp-document.ts)
// has written a validated form or programme as its CI-SIS CDA, a recipient's channel turns it into
// the format that recipient reads — `cda-pdf` (its PDF), `cda-xdm` (IHE_XDM.ZIP for MSSanté and Mon
// espace santé) or `cda-hl7v2` (MDM^T02/T10 or ORU^R01 for a record system). Each reads the CDA, so
// every format says exactly what the CDA says. `meta.fileExtension` names what the content became,
// for a file name template such as `{meta.fileName}.{meta.fileExtension}`.
//
// Steps have no clock and no randomness: times come from the document (its validation), ids from
// its ids and the recipient, so a retried delivery sends the same bytes under the same ids
// (MSH-10, submission set uniqueId) and the receiver recognises the repeat.
import { createHash } from 'node:crypto';
import Type from 'typebox';
import { Default, type OptionsOf, type StepSpec } from './contract.ts';
import { packageCda } from './mdm-out.ts';
import { PDF_CONTENT_TYPE, renderPdf } from './pdf-render.ts';
import { XDM_CONTENT_TYPE, XDM_FILE_NAME, entryUuid, xdmPackage } from './xdm-package.ts';
import { attr, element, parseXml, type XmlElement } from './xml.ts';

export const HL7V2_CONTENT_TYPE = 'application/hl7-v2';

const OID_PATTERN = '^[0-2](\\.(0|[1-9][0-9]*))+$';

/** The document id of a CDA as XDS writes it: `root^extension`. */
function documentKey(doc: XmlElement): string {
  const id = element(doc, 'id');
  return `${attr(id, 'root') ?? ''}^${attr(id, 'extension') ?? ''}`;
}

// ---- cda-pdf ---------------------------------------------------------------------------------------

const pdfSchema = Type.Object({});

export const cdaPdfStep: StepSpec<OptionsOf<typeof pdfSchema>> = {
  kind: 'step',
  type: 'cda-pdf',
  offThread: import.meta.url,
  summary: 'Renders the CDA document as a PDF (header, patient, participants, every section, validation).',
  schema: pdfSchema,
  create: () => (input) => ({
    content: renderPdf(input.content),
    contentType: PDF_CONTENT_TYPE,
    meta: { ...input.meta, fileExtension: 'pdf' },
  }),
};

// ---- cda-xdm ---------------------------------------------------------------------------------------

const xdsCode = {
  code: Type.String({ minLength: 1, description: 'the code (nodeRepresentation)' }),
  displayName: Type.String({ minLength: 1, description: 'its display name' }),
  codingScheme: Type.String({ pattern: OID_PATTERN, description: 'OID of its code system (codingScheme)' }),
};

const xdmSchema = Type.Object({
  sourceId: Type.String({
    pattern: OID_PATTERN,
    description: 'OID of this sender (XDS submission set sourceId)',
  }),
  includePdf: Default(Type.Boolean({ description: 'carry the PDF rendering beside the CDA' }), true),
  classCode: Type.Optional(
    Type.Object(xdsCode, { description: 'XDS classCode (JDV_J06); default: 10 for an FRCP, 44 for a PPS' }),
  ),
  recipientMeta: Default(
    Type.String({ description: 'meta field holding the recipient MSSanté address (XDM intendedRecipient)' }),
    'to',
  ),
});

/** An OID from a UUID (ITU-T X.667: 2.25 then the UUID as one integer). */
function uuidOid(urn: string): string {
  return `2.25.${BigInt(`0x${urn.replace(/^urn:uuid:|-/g, '')}`).toString()}`;
}

export const cdaXdmStep: StepSpec<OptionsOf<typeof xdmSchema>> = {
  kind: 'step',
  type: 'cda-xdm',
  offThread: import.meta.url,
  summary:
    'Packages the CDA document (and its PDF) as IHE_XDM.ZIP with METADATA.XML, for MSSanté mail and Mon espace santé.',
  schema: xdmSchema,
  create: (o) => async (input) => {
    const cda = input.content.toString('utf8');
    const doc = parseXml(cda);
    const recipient = input.meta[o.recipientMeta];
    const recipients = typeof recipient === 'string' && recipient !== '' ? [recipient] : [];
    // One set per document and recipient: the same delivery retried is the same set.
    const setKey = entryUuid(`${documentKey(doc)}|${recipients.join(',')}`);
    const zip = await xdmPackage(
      [{ cda, parsed: doc, pdf: o.includePdf ? renderPdf(doc) : undefined, classCode: o.classCode }],
      {
        uniqueId: uuidOid(setKey),
        sourceId: o.sourceId,
        submissionTime: attr(element(doc, 'effectiveTime'), 'value') ?? '',
        recipients,
      },
    );
    return {
      content: zip,
      contentType: XDM_CONTENT_TYPE,
      meta: { ...input.meta, fileExtension: 'zip', attachmentName: XDM_FILE_NAME },
    };
  },
};

// ---- cda-hl7v2 -------------------------------------------------------------------------------------

const hl7v2Schema = Type.Object({
  structure: Default(
    Type.Enum(['MDM', 'ORU'], {
      description: 'MDM^T02/T10 (v2.6) or ORU^R01 (v2.5), as the record system reads',
    }),
    'MDM',
  ),
  sendingApplication: Default(Type.String({ minLength: 1, description: 'MSH-3' }), 'ONCO-RELAY'),
  sendingFacility: Default(Type.String({ minLength: 1, description: 'MSH-4' }), 'DCC'),
  receivingApplication: Type.String({ minLength: 1, description: 'MSH-5: the record system' }),
  receivingFacility: Type.String({ minLength: 1, description: 'MSH-6: its establishment' }),
  processingId: Default(Type.Enum(['P', 'T', 'D'], { description: 'MSH-11' }), 'P'),
  includePdf: Default(Type.Boolean({ description: 'carry the PDF in a second ED OBX' }), true),
  replacementEvent: Default(
    Type.Enum(['T10', 'T04'], {
      description:
        "MDM event of a corrected document: T10 as the agency's examples, T04 for systems that expect it",
    }),
    'T10',
  ),
});

export const cdaHl7v2Step: StepSpec<OptionsOf<typeof hl7v2Schema>> = {
  kind: 'step',
  type: 'cda-hl7v2',
  offThread: import.meta.url,
  summary:
    'Packages the CDA document (base64 in an ED OBX, and its PDF) as HL7 v2 MDM^T02/T10 or ORU^R01 for a record system.',
  schema: hl7v2Schema,
  create: (o) => (input) => {
    const cda = input.content.toString('utf8');
    const doc = parseXml(cda);
    const controlId = createHash('sha1')
      .update(`${documentKey(doc)}|${o.receivingApplication}|${o.receivingFacility}`)
      .digest('hex')
      .slice(0, 20);
    const message = packageCda(
      cda,
      {
        structure: o.structure,
        sendingApplication: o.sendingApplication,
        sendingFacility: o.sendingFacility,
        receivingApplication: o.receivingApplication,
        receivingFacility: o.receivingFacility,
        messageControlId: controlId,
        timestamp: (attr(element(doc, 'effectiveTime'), 'value') ?? '').slice(0, 14),
        processingId: o.processingId,
        replacementEvent: o.replacementEvent,
      },
      o.includePdf ? renderPdf(doc) : undefined,
      doc,
    );
    return {
      content: Buffer.from(message, 'utf8'),
      contentType: HL7V2_CONTENT_TYPE,
      meta: { ...input.meta, fileExtension: 'hl7' },
    };
  },
};
