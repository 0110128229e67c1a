// HL7 v2 packaging of a CDA document for record systems (CI-SIS "transmission de documents CDA en
// HL7 v2", MSH-21 2.1^CISIS_CDA_HL7_V2): MDM^T02 (v2.6) or ORU^R01 (v2.5) with the CDA in base64 in
// an ED OBX. Shaped on the agency's real messages (hl7V2-exemples, Trans_Doc-CDA-HL7V2): a new
// document is MDM^T02 / ORC NW / OBX-11 F; a replacement is MDM^T10 (the agency's messages use T10
// for replacement and T04 for deletion) / ORC RO / OBX-11 C, with TXA-13 naming the replaced
// document. Issue 11 names T04 for the replacement, as some record systems read it: a receiver's
// `replacementEvent` says which it expects, the agency's T10 by default. Everything about the
// patient and the document is read from the CDA itself, so PID-3 carries exactly the CDA's
// recordTarget ids and the action follows its relatedDocument. The document's PDF, when given,
// travels in a second ED OBX (`^AP^PDF^Base64^`) for systems that show rather than read.
import { StepError } from './contract.ts';
import { escape } from './hl7v2.ts';
import { attr, element, elements, parseXml, text } from './xml.ts';
import type { XmlElement } from './xml.ts';

export interface PackagingOptions {
  structure: 'MDM' | 'ORU';
  sendingApplication: string;
  sendingFacility: string;
  receivingApplication: string;
  receivingFacility: string;
  /** MSH-10: stable per outbound message (the engine's idempotency key), never random here. */
  messageControlId: string;
  /** MSH-7 / EVN-2, HL7 TS (`YYYYMMDDHHMMSS`): given, this module has no clock. */
  timestamp: string;
  processingId?: 'P' | 'T' | 'D';
  /** MDM event of a replacement: the agency's examples use T10; some receivers expect T04. */
  replacementEvent?: 'T10' | 'T04';
}

interface Id {
  root: string;
  extension?: string;
}

/** What the packaging needs from a CDA header. */
export interface CdaSummary {
  id: Id;
  code: { code: string; displayName: string };
  effectiveTime: string;
  patientIds: Id[];
  birthName: string;
  firstGivenName: string;
  birthGivenNames: string;
  usedName?: string;
  birthDate: string;
  sex: string;
  /** Id of the document this version replaces (relatedDocument RPLC). */
  replaces?: Id;
  /** Legal authenticator's national id (IdNat_PS). */
  authenticator?: string;
}

function id(node: XmlElement | undefined): Id | undefined {
  const root = attr(node, 'root');
  return root === undefined ? undefined : { root, extension: attr(node, 'extension') };
}

function missing(what: string): StepError {
  return new StepError(
    'MDM_CDA_INCOMPLETE',
    `the CDA document has no ${what}: it cannot be packaged for HL7 v2`,
  );
}

/** Reads the header fields the HL7 v2 envelope repeats (with the product's one XML reader). */
export function summarizeCda(cda: string | XmlElement): CdaSummary {
  const doc = typeof cda === 'string' ? parseXml(cda) : cda;
  if (doc.local !== 'ClinicalDocument') throw missing('ClinicalDocument root');
  const patientIds = elements(doc, 'recordTarget/patientRole/id')
    .map(id)
    .filter((i): i is Id => i?.extension !== undefined);
  if (patientIds.length === 0) throw missing('patient identifier in recordTarget');
  const patient = element(doc, 'recordTarget/patientRole/patient');
  const families = elements(doc, 'recordTarget/patientRole/patient/name/family');
  const givens = elements(doc, 'recordTarget/patientRole/patient/name/given');
  const qualified = (nodes: XmlElement[], q: string | undefined): XmlElement[] =>
    nodes.filter((n) => attr(n, 'qualifier') === q);
  const birthName = text(qualified(families, 'BR')[0] ?? families[0]);
  if (birthName === '') throw missing("patient's birth name");
  const docId = id(element(doc, 'id'));
  if (docId === undefined) throw missing('document id');
  const code = element(doc, 'code');
  const related = elements(doc, 'relatedDocument').find((r) => attr(r, 'typeCode') === 'RPLC');
  const usedName = qualified(families, 'CL')[0];
  return {
    id: docId,
    code: { code: attr(code, 'code') ?? '', displayName: attr(code, 'displayName') ?? '' },
    effectiveTime: attr(element(doc, 'effectiveTime'), 'value') ?? '',
    patientIds,
    birthName,
    firstGivenName: text(qualified(givens, 'BR')[0] ?? givens[0]),
    birthGivenNames: text(qualified(givens, undefined)[0]),
    usedName: usedName === undefined ? undefined : text(usedName),
    birthDate: attr(element(patient ?? doc, 'birthTime'), 'value') ?? '',
    sex: attr(element(patient ?? doc, 'administrativeGenderCode'), 'code') ?? 'U',
    replaces: related === undefined ? undefined : id(element(related, 'parentDocument/id')),
    authenticator: attr(element(doc, 'legalAuthenticator/assignedEntity/id'), 'extension'),
  };
}

