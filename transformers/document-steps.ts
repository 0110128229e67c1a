// Packaging steps of documents out (issue 11 items 4-5): after `rcp-cda` (transformers/rcp-document.ts)
// has written a validated form or programme as its CI-SIS CDA, a recipient's channel turns it into
// the format that recipient reads — `cda-pdf` (its PDF), `cda-xdm` (IHE_XDM.ZIP for MSSanté and Mon
// espace santé) or `cda-hl7v2` (MDM^T02/T10 or ORU^R01 for a record system). Each reads the CDA, so
// every format says exactly what the CDA says. `meta.fileExtension` names what the content became,
// for a file name template such as `{meta.fileName}.{meta.fileExtension}`. The way channels compose
// them per recipient: `document-format` sends an establishment what its directory route asks
// (`meta.format`: the CDA with its PDF beside, an XDM zip, or an HL7 v2 file), `document-mail` makes
// the MSSanté mail (the XDM zip and the PDF, subject and `X-MSS-*` headers).
//
// Steps have no clock and no randomness: times come from the document (its validation), ids from
// its ids and the recipient, so a retried delivery sends the same bytes under the same ids
// (MSH-10, submission set uniqueId) and the receiver recognises the repeat.
import { createHash } from 'node:crypto';
import Type from 'typebox';
import {
  Default,
  StepError,
  readOptions,
  type MetaValue,
  type OptionsOf,
  type Step,
  type StepInput,
  type StepSpec,
} from './contract.ts';
import { packageCda, summarizeCda } from './mdm-out.ts';
import { MAIL_JSON, mailJson } from './mss-mail.ts';
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

/**
 * The PDF of a CDA. Every recipient of a document gets the same PDF, and their messages pass the way
 * channels close together: the last few renderings are kept, by the CDA's digest, so a document is
 * drawn once rather than once per recipient (rendering is deterministic: the same bytes either way).
 */
const recentPdfs = new Map<string, Buffer>();
const RECENT_PDFS = 32;

function pdfFor(cda: string | Buffer, doc?: XmlElement): Buffer {
  const key = createHash('sha256').update(cda).digest('base64');
  let pdf = recentPdfs.get(key);
  if (pdf === undefined) {
    pdf = renderPdf(doc ?? cda);
    recentPdfs.set(key, pdf);
    if (recentPdfs.size > RECENT_PDFS) recentPdfs.delete(recentPdfs.keys().next().value!);
  }
  return pdf;
}

// ---- cda-pdf ---------------------------------------------------------------------------------------

const pdfSchema = Type.Object({});

function pdfOf(input: StepInput): StepInput {
  return {
    // A copy: a step's output may be moved to another thread (the step pool), which would empty
    // the kept rendering under the next recipient.
    content: Buffer.from(pdfFor(input.content)),
    contentType: PDF_CONTENT_TYPE,
    meta: { ...input.meta, fileExtension: 'pdf' },
  };
}

export const cdaPdfStep: StepSpec<OptionsOf<typeof pdfSchema>> = {
  kind: 'step',
  type: 'cda-pdf',
  offThread: import.meta.url,
  summary: 'Renders the CDA document as a PDF (header, patient, participants, every section, validation).',
  schema: pdfSchema,
  create: () => pdfOf,
};

// ---- cda-xdm ---------------------------------------------------------------------------------------

const xdsCode = {
  code: Type.String({ minLength: 1, description: 'the code (nodeRepresentation)' }),
  displayName: Type.String({ minLength: 1, description: 'its display name' }),
  codingScheme: Type.String({ pattern: OID_PATTERN, description: 'OID of its code system (codingScheme)' }),
};

const sourceId = Type.String({
  pattern: OID_PATTERN,
  description: 'OID of this sender (XDS submission set sourceId)',
});

const classCode = Type.Optional(
  Type.Object(xdsCode, { description: 'XDS classCode (JDV_J06); default: 10 for an FRCP, 44 for a PPS' }),
);

const xdmSchema = Type.Object({
  sourceId,
  includePdf: Default(Type.Boolean({ description: 'carry the PDF rendering beside the CDA' }), true),
  classCode,
  recipientMeta: Default(
    Type.String({ description: 'meta field holding the recipient MSSanté address (XDM intendedRecipient)' }),
    'to',
  ),
});

/** An OID from a UUID (ITU-T X.667: 2.25 then the UUID as one integer). */
function uuidOid(urn: string): string {
  return `2.25.${BigInt(`0x${urn.replace(/^urn:uuid:|-/g, '')}`).toString()}`;
}

