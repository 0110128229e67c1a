// Steps of the documents-out chain (issue 11): a validated RCP form or PPS, as the store's outbox
// gives it, becomes each recipient's format — `rcp-cda` (the CI-SIS CDA), then on a destination
// `cda-pdf` (its PDF), `cda-xdm` (IHE_XDM.ZIP for MSSanté and Mon espace santé) or `cda-hl7v2`
// (MDM^T02/T10 or ORU^R01 for a record system). Every step after the first reads the CDA, so each
// recipient format says exactly what the CDA says.
//
// Steps have no clock and no randomness: times come from the document (its validation), ids from
// its ids and the recipient, so a retried delivery sends the same bytes under the same ids
// (MSH-10, submission set uniqueId) and the receiver recognises the repeat.
import { createHash } from 'node:crypto';
import Type from 'typebox';
import { writeFrcp } from './cda-frcp.ts';
import { writePps } from './cda-pps.ts';
import { Default, StepError, type OptionsOf, type StepInput, type StepSpec } from './contract.ts';
import { packageCda } from './mdm-out.ts';
import { PDF_CONTENT_TYPE, renderPdf } from './pdf-render.ts';
import type {
  DocumentHeader,
  Organization,
  Patient,
  PpsDocument,
  Professional,
  RcpForm,
  RcpMeeting,
} from './rcp-model.ts';
import { XDM_CONTENT_TYPE, XDM_FILE_NAME, entryUuid, xdmPackage } from './xdm-package.ts';
import { attr, element, parseXml } from './xml.ts';

/** The store's outbox content for a validated form or programme (store/rcp.ts, ValidatedDocument). */
export const VALIDATED_DOCUMENT_TYPE = 'application/vnd.onco-relay.rcp-document+json';
/** A complete CDA model document (rcp-model.ts), for forms made elsewhere and tests. */
export const FRCP_MODEL_TYPE = 'application/vnd.onco-relay.frcp+json';
export const PPS_MODEL_TYPE = 'application/vnd.onco-relay.pps+json';
export const CDA_CONTENT_TYPE = 'application/hl7-cda+xml';
export const HL7V2_CONTENT_TYPE = 'application/hl7-v2';

/** What store/rcp.ts writes to the documents-out outbox when a form or a programme is validated. */
export interface ValidatedDocument {
  kind: 'frcp' | 'pps';
  documentId: number;
  setId: string;
  version: number;
  replaces: { documentId: number; version: number } | null;
  /** ISO 8601 instant of the validation. */
  validatedAt: string;
  validatedBy: string;
  patient: {
    id: number;
    /** Present only for a qualified identity. */
    ins: { matricule: string; oid: string } | null;
    identifiers: Array<{ finess: string; ipp: string }>;
    birthName: string;
    givenNames: string;
    firstGivenName: string;
    usedName: string | null;
    usedGivenName: string | null;
    sex: string;
    /** `YYYY-MM-DD` (or shorter when only the year or month is known). */
    birthDate: string;
    birthPlace: string | null;
  };
  meeting: (RcpMeeting & { id: number }) | null;
  /** The clinical content: the model's RcpForm or PpsDocument without header, patient and meeting. */
  content: Record<string, unknown>;
  mesAllowed: boolean;
}

const FINESS_ROOT = '1.2.250.1.71.4.2.2';

const OID_PATTERN = '^[0-2](\\.(0|[1-9][0-9]*))+$';

function notJson(reason: string): StepError {
  return new StepError('DOCUMENT_NOT_JSON', `the validated document is not readable JSON: ${reason}`);
}

/** `2026-01-12T15:00:00.000Z` → HL7 TS `20260112150000+0000`. */
function isoToTs(iso: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) throw notJson(`validatedAt "${iso}" is not a date`);
  return `${date.toISOString().replace(/[-:T]/g, '').slice(0, 14)}+0000`;
}