/** National assigning authorities of the INS (STANDARDS.md); any other root is an establishment's IPP. */
const INS_AUTHORITY: Readonly<Record<string, string>> = {
  '1.2.250.1.213.1.4.8': 'ASIP-SANTE-INS-NIR',
  '1.2.250.1.213.1.4.9': 'ASIP-SANTE-INS-NIA',
  '1.2.250.1.213.1.4.10': 'ASIP-SANTE-INS-NIR',
  '1.2.250.1.213.1.4.11': 'ASIP-SANTE-INS-NIR',
};

const e = (value: string): string => escape(value);

/** PID-3 repetition: `ID^^^NAMESPACE&OID&ISO^INS` for an INS, `ID^^^&OID&ISO^PI` for an IPP. */
function cx(i: Id): string {
  const authority = INS_AUTHORITY[i.root];
  return `${e(i.extension ?? '')}^^^${e(authority ?? '')}&${e(i.root)}&ISO^${authority === undefined ? 'PI' : 'INS'}`;
}

/** EI for a document id: `extension^^root^ISO`, or the root alone (TXA-12, TXA-13). */
function ei(i: Id): string {
  return i.extension === undefined ? e(i.root) : `${e(i.extension)}^^${e(i.root)}^ISO`;
}

function segment(...fields: string[]): string {
  return fields.join('|');
}

/**
 * The HL7 v2 message (segments ended by CR) carrying the CDA, for a new document or a replacement,
 * and its PDF rendering when given. `parsed` spares a second parse when the caller has the tree.
 */
export function packageCda(
  cda: string,
  options: PackagingOptions,
  pdf?: Uint8Array,
  parsed?: XmlElement,
): string {
  const doc = summarizeCda(parsed ?? cda);
  const replacement = doc.replaces !== undefined;
  const mdm = options.structure === 'MDM';
  const docType = `${e(doc.code.code)}^${e(doc.code.displayName)}^LN`;
  const status = replacement ? 'C' : 'F';
  const names = [`${e(doc.birthName)}^${e(doc.firstGivenName)}^${e(doc.birthGivenNames)}^^^^L`];
  if (doc.usedName !== undefined) names.push(`${e(doc.usedName)}^^^^^^D`);
  const segments = [
    segment(
      'MSH',
      '^~\\&',
      e(options.sendingApplication),
      e(options.sendingFacility),
      e(options.receivingApplication),
      e(options.receivingFacility),
      options.timestamp,
      '',
      mdm ? `MDM^${replacement ? (options.replacementEvent ?? 'T10') : 'T02'}^MDM_T02` : 'ORU^R01^ORU_R01',
      e(options.messageControlId),
      options.processingId ?? 'P',
      mdm ? '2.6' : '2.5',
      '',
      '',
      '',
      '',
      'FRA',
      'UNICODE UTF-8',
      '',
      '',
      '2.1^CISIS_CDA_HL7_V2',
    ),
    mdm && segment('EVN', '', options.timestamp),
    segment(
      'PID',
      '',
      '',
      doc.patientIds.map(cx).join('~'),
      '',
      names.join('~'),
      '',
      doc.birthDate,
      e(doc.sex),
    ),
    segment('PV1', '1', 'N'),
    segment('ORC', replacement ? 'RO' : 'NW'),
    mdm
      ? segment('OBR', '1', '', '', docType)
      : segment(
          'OBR',
          '1',
          '',
          '',
          docType,
          '',
          '',
          doc.effectiveTime,
          ...Array<string>(17).fill(''),
          status,
        ),
    mdm &&
      segment(
        'TXA',
        '1',
        e(doc.code.code),
        'TEXT',
        doc.effectiveTime,
        ...Array<string>(7).fill(''),
        ei(doc.id),
        doc.replaces === undefined ? '' : ei(doc.replaces),
        '',
        '',
        '',
        'AU',
        ...Array<string>(4).fill(''),
        e(doc.authenticator ?? ''),
      ),
    segment(
      'OBX',
      '1',
      'ED',
      docType,
      '',
      `^TEXT^XML^Base64^${Buffer.from(cda, 'utf8').toString('base64')}`,
      ...Array<string>(5).fill(''),
      status,
    ),
    pdf !== undefined &&
      segment(
        'OBX',
        '2',
        'ED',
        docType,
        '',
        `^AP^PDF^Base64^${Buffer.from(pdf).toString('base64')}`,
        ...Array<string>(5).fill(''),
        status,
      ),
  ].filter((s): s is string => s !== false);
  return `${segments.join('\r')}\r`;
}