/** IHE_XDM.ZIP of one CDA for one recipient (or none), with its PDF when given. */
function xdmOf(
  cda: string | Buffer,
  doc: XmlElement,
  o: { sourceId: string; classCode?: OptionsOf<typeof xdmSchema>['classCode'] },
  recipient: MetaValue | undefined,
  pdf: Buffer | undefined,
): Promise<Buffer> {
  const recipients = typeof recipient === 'string' && recipient !== '' ? [recipient] : [];
  // One set per document and recipient: the same delivery retried is the same set.
  const setKey = entryUuid(`${documentKey(doc)}|${recipients.join(',')}`);
  return xdmPackage([{ cda, parsed: doc, pdf, classCode: o.classCode }], {
    uniqueId: uuidOid(setKey),
    sourceId: o.sourceId,
    submissionTime: attr(element(doc, 'effectiveTime'), 'value') ?? '',
    recipients,
  });
}

const xdmMeta = (meta: StepInput['meta']): StepInput['meta'] => ({
  ...meta,
  fileExtension: 'zip',
  attachmentName: XDM_FILE_NAME,
});

export const cdaXdmStep: StepSpec<OptionsOf<typeof xdmSchema>> = {
  kind: 'step',
  type: 'cda-xdm',
  offThread: import.meta.url,
  summary:
    'Packages the CDA document (and its PDF) as IHE_XDM.ZIP with METADATA.XML, for MSSanté mail and Mon espace santé.',
  schema: xdmSchema,
  create: (o) => async (input) => {
    const doc = parseXml(input.content);
    const pdf = o.includePdf ? pdfFor(input.content, doc) : undefined;
    return {
      content: await xdmOf(input.content, doc, o, input.meta[o.recipientMeta], pdf),
      contentType: XDM_CONTENT_TYPE,
      meta: xdmMeta(input.meta),
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
  receivingApplication: Type.Optional(
    Type.String({
      minLength: 1,
      description:
        'MSH-5: the record system; default meta.receivingApplication (the establishment’s documents route `application`), else empty',
    }),
  ),
  receivingFacility: Type.Optional(
    Type.String({
      minLength: 1,
      description: 'MSH-6: its establishment; default meta.finess (the recipient establishment’s FINESS)',
    }),
  ),
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

type Hl7v2Options = OptionsOf<typeof hl7v2Schema>;

const metaString = (v: MetaValue | undefined): string => (typeof v === 'string' ? v : '');

function hl7v2Of(o: Hl7v2Options, input: StepInput): StepInput {
  const cda = input.content.toString('utf8');
  const doc = parseXml(cda);
  const receivingApplication = o.receivingApplication ?? metaString(input.meta.receivingApplication);
  const receivingFacility = o.receivingFacility ?? metaString(input.meta.finess);
  const controlId = createHash('sha1')
    .update(`${documentKey(doc)}|${receivingApplication}|${receivingFacility}`)
    .digest('hex')
    .slice(0, 20);
  const message = packageCda(
    cda,
    {
      structure: o.structure,
      sendingApplication: o.sendingApplication,
      sendingFacility: o.sendingFacility,
      receivingApplication,
      receivingFacility,
      messageControlId: controlId,
      timestamp: (attr(element(doc, 'effectiveTime'), 'value') ?? '').slice(0, 14),
      processingId: o.processingId,
      replacementEvent: o.replacementEvent,
    },
    o.includePdf ? pdfFor(cda, doc) : undefined,
    doc,
  );
  return {
    content: Buffer.from(message, 'utf8'),
    contentType: HL7V2_CONTENT_TYPE,
    meta: { ...input.meta, fileExtension: 'hl7' },
  };
}

export const cdaHl7v2Step: StepSpec<Hl7v2Options> = {
  kind: 'step',
  type: 'cda-hl7v2',
  offThread: import.meta.url,
  summary:
    'Packages the CDA document (base64 in an ED OBX, and its PDF) as HL7 v2 MDM^T02/T10 or ORU^R01 for a record system.',
  schema: hl7v2Schema,
  create: (o) => (input) => hl7v2Of(o, input),
};

// ---- document-format -------------------------------------------------------------------------------

/** What an establishment's documents route may ask for (`format` in directory.yaml). */
export const DOCUMENT_FORMATS = ['cda', 'xdm', 'hl7v2'] as const;

const formatSchema = Type.Object({
  part: Default(
    Type.Enum(['document', 'pdf'], {
      description:
        'document: what the route’s format asks (cda: the CDA itself; xdm: IHE_XDM.ZIP with the PDF inside; hl7v2: MDM^T02/T10 with CDA and PDF); pdf: the PDF beside a CDA, FILTERED for the formats that carry it inside',
    }),
    'document',
  ),
  sourceId: Default(sourceId, '1.2.250.1.999.1'),
  classCode,
  hl7v2: Default(
    Type.Object(hl7v2Schema.properties, {
      additionalProperties: false,
      description: 'options of the HL7 v2 packaging (as the cda-hl7v2 step)',
    }),
    {},
  ),
});

export const documentFormatStep: StepSpec<OptionsOf<typeof formatSchema>> = {
  kind: 'step',
  type: 'document-format',
  offThread: import.meta.url,
  summary:
    'Packages the CDA for an establishment as its documents route asks (meta.format: cda, xdm, hl7v2): the document itself, or (part pdf) the PDF beside a CDA.',
  schema: formatSchema,
  create: (o): Step => {
    const hl7v2 = readOptions(hl7v2Schema, o.hl7v2);
    return async (input) => {
      const format = input.meta.format ?? 'cda';
      if (!(DOCUMENT_FORMATS as readonly MetaValue[]).includes(format))
        throw new StepError('DOCUMENT_FORMAT_UNKNOWN', `no document format "${String(format)}"`);
      if (o.part === 'pdf') return format === 'cda' ? pdfOf(input) : null;
      if (format === 'hl7v2') return hl7v2Of(hl7v2, input);
      if (format === 'cda') return { ...input, meta: { ...input.meta, fileExtension: 'xml' } };
      const cda = input.content.toString('utf8');
      const doc = parseXml(cda);
      return {
        content: await xdmOf(cda, doc, o, undefined, pdfFor(cda, doc)),
        contentType: XDM_CONTENT_TYPE,
        meta: xdmMeta(input.meta),
      };
    };
  },
};

// ---- document-mail ---------------------------------------------------------------------------------

/** Subject labels of the documents the DCC writes, by LOINC code (others: the code's display name). */
const SUBJECT_LABELS: Readonly<Record<string, string>> = { '34794-8': 'FRCP', '18776-5': 'PPS' };

/** National INS authorities (STANDARDS.md): a recordTarget id under one of them is the patient's INS. */
const INS_ROOTS = new Set([
  '1.2.250.1.213.1.4.8',
  '1.2.250.1.213.1.4.9',
  '1.2.250.1.213.1.4.10',
  '1.2.250.1.213.1.4.11',
]);

const mailSchema = Type.Object({ sourceId, classCode });

export const documentMailStep: StepSpec<OptionsOf<typeof mailSchema>> = {
  kind: 'step',
  type: 'document-mail',
  offThread: import.meta.url,
  summary:
    'Makes the MSSanté mail of a CDA document for meta.to: IHE_XDM.ZIP (METADATA.XML, CDA, PDF) and the PDF attached, subject XDM/1.0/DDM+<label> <NAME> <given> <birth date>, X-MSS-CODECDA, X-MSS-INS, X-MSS-MES: FIN to Mon espace santé.',
  schema: mailSchema,
  create: (o) => async (input) => {
    const cda = input.content.toString('utf8');
    const doc = parseXml(cda);
    const header = summarizeCda(doc);
    const pdf = pdfFor(cda, doc);
    const to = metaString(input.meta.to);
    const label = SUBJECT_LABELS[header.code.code] ?? header.code.displayName;
    const name = metaString(input.meta.fileName) || 'document';
    return {
      content: mailJson({
        to: to ? [to] : [],
        subject: `XDM/1.0/DDM+${label} ${header.birthName} ${header.firstGivenName} ${header.birthDate.slice(0, 8)}`,
        headers: {
          'X-MSS-CODECDA': header.code.code,
          'X-MSS-INS': header.patientIds.some((i) => INS_ROOTS.has(i.root)) ? 'O' : 'N',
          // The patient does not answer by mail (STANDARDS.md).
          ...(input.meta.recipientKind === 'patient' ? { 'X-MSS-MES': 'FIN' } : {}),
        },
        attachments: [
          {
            fileName: XDM_FILE_NAME,
            contentType: XDM_CONTENT_TYPE,
            content: await xdmOf(cda, doc, o, to, pdf),
          },
          { fileName: `${name}.pdf`, contentType: PDF_CONTENT_TYPE, content: pdf },
        ],
      }),
      contentType: MAIL_JSON,
      meta: { ...input.meta, fileExtension: 'json' },
    };
  },
};
