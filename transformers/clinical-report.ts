// One normalized model for every clinical report the DCC takes in (pathology and molecular
// biology), whatever format it came in: HL7 v2 ORU/MDM, HPRIM Santé, HPRIM Médecin, CDA R2
// (CR-ACP, CR-GM) or a PDF with a sidecar. Readers fill it; the store files it (a later session).
// Identifier types are PAM FR's, so that a report's patient is matched with the same rules as an
// identity feed.
import { createHash } from 'node:crypto';
import { INS_OIDS, validMatricule } from './pam-fr.ts';
import { decodeBytes } from './hl7v2-charset.ts';
import { OncoError } from '../config/errors.ts';
import type { Identifier, Ins, PatientIdentity } from './pam-fr.ts';
import type { ContentFile, StagedFile, StepContext } from './contract.ts';

export const REPORT_CONTENT_TYPE = 'application/vnd.onco-relay.report+json';

export type ReportKind = 'pathology' | 'molecular';

export type ReportFormat = 'hl7v2-oru' | 'hl7v2-mdm' | 'hprim-sante' | 'hprim-medecin' | 'cda' | 'pdf';

/** OBX-11 F/C/D, MDM T02/T10/T04, CDA relatedDocument RPLC. */
export type DocumentStatus = 'final' | 'replacement' | 'deletion';

/** Who the report is about, as the sender identifies them: matching decides who that is. */
export type ReportPatient = { identifiers: Identifier[]; ins?: Ins } & Partial<
  Pick<
    PatientIdentity,
    'birthName' | 'firstGivenName' | 'givenNames' | 'birthDate' | 'sex' | 'birthPlace' | 'usedName'
  >
>;

export interface Coded {
  code: string;
  /** OID of the code system when the sender gave one (or the one its format implies). */
  system?: string;
  display?: string;
}

/** What a coded finding is: the families the DCC files and queries. */
export type FindingKind =
  'adicap' | 'icdo3-topography' | 'icdo3-morphology' | 'tnm' | 'snomed-ct' | 'icd10' | 'other';

export interface Finding extends Coded {
  kind: FindingKind;
}

export interface Variant {
  /** HGNC symbol. */
  gene: string;
  /** Reference sequence, e.g. NM_005228.3. */
  referenceSequence?: string;
  /** HGVS DNA (or RNA) change, e.g. c.2573T>G. */
  dnaChange?: string;
  /** HGVS protein change, e.g. p.Leu858Arg (or the sender's words: "Variant d'épissage"). */
  proteinChange?: string;
  /** How the lab classed it (CR-GM: MED-536 known clinical impact, MED-537 to discuss, …). */
  classification?: Coded;
  /** Clinical interpretation (CR-GM conclusion: impact of the mutation, therapy class). */
  interpretation?: Coded[];
}

export interface Professional {
  /** National professional id under OID 1.2.250.1.71.4.2.1 (8 + RPPS number), as sent. */
  rpps?: string;
  name?: string;
}

export interface Organization {
  finess?: string;
  name?: string;
}

export interface Specimen {
  id?: string;
  type?: Coded;
  collected?: string;
}

export interface DocumentIds {
  uniqueId?: string;
  setId?: string;
  version?: number;
  status: DocumentStatus;
  /** Unique id of the document this one replaces or deletes. */
  replaces?: string;
}

/** The order the result answers (ORC-2/OBR-2 placer number): lets the store close a DCC order. */
export interface OrderReference {
  placerNumber: string;
  /** EI-2 namespace of the placer (the DCC's own application name on its orders). */
  placerNamespace?: string;
  fillerNumber?: string;
}

export interface Attachment {
  mediaType: string;
  /**
   * The document bytes, base64; absent when the engine keeps them as a file of the journal
   * (`handOffBytes`): `sha256` and `size` then name that file.
   */
  base64?: string;
  sha256: string;
  /** Set when `base64` is absent. */
  size?: number;
}

export interface ClinicalReport {
  kind: ReportKind;
  format: ReportFormat;
  /** Document type (LOINC 60568-3 CR-ACP, 51969-4 CR-GM, …). */
  documentType?: Coded;
  /** CDA templateId that says which model the document follows. */
  template?: string;
  title?: string;
  patient: ReportPatient;
  /** ISO 8601, as precise as sent. */
  reportDate?: string;
  author?: Professional;
  lab?: Organization;
  specimens: Specimen[];
  findings: Finding[];
  variants: Variant[];
  /** Genes analysed without a variant being reported (CR-GM method section). */
  genesAnalysed: string[];
  conclusion?: string;
  /** The report's text when it travels as text (HL7 TX/FT, HPRIM). */
  text?: string;
  document: DocumentIds;
  order?: OrderReference;
  /** The CDA or PDF the report carried (an ED OBX, a CDA's nonXMLBody, the PDF of a sidecar pair). */
  attachments: Attachment[];
  /** The bytes as received. */
  original: Attachment;
}

