// HL7 v2 reports: ORU^R01 and MDM^T02/T04/T10 as the CI-SIS "transmission of CDA documents in
// HL7 v2" profile sends them (MSH-21 2.1^CISIS_CDA_HL7_V2), and lab results as plain ORU.
//
// - The document travels base64 in an ED OBX (OBX-5 `^TEXT^XML^Base64^…`, or `^AP^PDF^Base64^…`);
//   an embedded CDA is read for its ids, findings and variants, PID stays the patient source.
// - OBX-11 of the document OBX says final (F), replacement (C) or deletion (D); a CDA that declares
//   it replaces another (relatedDocument RPLC) is a replacement even under F, so that it never
//   files as a second original; ORC-1 (NW/RO/CA) is only a fallback when OBX-11 is empty. The
//   trigger event is not trusted: the agency's MDM examples use T10 for a replacement and T04 for
//   a deletion, while the standard reads T04 differently.
// - Text reports are TX/FT OBX lines; coded findings are CE/CWE OBX values in a known system;
//   molecular results group by OBX-4 sub-id around a gene OBX (LOINC 48018-6).
// - ORC-2/OBR-2 (placer number) is the order the result answers.
import { parse, get, segmentsNamed, repetitions, component } from './hl7v2.ts';
import type { Hl7Message, Hl7Segment, Hl7Repetition } from './hl7v2.ts';
import { looksLikeCda, readCdaReport } from './cda-report.ts';
import type { CdaReadOptions } from './cda-report.ts';
import {
  ReportError,
  OID,
  attachment,
  emptyReport,
  addFinding,
  findingKind,
  finessOfStructureId,
  organization,
  isoTimestamp,
  setVariantPart,
  LOINC,
  readIns,
  decodeBase64,
} from './clinical-report.ts';
import type {
  ClinicalReport,
  DocumentStatus,
  ReportKind,
  ReportPatient,
  Variant,
  Professional,
} from './clinical-report.ts';

const TEXT_VALUE_TYPES = new Set(['TX', 'FT', 'ST']);
const CODED_VALUE_TYPES = new Set(['CE', 'CWE', 'CNE']);
// OBX lines carrying the DMP/MSSanté routing metadata of the CI-SIS profile, not the report.
const METADATA_SYSTEMS = new Set(['MetaDMPMSS']);
const MEDIA_TYPES: Readonly<Record<string, string>> = {
  XML: 'text/xml',
  PDF: 'application/pdf',
  RTF: 'application/rtf',
  HTML: 'text/html',
  PLAIN: 'text/plain',
};

export function readHl7Report(
  content: Buffer,
  kind: ReportKind,
  options: CdaReadOptions = {},
  message: Hl7Message = parse(content),
): ClinicalReport {
  const type = get(message, 'MSH-9.1');
  if (type !== 'ORU' && type !== 'MDM') {
    throw new ReportError(
      'REPORT_UNKNOWN_FORMAT',
      `HL7 message type ${type || '(none)'} does not carry a report`,
      'send reports as ORU^R01 or MDM^T02 (T10 replacement)',
      'MSH-9',
    );
  }
  const report = emptyReport(
    kind,
    type === 'ORU' ? 'hl7v2-oru' : 'hl7v2-mdm',
    attachment('application/hl7-v2', content),
  );
  report.patient = readPatient(message, options);
  const documentType = codedAt(message, type === 'MDM' ? 'TXA-2' : 'OBR-4');
  if (documentType !== undefined) report.documentType = documentType;
  const date = firstTimestamp(message, ['TXA-4', 'OBR-22', 'OBR-7', 'MSH-7']);
  if (date !== undefined) report.reportDate = date;
  readAuthorAndLab(message, report);
  readOrder(message, report);
  const observations = segmentsNamed(message, 'OBX').filter(
    (obx) => !METADATA_SYSTEMS.has(value(message, obx, 3, 3)),
  );
  const status = readDocuments(message, observations, report, options);
  report.document.status = documentStatus(status, report.document.status, message);
  if (type === 'MDM') {
    const uniqueId = get(message, 'TXA-12.1');
    if (uniqueId !== '') report.document.uniqueId = uniqueId;
    const parent = get(message, 'TXA-13.1');
    if (parent !== '') report.document.replaces = parent;
  }
  readResults(message, observations, report);
  readSpecimens(message, report);
  return report;
}