function header(
  v: ValidatedDocument,
  root: string,
  author: Professional,
  custodian: Organization,
): DocumentHeader {
  const docs = `${root}.1`;
  const time = isoToTs(v.validatedAt);
  return {
    id: { root: docs, extension: `${v.kind}-${v.documentId}` },
    setId: { root: docs, extension: v.setId },
    version: v.version,
    replaces:
      v.replaces === null ? undefined : { root: docs, extension: `${v.kind}-${v.replaces.documentId}` },
    effectiveTime: time,
    confidentiality: 'N',
    // The meeting's coordinator (a programme's referent) signs for the document; the account that
    // pressed "validate" is in the audit trail.
    author,
    authorTime: time,
    custodian,
    legalAuthenticator: author,
    legalAuthenticationTime: time,
  };
}

/** The patient as the CDA names them: INS when qualified, the IPP of the document's establishment. */
function patientOf(v: ValidatedDocument, root: string, finess: string | undefined): Patient {
  const p = v.patient;
  const ipp = p.identifiers.find((i) => i.finess === finess) ?? p.identifiers[0];
  return {
    ins: p.ins ?? undefined,
    // An establishment's IPP under its FINESS; a patient no establishment has numbered yet under the DCC's own id.
    ipp:
      ipp === undefined
        ? { value: String(p.id), oid: `${root}.2` }
        : { value: ipp.ipp, oid: `${FINESS_ROOT}.${ipp.finess}` },
    birthName: p.birthName,
    birthGivenNames: p.givenNames,
    firstGivenName: p.firstGivenName,
    usedName: p.usedName ?? undefined,
    usedGivenName: p.usedGivenName ?? undefined,
    sex: p.sex === 'M' || p.sex === 'F' ? p.sex : 'U',
    birthDate: p.birthDate.replaceAll('-', ''),
    birthPlaceCode: p.birthPlace ?? undefined,
  };
}

type ModelDocument = { kind: 'frcp'; document: RcpForm } | { kind: 'pps'; document: PpsDocument };

/** The CDA model document of a validated document, or of a complete model document. */
export function modelOf(input: StepInput, oidRoot: string): ModelDocument {
  let json: unknown;
  try {
    json = JSON.parse(input.content.toString('utf8'));
  } catch (error) {
    throw notJson(error instanceof Error ? error.message : String(error));
  }
  if (typeof json !== 'object' || json === null) throw notJson('not an object');
  const kind = input.meta.documentKind;
  if (
    input.contentType === FRCP_MODEL_TYPE ||
    (input.contentType !== VALIDATED_DOCUMENT_TYPE && kind === 'frcp')
  ) {
    return { kind: 'frcp', document: json as RcpForm };
  }
  if (
    input.contentType === PPS_MODEL_TYPE ||
    (input.contentType !== VALIDATED_DOCUMENT_TYPE && kind === 'pps')
  ) {
    return { kind: 'pps', document: json as PpsDocument };
  }
  if (input.contentType !== VALIDATED_DOCUMENT_TYPE) {
    throw new StepError(
      'DOCUMENT_KIND_UNKNOWN',
      `the message is not a validated RCP form nor a PPS (content type ${input.contentType})`,
    );
  }
  const v = json as ValidatedDocument;
  const statusDate = isoToTs(v.validatedAt).slice(0, 8);
  if (v.kind === 'frcp') {
    if (v.meeting === null) throw notJson('an RCP form without its meeting');
    const { id: _meetingId, ...meeting } = v.meeting;
    const form = v.content as Omit<
      RcpForm,
      keyof DocumentHeader | 'patient' | 'meeting' | 'status' | 'statusDate'
    >;
    const document: RcpForm = {
      ...form,
      ...header(v, oidRoot, meeting.organiser, meeting.site),
      patient: patientOf(v, oidRoot, meeting.site.finess),
      meeting,
      status: 'approved',
      statusDate,
    };
    return { kind: 'frcp', document };
  }
  if (v.kind === 'pps') {
    const pps = v.content as Omit<PpsDocument, keyof DocumentHeader | 'patient' | 'status' | 'statusDate'>;
    const document: PpsDocument = {
      ...pps,
      ...header(v, oidRoot, pps.referent, pps.site),
      patient: patientOf(v, oidRoot, pps.site.finess),
      status: 'approved',
      statusDate,
    };
    return { kind: 'pps', document };
  }
  throw new StepError('DOCUMENT_KIND_UNKNOWN', `the validated document is of kind "${String(v.kind)}"`);
}

// ---- rcp-cda ---------------------------------------------------------------------------------------