export type ReportErrorCode =
  | 'REPORT_UNKNOWN_FORMAT'
  | 'REPORT_NO_PATIENT'
  | 'REPORT_BAD_IDENTIFIER'
  | 'REPORT_BAD_BASE64'
  | 'REPORT_NOT_PDF'
  | 'REPORT_BAD_SIDECAR'
  | 'REPORT_BAD_STRUCTURE'
  | 'REPORT_BAD_DATE'
  | 'REPORT_TEST_INS'
  | 'REPORT_TOO_LARGE';

/** Content a reader refuses; `location` says where (`OBX[2]-5`, `recordTarget`, `line 3`). */
export class ReportError extends OncoError {
  declare readonly code: ReportErrorCode;
  declare readonly hint: string;
  constructor(code: ReportErrorCode, message: string, hint: string, location?: string, cause?: unknown) {
    super(code, { message, hint, location, cause });
  }
}

export interface ReadOptions {
  /** Accept the INS test and demo OIDs (the agency's examples use them). Default false. */
  acceptTestIns?: boolean;
}

const attachmentBytes = new WeakMap<Attachment, Buffer>();

/**
 * The bytes as an attachment. Its base64 is made when first read (the JSON of the report): bytes
 * the step hands to the journal as a file (`handOffBytes`) are never encoded.
 */
export function attachment(mediaType: string, bytes: Uint8Array): Attachment {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  let base64: string | undefined;
  const a = { mediaType } as Attachment;
  Object.defineProperty(a, 'base64', {
    enumerable: true,
    configurable: true,
    get: () => (base64 ??= buffer.toString('base64')),
  });
  a.sha256 = createHash('sha256').update(buffer).digest('hex');
  attachmentBytes.set(a, buffer);
  return a;
}

/**
 * Takes the report's large bytes out of its JSON: the original when it is the received file itself
 * (`received`, a journal blob already), and each attachment the engine stages as a file, become
 * references (`sha256` and `size`, no `base64`) that the filing links from the journal. Returns the
 * staged files, for the step's output to name as its parts (`withParts`). Without an engine, or
 * below its threshold, the bytes stay in the JSON.
 */
export async function handOffBytes(
  report: ClinicalReport,
  ctx: Pick<StepContext, 'stage'>,
  received: ContentFile | undefined,
): Promise<Array<{ staged: StagedFile; contentType: string }>> {
  const parts: Array<{ staged: StagedFile; contentType: string }> = [];
  const reference = (a: Attachment, size: number): Attachment => ({
    mediaType: a.mediaType,
    sha256: a.sha256,
    size,
  });
  const handOff = async (a: Attachment): Promise<Attachment> => {
    if (received !== undefined && a.sha256 === received.digest) return reference(a, received.size);
    const bytes = attachmentBytes.get(a);
    if (bytes === undefined) return a;
    const staged = await ctx.stage({ buffer: bytes });
    if (staged.file === undefined) return a;
    parts.push({ staged, contentType: a.mediaType });
    return reference(a, staged.size);
  };
  report.original = await handOff(report.original);
  const attachments: Attachment[] = [];
  for (const a of report.attachments) attachments.push(await handOff(a));
  report.attachments = attachments;
  return parts;
}

/** A report with nothing found yet: readers fill what their format carries. */
export function emptyReport(kind: ReportKind, format: ReportFormat, original: Attachment): ClinicalReport {
  return {
    kind,
    format,
    patient: { identifiers: [] },
    specimens: [],
    findings: [],
    variants: [],
    genesAnalysed: [],
    document: { status: 'final' },
    attachments: [],
    original,
  };
}

export const OID = {
  adicap: '1.2.250.1.213.2.11',
  icdo3: '2.16.840.1.113883.6.43.1',
  icd10: '2.16.840.1.113883.6.3',
  snomed: '2.16.840.1.113883.6.96',
  loinc: '2.16.840.1.113883.6.1',
  hgnc: '2.16.840.1.113883.6.281',
  tnm: '2.16.840.1.113883.15.6',
  rpps: '1.2.250.1.71.4.2.1',
  structure: '1.2.250.1.71.4.2.2',
} as const;

/** Which family a code belongs to, from its system OID (or HL7 table name) and its shape. */
export function findingKind(system: string | undefined, code: string): FindingKind {
  switch (system?.toUpperCase()) {
    case OID.adicap:
    case 'ADICAP':
      return 'adicap';
    case OID.icdo3:
    case 'ICDO3':
    case 'ICD-O-3':
    case 'ICDO':
      return /^C\d{2}(\.\d)?$/i.test(code) ? 'icdo3-topography' : 'icdo3-morphology';
    case OID.tnm:
    case 'TNM':
      return 'tnm';
    case OID.snomed:
    case 'SCT':
    case 'SNM':
    case 'SNOMED':
    case 'SNOMED-CT':
      return 'snomed-ct';
    case OID.icd10:
    case 'I10':
    case 'CIM10':
      return 'icd10';
    default:
      return 'other';
  }
}

/** Adds a finding unless the same code of the same family is already there. */
export function addFinding(report: ClinicalReport, finding: Finding): void {
  if (!report.findings.some((f) => f.kind === finding.kind && f.code === finding.code))
    report.findings.push(finding);
}

