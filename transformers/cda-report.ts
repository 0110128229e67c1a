// CDA R2 reports (CI-SIS): the pathology report CR-ACP (templateId 1.2.250.1.213.1.1.1.57, IHE
// PaLM APSR) and the molecular genetics report CR-GM (1.2.250.1.213.1.1.1.32), and any other CDA
// (a biology report inside an ORU) as far as its header and coded entries go.
//
// Findings are read from every coded element of the body whose code system the DCC files (ADICAP,
// ICD-O-3, TNM, SNOMED CT, ICD-10), wherever the template puts them: senders place the same code
// as an observation's value, its code or a translation, and we would rather not miss one.
import { parseXml, element, elements, descendants, attr, text } from './xml.ts';
import type { XmlElement, XmlLimits } from './xml.ts';
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
  Coded,
  ReadOptions,
  ReportKind,
  ReportPatient,
  Variant,
} from './clinical-report.ts';

export const CR_ACP_TEMPLATE = '1.2.250.1.213.1.1.1.57';
export const CR_GM_TEMPLATE = '1.2.250.1.213.1.1.1.32';

const LOINC_DOCUMENT_STATUS = '33557-0';
// Conclusion sections: "Conclusion - Diagnostic" (APSR, CR-GM) and "Conclusions".
const CONCLUSION_SECTIONS = new Set<string>([LOINC.conclusion, '55110-1']);

export interface CdaReadOptions extends ReadOptions, XmlLimits {}

/** Whether the bytes look like a CDA document (cheap: the root element's name in the first 4 KiB). */
export function looksLikeCda(content: Buffer): boolean {
  return /<(?:[A-Za-z_][\w.-]*:)?ClinicalDocument[\s>]/.test(content.subarray(0, 4096).toString('latin1'));
}

/**
 * Read a CDA report. `kind` is the flow it arrived on; a CR-ACP or CR-GM template overrides it.
 * `original` is the whole received content when the CDA was embedded (an ED OBX).
 */
export function readCdaReport(
  content: Uint8Array,
  kind: ReportKind,
  options: CdaReadOptions = {},
  original = attachment('text/xml', content),
): ClinicalReport {
  const cda = parseXml(content, options);
  if (cda.local !== 'ClinicalDocument') {
    throw new ReportError(
      'REPORT_BAD_STRUCTURE',
      `the XML root is <${cda.name}>, not a CDA <ClinicalDocument>`,
      'send a CDA R2 document (CR-ACP or CR-GM)',
      'root',
    );
  }
  const templates = elements(cda, 'templateId').map((t) => attr(t, 'root') ?? '');
  const detected: ReportKind | undefined = templates.includes(CR_GM_TEMPLATE)
    ? 'molecular'
    : templates.includes(CR_ACP_TEMPLATE)
      ? 'pathology'
      : undefined;
  const report = emptyReport(detected ?? kind, 'cda', original);
  const template = templates.find((t) => t === CR_GM_TEMPLATE || t === CR_ACP_TEMPLATE);
  if (template !== undefined) report.template = template;
  const type = coded(element(cda, 'code'));
  if (type !== undefined) report.documentType = type;
  const title = text(element(cda, 'title'));
  if (title !== '') report.title = title;
  const date = isoTimestamp(attr(element(cda, 'effectiveTime'), 'value') ?? '', 'effectiveTime');
  if (date !== undefined) report.reportDate = date;
  report.patient = readPatient(cda, options);
  readDocumentIds(cda, report);
  // The order the report answers: the placer's number under the placer's OID.
  const order = element(cda, 'inFulfillmentOf/order/id');
  const placerNumber = attr(order, 'extension');
  if (placerNumber !== undefined && placerNumber !== '') {
    report.order = { placerNumber, placerNamespace: attr(order, 'root') ?? '' };
  }
  readAuthorAndLab(cda, report);
  const body = element(cda, 'component/structuredBody') ?? element(cda, 'component/nonXMLBody');
  if (body !== undefined) {
    readFindings(body, report);
    readSpecimens(body, report);
    readVariants(body, report);
    readConclusion(body, report);
    readAttachments(body, report);
    readNarrative(body, report);
  }
  return report;
}

/** The document as a person reads it: each section's title and narrative text, outermost first. */
function readNarrative(body: XmlElement, report: ClinicalReport): void {
  const blocks = descendants(body, 'section')
    .map((s) => [text(element(s, 'title')), text(element(s, 'text'))].filter((t) => t !== '').join('\n'))
    .filter((b) => b !== '');
  if (blocks.length > 0) report.text = blocks.join('\n\n');
}

function coded(e: XmlElement | undefined): Coded | undefined {
  const code = attr(e, 'code');
  if (e === undefined || code === undefined || code === '') return undefined;
  const out: Coded = { code };
  const system = attr(e, 'codeSystem');
  if (system !== undefined) out.system = system;
  const display = attr(e, 'displayName');
  if (display !== undefined) out.display = display;
  return out;
}

