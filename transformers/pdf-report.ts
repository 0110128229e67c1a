// A report sent as a PDF (CDA level 1 senders, labs without structured output) with a small
// sidecar that names the patient: either JSON (below) or an HL7 v2 ORU/MDM without the document.
// The PDF is kept whole as the report's attachment; nothing is read from inside it.
//
// JSON sidecar:
//   { "patient": { "ipp": "12345", "finess": "310000001", "ins": "279035121518989",
//                  "insOid": "1.2.250.1.213.1.4.8", "birthName": "…", "firstGivenName": "…",
//                  "birthDate": "1979-03-28", "sex": "F", "birthPlace": "63220" },
//     "documentType": "60568-3", "reportDate": "2026-01-15", "authorRpps": "810001234567",
//     "labFiness": "310000002", "documentId": "…", "status": "final", "replaces": "…",
//     "orderNumber": "…" }
import { parse } from './hl7v2.ts';
import { readHl7Report, requirePdf } from './hl7v2-report.ts';
import { ReportError, OID, attachment, emptyReport, readIns } from './clinical-report.ts';
import type { ClinicalReport, DocumentStatus, ReadOptions, ReportKind } from './clinical-report.ts';

export function looksLikePdf(content: Buffer): boolean {
  return content.subarray(0, 1024).includes('%PDF-');
}

export function readPdfReport(
  pdf: Buffer,
  sidecar: Buffer,
  kind: ReportKind,
  options: ReadOptions = {},
): ClinicalReport {
  requirePdf(pdf, 'the PDF');
  const head = sidecar.subarray(0, 3).toString('latin1');
  const report = head.startsWith('MSH')
    ? { ...readHl7Report(sidecar, kind, options, parse(sidecar)), format: 'pdf' as const }
    : readJsonSidecar(sidecar, kind, options, pdf);
  report.attachments.unshift(attachment('application/pdf', pdf));
  report.original = attachment('application/pdf', pdf);
  return report;
}

const STATUSES: ReadonlySet<string> = new Set<DocumentStatus>(['final', 'replacement', 'deletion']);

function readJsonSidecar(
  sidecar: Buffer,
  kind: ReportKind,
  options: ReadOptions,
  pdf: Buffer,
): ClinicalReport {
  let json: unknown;
  try {
    json = JSON.parse(sidecar.toString('utf8'));
  } catch (error) {
    // JSON.parse quotes the content in its message: never let a patient's name reach the journal.
    throw bad('it is neither HL7 v2 nor valid JSON', 'sidecar', error);
  }
  if (!isRecord(json) || !isRecord(json.patient)) {
    throw bad('it has no "patient" object', 'patient');
  }
  const p = json.patient;
  const str = (from: Record<string, unknown>, key: string, where: string): string | undefined => {
    const v = from[key];
    if (v === undefined || v === null || v === '') return undefined;
    if (typeof v !== 'string') throw bad(`"${key}" must be a string`, where);
    return v.trim();
  };
  const report = emptyReport(kind, 'pdf', attachment('application/pdf', pdf));
  const ipp = str(p, 'ipp', 'patient.ipp');
  const finess = str(p, 'finess', 'patient.finess');
  if (ipp !== undefined) {
    if (finess === undefined || !/^\d{9}$/.test(finess)) {
      throw bad('an IPP needs the 9-digit FINESS of the establishment that assigned it', 'patient.finess');
    }
    report.patient.identifiers.push({
      value: ipp,
      type: 'PI',
      namespace: '',
      authority: finess,
      authorityType: 'M',
    });
  }
  const insValue = str(p, 'ins', 'patient.ins');
  if (insValue !== undefined) {
    const ins = readIns(insValue, str(p, 'insOid', 'patient.insOid') ?? '', 'patient.insOid', options);
    if (ins === undefined)
      throw bad('"insOid" is not an INS OID (1.2.250.1.213.1.4.8 or .9)', 'patient.insOid');
    report.patient.ins = ins;
  }
  if (ipp === undefined && insValue === undefined) {
    throw new ReportError(
      'REPORT_NO_PATIENT',
      'the sidecar names no patient identifier',
      'give "ipp" with "finess", or "ins" with "insOid", in "patient"',
      'patient',
    );
  }
  for (const key of ['birthName', 'firstGivenName', 'birthPlace'] as const) {
    const v = str(p, key, `patient.${key}`);
    if (v !== undefined) report.patient[key] = v;
  }
  if (report.patient.firstGivenName !== undefined)
    report.patient.givenNames = [report.patient.firstGivenName];
  const birthDate = str(p, 'birthDate', 'patient.birthDate');
  if (birthDate !== undefined) {
    if (!/^\d{4}-\d{2}-\d{2}$/.test(birthDate))
      throw bad('"birthDate" must be YYYY-MM-DD', 'patient.birthDate');
    report.patient.birthDate = birthDate;
  }
  const sex = str(p, 'sex', 'patient.sex');
  if (sex !== undefined) {
    if (sex !== 'M' && sex !== 'F' && sex !== 'I') throw bad('"sex" must be M, F or I', 'patient.sex');
    report.patient.sex = sex;
  }
  const documentType = str(json, 'documentType', 'documentType');
  if (documentType !== undefined) report.documentType = { code: documentType, system: OID.loinc };
  const reportDate = str(json, 'reportDate', 'reportDate');
  if (reportDate !== undefined) report.reportDate = reportDate;
  const rpps = str(json, 'authorRpps', 'authorRpps');
  if (rpps !== undefined) report.author = { rpps };
  const lab = str(json, 'labFiness', 'labFiness');
  if (lab !== undefined) report.lab = { finess: lab };
  const documentId = str(json, 'documentId', 'documentId');
  if (documentId !== undefined) report.document.uniqueId = documentId;
  const status = str(json, 'status', 'status');
  if (status !== undefined) {
    if (!STATUSES.has(status)) throw bad('"status" must be final, replacement or deletion', 'status');
    report.document.status = status as DocumentStatus;
  }
  const replaces = str(json, 'replaces', 'replaces');
  if (replaces !== undefined) report.document.replaces = replaces;
  const order = str(json, 'orderNumber', 'orderNumber');
  if (order !== undefined) report.order = { placerNumber: order };
  return report;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function bad(what: string, location: string, cause?: unknown): ReportError {
  return new ReportError(
    'REPORT_BAD_SIDECAR',
    `the PDF's sidecar cannot be read: ${what}`,
    'send NAME.json (see the README: Clinical documents) or an HL7 ORU/MDM NAME.hl7 beside NAME.pdf',
    location,
    cause,
  );
}