/** An organization from what the sender gave; undefined when it gave nothing. */
export function organization(finess: string | undefined, name: string): Organization | undefined {
  if (finess === undefined && name === '') return undefined;
  return { ...(finess === undefined ? {} : { finess }), ...(name === '' ? {} : { name }) };
}

/** National structure id (root 1.2.250.1.71.4.2.2 or HL7 XON-10): type 1 + FINESS. */
export function finessOfStructureId(id: string): string | undefined {
  return /^1\d{9}$/.test(id) ? id.slice(1) : /^\d{9}$/.test(id) ? id : undefined;
}

/** HL7 / CDA timestamp (YYYY[MM[DD[HH[MM[SS]]]]][+ZZZZ]) → ISO 8601 at the precision sent. */
export function isoTimestamp(raw: string, location: string): string | undefined {
  const value = raw.trim();
  if (value === '') return undefined;
  const m = /^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d+)?([+-]\d{4})?$/.exec(value);
  if (m === null) {
    throw new ReportError(
      'REPORT_BAD_DATE',
      `"${value}" is not a date`,
      'send dates as YYYYMMDD[HHMM[SS]][+ZZZZ]',
      location,
    );
  }
  const [, y, mo, d, h, mi, s, zone] = m;
  let out = y as string;
  if (mo !== undefined) out += `-${mo}`;
  if (d !== undefined) out += `-${d}`;
  if (h !== undefined) out += `T${h}:${mi ?? '00'}${s === undefined ? '' : `:${s}`}`;
  if (zone !== undefined && h !== undefined) out += `${zone.slice(0, 3)}:${zone.slice(3)}`;
  return out;
}

/** LOINC codes of the molecular genetics observations (CR-GM, and ORU results by the same codes). */
export const LOINC = {
  gene: '48018-6',
  referenceSequence: '48012-9',
  dnaChange: '69548-6',
  proteinChange: '53045-1',
  conclusion: '22637-3',
} as const;

/**
 * Puts a subordinate observation of a gene (reference sequence, DNA or protein change) on its
 * variant; false when the code is none of those. The HGVS notation decides whether a change is
 * DNA/RNA (c. g. n. m. r.) or protein (p.): the agency's own CR-GM puts `p.L858R` under 69548-6.
 * The code decides only for words ("Variant d'épissage").
 */
export function setVariantPart(variant: Variant, code: string, value: string): boolean {
  if (value === '')
    return code === LOINC.referenceSequence || code === LOINC.dnaChange || code === LOINC.proteinChange;
  if (code === LOINC.referenceSequence) {
    variant.referenceSequence = value;
    return true;
  }
  if (code !== LOINC.dnaChange && code !== LOINC.proteinChange) return false;
  const notation = /^p\./.test(value) ? 'protein' : /^[cgnmr]\./.test(value) ? 'dna' : undefined;
  if ((notation ?? (code === LOINC.dnaChange ? 'dna' : 'protein')) === 'dna') variant.dnaChange = value;
  else variant.proteinChange = value;
  return true;
}

/**
 * An identifier under an INS OID: the INS, checked as PAM FR checks it (test OIDs only when
 * accepted, matricule key). Undefined when the OID is not an INS OID.
 */
export function readIns(
  matricule: string,
  oid: string,
  location: string,
  options: ReadOptions,
): Ins | undefined {
  const kind = INS_OIDS.get(oid);
  if (kind === undefined) return undefined;
  if ((kind === 'INS-NIR-TEST' || kind === 'INS-NIR-DEMO') && options.acceptTestIns !== true) {
    throw new ReportError(
      'REPORT_TEST_INS',
      `the patient's INS uses the ${kind} OID ${oid}, refused on this channel`,
      'send the production INS-NIR/INS-NIA; on a test appliance only, set ONCO_ACCEPT_TEST_INS=true',
      location,
    );
  }
  if (!validMatricule(matricule)) {
    throw new ReportError(
      'REPORT_BAD_IDENTIFIER',
      'the INS matricule is not 15 characters with a valid control key',
      'send the matricule exactly as returned by the INSi teleservice',
      location,
    );
  }
  return { matricule, oid, kind };
}

// Padding may be missing (RFC 4648 §3.2): two of the agency's own MDM/ORU examples omit it.
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?$/;

/** Strict base64 (whitespace allowed between groups): Buffer.from() silently skips garbage. */
export function decodeBase64(value: string, location: string): Buffer {
  const compact = value.replace(/\s+/g, '');
  if (compact === '' || !BASE64.test(compact)) {
    throw new ReportError(
      'REPORT_BAD_BASE64',
      'the embedded document is not valid base64',
      'encode the document in base64 (RFC 4648, no URL-safe alphabet) and send it whole',
      location,
    );
  }
  return Buffer.from(compact, 'base64');
}

/** Legacy text formats (HPRIM) predate UTF-8 in most labs: UTF-8 when valid, ISO 8859-1 otherwise. */
export function decodeLegacyText(content: Buffer): string {
  let text: string;
  try {
    text = decodeBytes(content, 'UNICODE UTF-8');
  } catch {
    text = decodeBytes(content, '8859/1');
  }
  return text.replace(/^\uFEFF/, '');
}