function value(message: Hl7Message, segment: Hl7Segment, field: number, comp = 1, sub = 1): string {
  return component(repetitions(message, segment, field)[0], comp, sub).trim();
}

function codedAt(
  message: Hl7Message,
  path: string,
): { code: string; display?: string; system?: string } | undefined {
  const code = get(message, `${path}.1`);
  if (code === '') return undefined;
  const out: { code: string; display?: string; system?: string } = { code };
  const display = get(message, `${path}.2`);
  if (display !== '') out.display = display;
  const system = get(message, `${path}.3`);
  if (system !== '') out.system = system === 'LN' ? OID.loinc : system;
  return out;
}

function firstTimestamp(message: Hl7Message, paths: string[]): string | undefined {
  for (const path of paths) {
    const found = isoTimestamp(get(message, `${path}.1`), path);
    if (found !== undefined) return found;
  }
  return undefined;
}

function readPatient(message: Hl7Message, options: CdaReadOptions): ReportPatient {
  const pid = segmentsNamed(message, 'PID')[0];
  if (pid === undefined) {
    throw new ReportError(
      'REPORT_NO_PATIENT',
      'the message has no PID segment',
      'send the patient in PID',
      'PID',
    );
  }
  const patient: ReportPatient = { identifiers: [] };
  repetitions(message, pid, 3).forEach((cx, i) => {
    const location = `PID-3[${i + 1}]`;
    const id = {
      value: component(cx, 1).trim(),
      type: component(cx, 5).trim(),
      namespace: component(cx, 4, 1).trim(),
      authority: component(cx, 4, 2).trim(),
      authorityType: component(cx, 4, 3).trim(),
    };
    if (id.value === '') return;
    const ins = readIns(id.value, id.authority, location, options);
    if (ins !== undefined) patient.ins = ins;
    else if (id.type === 'INS') {
      throw new ReportError(
        'REPORT_BAD_IDENTIFIER',
        `PID-3 is typed INS but its OID "${id.authority}" is not an INS OID`,
        'use 1.2.250.1.213.1.4.8 (INS-NIR) or 1.2.250.1.213.1.4.9 (INS-NIA) in CX-4.2',
        `${location}.4.2`,
      );
    } else patient.identifiers.push(id);
  });
  if (patient.identifiers.length === 0 && patient.ins === undefined) {
    throw new ReportError(
      'REPORT_NO_PATIENT',
      'PID-3 names no patient identifier',
      'send the IPP as value^^^NAMESPACE&FINESS&M^PI and the INS in PID-3',
      'PID-3',
    );
  }
  const names = repetitions(message, pid, 5);
  const birth = names.find((n) => component(n, 7) === 'L') ?? names[0];
  readTraits(message, pid, birth, names, patient);
  return patient;
}

function readTraits(
  message: Hl7Message,
  pid: Hl7Segment,
  birth: Hl7Repetition | undefined,
  names: Hl7Repetition[],
  patient: ReportPatient,
): void {
  const birthName = component(birth, 1).trim();
  if (birthName !== '') patient.birthName = birthName;
  const first = component(birth, 2).trim();
  if (first !== '') patient.firstGivenName = first;
  const given = component(birth, 3)
    .split(' ')
    .filter((g) => g !== '');
  if (given.length > 0 || first !== '') patient.givenNames = given.length > 0 ? given : [first];
  const used = component(
    names.find((n) => component(n, 7) === 'D'),
    1,
  ).trim();
  if (used !== '') patient.usedName = used;
  const birthDate = isoTimestamp(value(message, pid, 7), 'PID-7');
  if (birthDate !== undefined) patient.birthDate = birthDate.slice(0, 10);
  const sex = value(message, pid, 8).toUpperCase();
  if (sex === 'M' || sex === 'F') patient.sex = sex;
  else if (sex !== '') patient.sex = 'I';
  const place = component(
    repetitions(message, pid, 11).find((a) => component(a, 7) === 'BDL'),
    9,
  ).trim();
  if (place !== '') patient.birthPlace = place;
}