/** An II as one string: `root^extension`, as XDS writes a uniqueId; the root alone when it is the id. */
function instanceId(e: XmlElement | undefined): string | undefined {
  const root = attr(e, 'root');
  if (root === undefined || root === '') return undefined;
  const extension = attr(e, 'extension');
  return extension === undefined || extension === '' ? root : `${root}^${extension}`;
}

function readPatient(cda: XmlElement, options: ReadOptions): ReportPatient {
  const role = element(cda, 'recordTarget/patientRole');
  if (role === undefined) {
    throw new ReportError(
      'REPORT_NO_PATIENT',
      'the CDA has no recordTarget/patientRole',
      'name the patient in recordTarget: INS and the establishment IPP',
      'recordTarget',
    );
  }
  const patient: ReportPatient = { identifiers: [] };
  for (const id of elements(role, 'id')) {
    const root = attr(id, 'root') ?? '';
    const value = attr(id, 'extension') ?? '';
    if (value === '' || root === '') continue;
    const ins = readIns(value, root, 'recordTarget/patientRole/id', options);
    if (ins !== undefined) patient.ins = ins;
    else
      patient.identifiers.push({ value, type: 'PI', namespace: '', authority: root, authorityType: 'ISO' });
  }
  if (patient.identifiers.length === 0 && patient.ins === undefined) {
    throw new ReportError(
      'REPORT_NO_PATIENT',
      'the CDA names no patient identifier (INS or IPP)',
      'send the INS and the IPP as <id root="…" extension="…"/> in recordTarget/patientRole',
      'recordTarget/patientRole/id',
    );
  }
  const person = element(role, 'patient');
  if (person === undefined) return patient;
  const name = element(person, 'name');
  const families = name === undefined ? [] : elements(name, 'family');
  const givens = name === undefined ? [] : elements(name, 'given');
  const birth = families.find((f) => attr(f, 'qualifier') === 'BR') ?? families[0];
  if (birth !== undefined && text(birth) !== '') patient.birthName = text(birth);
  const used = families.find(
    (f) => ['SP', 'CL'].includes(attr(f, 'qualifier') ?? '') && text(f) !== text(birth),
  );
  if (used !== undefined) patient.usedName = text(used);
  const birthGiven = givens.find((g) => attr(g, 'qualifier') === 'BR') ?? givens[0];
  const givenNames = text(birthGiven)
    .split(' ')
    .filter((g) => g !== '');
  if (givenNames.length > 0) {
    patient.firstGivenName = givenNames[0] as string;
    patient.givenNames = givenNames;
  }
  const birthTime = isoTimestamp(attr(element(person, 'birthTime'), 'value') ?? '', 'patient/birthTime');
  if (birthTime !== undefined) patient.birthDate = birthTime.slice(0, 10);
  const sex = attr(element(person, 'administrativeGenderCode'), 'code');
  if (sex === 'M' || sex === 'F') patient.sex = sex;
  else if (sex === 'U' || sex === 'UN') patient.sex = 'I';
  const place = text(element(person, 'birthplace/place/addr/county'));
  if (place !== '') patient.birthPlace = place;
  return patient;
}

function readDocumentIds(cda: XmlElement, report: ClinicalReport): void {
  const uniqueId = instanceId(element(cda, 'id'));
  if (uniqueId !== undefined) report.document.uniqueId = uniqueId;
  const setId = instanceId(element(cda, 'setId'));
  if (setId !== undefined) report.document.setId = setId;
  const version = Number(attr(element(cda, 'versionNumber'), 'value'));
  if (Number.isInteger(version) && version > 0) report.document.version = version;
  const replaced = elements(cda, 'relatedDocument').find((r) => attr(r, 'typeCode') === 'RPLC');
  if (replaced !== undefined) {
    report.document.status = 'replacement';
    const parent = instanceId(element(replaced, 'parentDocument/id'));
    if (parent !== undefined) report.document.replaces = parent;
  }
}

function readAuthorAndLab(cda: XmlElement, report: ClinicalReport): void {
  const author = element(cda, 'author/assignedAuthor');
  const rpps = elements(author ?? cda, 'id').find((id) => attr(id, 'root') === OID.rpps);
  const person = author === undefined ? undefined : element(author, 'assignedPerson/name');
  const name = [...elements(person ?? cda, 'given'), ...elements(person ?? cda, 'family')]
    .map(text)
    .filter((n) => n !== '')
    .join(' ');
  if (rpps !== undefined || (person !== undefined && name !== '')) {
    report.author = {};
    const id = attr(rpps, 'extension');
    if (id !== undefined) report.author.rpps = id;
    if (person !== undefined && name !== '') report.author.name = name;
  }
  const lab =
    (author === undefined ? undefined : element(author, 'representedOrganization')) ??
    element(cda, 'custodian/assignedCustodian/representedCustodianOrganization');
  if (lab !== undefined) {
    const structure = elements(lab, 'id').find((id) => attr(id, 'root') === OID.structure);
    const found = organization(
      finessOfStructureId(attr(structure, 'extension') ?? ''),
      text(element(lab, 'name')),
    );
    if (found !== undefined) report.lab = found;
  }
}