const cdaSchema = Type.Object({
  oidRoot: Type.String({
    pattern: OID_PATTERN,
    description:
      "the DCC's OID: documents are identified under ROOT.1 (id and setId), patients no establishment numbered under ROOT.2",
  }),
});

export const rcpCdaStep: StepSpec<OptionsOf<typeof cdaSchema>> = {
  kind: 'step',
  type: 'rcp-cda',
  summary:
    'Writes the CI-SIS CDA R2 of a validated RCP form (FRCP) or PPS: the outbox content of documents-out, or a complete model document (frcp+json, pps+json).',
  schema: cdaSchema,
  create: (o) => (input) => {
    const model = modelOf(input, o.oidRoot);
    const cda = model.kind === 'frcp' ? writeFrcp(model.document) : writePps(model.document);
    const { root, extension } = model.document.id;
    return {
      content: Buffer.from(cda, 'utf8'),
      contentType: CDA_CONTENT_TYPE,
      meta: { ...input.meta, cdaId: extension === undefined ? root : `${root}^${extension}` },
    };
  },
};

// ---- cda-pdf ---------------------------------------------------------------------------------------

const pdfSchema = Type.Object({});

export const cdaPdfStep: StepSpec<OptionsOf<typeof pdfSchema>> = {
  kind: 'step',
  type: 'cda-pdf',
  summary: 'Renders the CDA document as a PDF (header, patient, participants, every section, validation).',
  schema: pdfSchema,
  create: () => (input) => ({
    content: renderPdf(input.content),
    contentType: PDF_CONTENT_TYPE,
    meta: { ...input.meta, fileName: `${fileStem(input)}.pdf` },
  }),
};

/** A file name from the document id, safe on every file system. */
function fileStem(input: StepInput): string {
  const id = typeof input.meta.cdaId === 'string' ? input.meta.cdaId : 'document';
  return id.replace(/[^A-Za-z0-9._-]+/g, '_');
}

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
    'recipient',
  ),
});

/** An OID from a UUID (ITU-T X.667: 2.25 then the UUID as one integer). */
function uuidOid(urn: string): string {
  return `2.25.${BigInt(`0x${urn.replace(/^urn:uuid:|-/g, '')}`).toString()}`;
}

export const cdaXdmStep: StepSpec<OptionsOf<typeof xdmSchema>> = {
  kind: 'step',
  type: 'cda-xdm',
  summary:
    'Packages the CDA document (and its PDF) as IHE_XDM.ZIP with METADATA.XML, for MSSanté mail and Mon espace santé.',
  schema: xdmSchema,
  create: (o) => async (input) => {
    const cda = input.content.toString('utf8');
    const doc = parseXml(cda);
    const id = element(doc, 'id');
    const recipient = input.meta[o.recipientMeta];
    const recipients = typeof recipient === 'string' && recipient !== '' ? [recipient] : [];
    // One set per document and recipient: the same delivery retried is the same set.
    const setKey = entryUuid(
      `${attr(id, 'root') ?? ''}^${attr(id, 'extension') ?? ''}|${recipients.join(',')}`,
    );
    const zip = await xdmPackage(
      [{ cda, parsed: doc, pdf: o.includePdf ? renderPdf(doc) : undefined, classCode: o.classCode }],
      {
        uniqueId: uuidOid(setKey),
        sourceId: o.sourceId,
        submissionTime: attr(element(doc, 'effectiveTime'), 'value') ?? '',
        recipients,
      },
    );
    return { content: zip, contentType: XDM_CONTENT_TYPE, meta: { ...input.meta, fileName: XDM_FILE_NAME } };
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
  summary:
    'Packages the CDA document (base64 in an ED OBX, and its PDF) as HL7 v2 MDM^T02/T10 or ORU^R01 for a record system.',
  schema: hl7v2Schema,
  create: (o) => (input) => {
    const cda = input.content.toString('utf8');
    const doc = parseXml(cda);
    const id = element(doc, 'id');
    const controlId = createHash('sha1')
      .update(
        `${attr(id, 'root') ?? ''}^${attr(id, 'extension') ?? ''}|${o.receivingApplication}|${o.receivingFacility}`,
      )
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
      meta: { ...input.meta, fileName: `${fileStem(input)}.hl7` },
    };
  },
};