// CI-SIS: PRT with participation SB (sent by) names the author (XCN with the RPPS authority) and
// the lab (XON-10: national structure id, type 1 + FINESS). Plain ORU: OBR-32, the result interpreter.
function readAuthorAndLab(message: Hl7Message, report: ClinicalReport): void {
  const sender = segmentsNamed(message, 'PRT').find((prt) => value(message, prt, 4) === 'SB');
  const xcn = sender === undefined ? undefined : repetitions(message, sender, 5)[0];
  const author: Professional = {};
  if (xcn !== undefined && component(xcn, 9, 2) === OID.rpps && component(xcn, 1) !== '') {
    author.rpps = component(xcn, 1);
  }
  const name = [component(xcn, 3), component(xcn, 2)].filter((n) => n !== '').join(' ');
  if (name !== '') author.name = name;
  if (author.rpps === undefined && get(message, 'OBR-32.1.1') !== '')
    author.rpps = get(message, 'OBR-32.1.1');
  if (Object.keys(author).length > 0) report.author = author;
  const xon = sender === undefined ? undefined : repetitions(message, sender, 8)[0];
  const lab = organization(finessOfStructureId(component(xon, 10).trim()), component(xon, 1).trim());
  if (lab !== undefined) report.lab = lab;
}

function readOrder(message: Hl7Message, report: ClinicalReport): void {
  const path = get(message, 'ORC-2.1') !== '' ? 'ORC-2' : 'OBR-2';
  const placerNumber = get(message, `${path}.1`);
  if (placerNumber === '') return;
  report.order = { placerNumber };
  const namespace = get(message, `${path}.2`);
  if (namespace !== '') report.order.placerNamespace = namespace;
  const filler = get(message, get(message, 'ORC-3.1') !== '' ? 'ORC-3.1' : 'OBR-3.1');
  if (filler !== '') report.order.fillerNumber = filler;
}

const RESULT_STATUS: Readonly<Record<string, DocumentStatus>> = {
  F: 'final',
  C: 'replacement',
  D: 'deletion',
};

function documentStatus(
  obx: DocumentStatus | undefined,
  cda: DocumentStatus,
  message: Hl7Message,
): DocumentStatus {
  if (obx === 'deletion' || obx === 'replacement') return obx;
  if (cda === 'replacement') return cda;
  if (obx === 'final') return obx;
  switch (get(message, 'ORC-1')) {
    case 'CA':
      return 'deletion';
    case 'RO':
      return 'replacement';
    default:
      return 'final';
  }
}

/** Every ED OBX becomes an attachment; the first CDA is read. Returns the OBX-11 status, if any. */
function readDocuments(
  message: Hl7Message,
  observations: Hl7Segment[],
  report: ClinicalReport,
  options: CdaReadOptions,
): DocumentStatus | undefined {
  let status: DocumentStatus | undefined;
  let cdaRead = false;
  for (const obx of observations) {
    if (value(message, obx, 2) !== 'ED') continue;
    const location = `OBX[${segmentsNamed(message, 'OBX').indexOf(obx) + 1}]-5`;
    const ed = repetitions(message, obx, 5)[0];
    const subtype = component(ed, 3).trim().toUpperCase();
    const encoding = component(ed, 4).trim().toUpperCase();
    const data = component(ed, 5);
    const bytes = encoding === 'BASE64' ? decodeBase64(data, location) : Buffer.from(data, 'utf8');
    const mediaType = MEDIA_TYPES[subtype] ?? 'application/octet-stream';
    if (mediaType === 'application/pdf') requirePdf(bytes, location);
    report.attachments.push(attachment(mediaType, bytes));
    status ??= RESULT_STATUS[value(message, obx, 11).toUpperCase()];
    if (!cdaRead && mediaType === 'text/xml' && looksLikeCda(bytes)) {
      cdaRead = true;
      mergeCda(readCdaReport(bytes, report.kind, options), report);
    }
  }
  return status;
}