function readFindings(body: XmlElement, report: ClinicalReport): void {
  // The document-status section codes the workflow state in SNOMED CT ("in progress"): not a finding.
  const status = new Set(
    descendants(body, 'section')
      .filter((s) => codeOf(s) === LOINC_DOCUMENT_STATUS)
      .flatMap((s) => descendants(s, '*')),
  );
  for (const e of [
    ...descendants(body, 'value'),
    ...descendants(body, 'code'),
    ...descendants(body, 'translation'),
  ]) {
    if (status.has(e)) continue;
    const c = coded(e);
    if (c === undefined) continue;
    const kind = findingKind(c.system, c.code);
    if (kind !== 'other') addFinding(report, { kind, ...c });
  }
}

function readSpecimens(body: XmlElement, report: ClinicalReport): void {
  for (const role of elements(body, '//specimen/specimenRole')) {
    const id = instanceId(element(role, 'id'));
    if (id !== undefined && report.specimens.some((s) => s.id === id)) continue;
    const type = coded(element(role, 'specimenPlayingEntity/code'));
    if (id === undefined && type === undefined) continue;
    report.specimens.push({ ...(id === undefined ? {} : { id }), ...(type === undefined ? {} : { type }) });
  }
}

function codeOf(e: XmlElement): string | undefined {
  return attr(element(e, 'code'), 'code');
}

// CR-GM: each gene observation (48018-6, value in HGNC) carries its reference sequence, DNA and
// protein changes as subordinate observations, inside an organizer whose code qualifier says how the
// lab classed the variants (MED-536 known clinical impact, …) or what the conclusion says
// (MED-542 mutation observed, …). Gene observations outside such an organizer are the method's list
// of genes analysed (with their exons), not results.
function readVariants(body: XmlElement, report: ClinicalReport): void {
  const reported = new Set<XmlElement>();
  for (const organizer of descendants(body, 'organizer')) {
    const classification = coded(element(organizer, 'code/qualifier/value'));
    if (classification === undefined) continue;
    for (const gene of elements(organizer, 'component/observation')) {
      if (codeOf(gene) !== LOINC.gene) continue;
      reported.add(gene);
      const variant = readVariant(gene);
      if (variant !== undefined) report.variants.push({ ...variant, classification });
    }
  }
  for (const gene of descendants(body, 'observation')) {
    if (codeOf(gene) !== LOINC.gene || reported.has(gene)) continue;
    const symbol = geneSymbol(gene);
    if (symbol !== undefined && !report.genesAnalysed.includes(symbol)) report.genesAnalysed.push(symbol);
  }
}

function geneSymbol(gene: XmlElement): string | undefined {
  const value = element(gene, 'value');
  const symbol = attr(value, 'code') ?? attr(value, 'displayName') ?? text(value);
  return symbol === undefined || symbol === '' ? undefined : symbol;
}

function readVariant(gene: XmlElement): Variant | undefined {
  const symbol = geneSymbol(gene);
  if (symbol === undefined) return undefined;
  const variant: Variant = { gene: symbol };
  const interpretation: Coded[] = [];
  for (const sub of elements(gene, 'entryRelationship/observation')) {
    const code = codeOf(sub);
    const value = element(sub, 'value');
    const valueText = text(value);
    const valueCode = coded(value);
    if (!setVariantPart(variant, code ?? '', valueText) && valueCode !== undefined)
      interpretation.push(valueCode);
  }
  for (const i of elements(gene, 'interpretationCode')) {
    const c = coded(i);
    if (c !== undefined) interpretation.push(c);
  }
  if (interpretation.length > 0) variant.interpretation = interpretation;
  return variant;
}

function readConclusion(body: XmlElement, report: ClinicalReport): void {
  const sections = descendants(body, 'section');
  const conclusion =
    sections.find((s) => CONCLUSION_SECTIONS.has(codeOf(s) ?? '')) ??
    sections.find((s) => /conclusion/i.test(text(element(s, 'title'))));
  const words = text(element(conclusion ?? body, 'text'));
  if (conclusion !== undefined && words !== '') report.conclusion = words;
}

// A CDA may carry its own rendering: a nonXMLBody (level 1) or an observationMedia with the PDF copy.
function readAttachments(body: XmlElement, report: ClinicalReport): void {
  const carriers = [body, ...descendants(body, '*')].filter(
    (e) => attr(e, 'representation') === 'B64' && attr(e, 'mediaType') !== undefined,
  );
  for (const e of carriers) {
    const bytes = decodeBase64(
      e.children.filter((c) => typeof c === 'string').join(''),
      `${e.name} mediaType=${attr(e, 'mediaType')}`,
    );
    report.attachments.push(attachment(attr(e, 'mediaType') as string, bytes));
  }
}