/** A PDF starts with `%PDF-` (within its first KiB, as readers allow) and ends with `%%EOF`. */
export function requirePdf(bytes: Buffer, location: string): void {
  const head = bytes.subarray(0, 1024).indexOf('%PDF-');
  const tail = bytes.subarray(Math.max(0, bytes.length - 1024)).indexOf('%%EOF');
  if (head < 0 || tail < 0) {
    throw new ReportError(
      'REPORT_NOT_PDF',
      `the document announced as PDF is not one (${head < 0 ? 'no %PDF- header' : 'no %%EOF trailer: truncated?'})`,
      'send the PDF file itself, whole, not another format renamed .pdf',
      location,
    );
  }
}

// The CDA says what the document is; PID (checked by the sender to equal the CDA's recordTarget)
// stays the patient, and OBX-11 the status (a CDA cannot say "deleted").
function mergeCda(cda: ClinicalReport, report: ClinicalReport): void {
  report.kind = cda.kind;
  if (cda.template !== undefined) report.template = cda.template;
  if (cda.title !== undefined) report.title = cda.title;
  report.documentType = cda.documentType ?? report.documentType;
  if (cda.author !== undefined) report.author = { ...cda.author, ...report.author };
  if (cda.lab !== undefined) report.lab = { ...cda.lab, ...report.lab };
  report.specimens.push(...cda.specimens);
  report.findings.push(...cda.findings);
  report.variants.push(...cda.variants);
  report.genesAnalysed.push(...cda.genesAnalysed);
  if (cda.conclusion !== undefined) report.conclusion = cda.conclusion;
  if (cda.order !== undefined) report.order ??= cda.order;
  report.attachments.push(...cda.attachments);
  report.document = { ...report.document, ...cda.document };
}

function readResults(message: Hl7Message, observations: Hl7Segment[], report: ClinicalReport): void {
  const lines: string[] = [];
  const genes = new Map<string, Variant>();
  for (const obx of observations) {
    const valueType = value(message, obx, 2);
    const code = value(message, obx, 3);
    const subId = value(message, obx, 4);
    const values = repetitions(message, obx, 5);
    if (TEXT_VALUE_TYPES.has(valueType)) {
      const words = values.map((v) => component(v, 1)).join('\n');
      if (code === LOINC.conclusion) report.conclusion = words;
      else {
        const variant = genes.get(subId);
        if (variant === undefined || !setVariantPart(variant, code, words)) lines.push(words);
      }
    } else if (CODED_VALUE_TYPES.has(valueType)) {
      for (const v of values) {
        if (code === LOINC.gene && component(v, 1) !== '') {
          const variant: Variant = { gene: component(v, 1) };
          genes.set(subId, variant);
          report.variants.push(variant);
          continue;
        }
        const system = component(v, 3).trim();
        const kind = findingKind(system, component(v, 1).trim());
        if (kind === 'other' || component(v, 1).trim() === '') continue;
        addFinding(report, { kind, code: component(v, 1).trim(), system, display: component(v, 2).trim() });
      }
    }
  }
  if (lines.length > 0) report.text = lines.join('\n');
}

function readSpecimens(message: Hl7Message, report: ClinicalReport): void {
  for (const spm of segmentsNamed(message, 'SPM')) {
    const id = value(message, spm, 2, 1) || value(message, spm, 2, 2);
    const typeCode = value(message, spm, 4);
    const collected = isoTimestamp(value(message, spm, 17), 'SPM-17');
    report.specimens.push({
      ...(id === '' ? {} : { id }),
      ...(typeCode === ''
        ? {}
        : {
            type: { code: typeCode, display: value(message, spm, 4, 2), system: value(message, spm, 4, 3) },
          }),
      ...(collected === undefined ? {} : { collected }),
    });
  }
}
