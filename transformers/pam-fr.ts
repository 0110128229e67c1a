// IHE PAM France (2.11) ADT messages → identity events for the DCC core. Pure mapping: it reads
// what the establishment said about a patient and says nothing about what the store should do
// with it (identity vigilance decides that).
//
// Patient-identity events (ITI-30) and movement events (ITI-31) both carry PID: we take the identity
// from every one of them and ignore the movement. A40 merges (PID + MRG pairs), A47 corrects an
// identifier (MRG-1 → PID-3), A24/A37 link and unlink two PIDs.
import { parseForStep, get, repetitions, component, segmentsNamed, splitBatch } from './hl7v2.ts';
import { Hl7Error } from './hl7v2-error.ts';
import type { Hl7Message, Hl7Segment, Hl7Repetition } from './hl7v2.ts';
import type { Hl7ErrorCode } from './hl7v2-error.ts';
import Type, { type Static } from 'typebox';
import { Default, readOptions, StepError, type OptionsOf } from './contract.ts';
import { defaultCharsetOption } from './hl7v2-charset.ts';
import { OncoError } from '../config/errors.ts';
import type { StepSpec, Step } from './contract.ts';

export const IDENTITY_CONTENT_TYPE = 'application/vnd.onco.identity+json';

/** A PID-3 / MRG-1 repetition other than the INS. For an IPP (`type` PI) `authority` is the FINESS. */
export interface Identifier {
  value: string;
  /** CX-5 identifier type code: PI (IPP), AN, NH, … */
  type: string;
  /** CX-4.1 assigning authority namespace (e.g. CHU-X). */
  namespace: string;
  /** CX-4.2 universal id: the FINESS for an IPP, an OID otherwise. */
  authority: string;
  /** CX-4.3 universal id type as sent (PAM FR uses M and N for FINESS kinds, ISO for OIDs). */
  authorityType: string;
}

export type InsKind = 'INS-NIR' | 'INS-NIA' | 'INS-NIR-TEST' | 'INS-NIR-DEMO';

export interface Ins {
  /** 15 characters: NIR or NIA, key included. */
  matricule: string;
  oid: string;
  kind: InsKind;
}

/** National identity-vigilance status (PROV < RECUP, VALI < QUAL). */
export type IdentityStatus = 'PROV' | 'RECUP' | 'VALI' | 'QUAL';

export interface Reliability {
  status: IdentityStatus;
  /** PID-32 codes as sent. */
  codes: string[];
  doubtful: boolean;
  fictitious: boolean;
}

/** ZFD-5: how the identity was collected. */
export type CollectionMode = 'SM' | 'CV' | 'INSI' | 'CB' | 'RFID' | 'AV';

export interface PatientIdentity {
  identifiers: Identifier[];
  ins?: Ins;
  birthName: string;
  firstGivenName: string;
  /** All birth given names in order (XPN-3, space-separated on the wire); [first given name] when XPN-3 is empty. */
  givenNames: string[];
  /** ISO date, possibly partial (YYYY or YYYY-MM) when the sender knows no more. */
  birthDate?: string;
  sex?: 'M' | 'F' | 'I';
  /** INSEE code of the birth place (PID-11 repetition of type BDL, XAD-9). */
  birthPlace?: string;
  usedName?: string;
  usedGivenName?: string;
  reliability: Reliability;
  collectionMode?: CollectionMode;
  /** PID-29, ISO date (possibly partial). */
  deathDate?: string;
  /** PID-30: Y or N as sent; absent when the sender said nothing. */
  deceased?: boolean;
}

export interface MergedIdentity {
  identifiers: Identifier[];
  ins?: Ins;
}

/** Where an event comes from: the journal and the vigilance review show it. */
export interface EventSource {
  /** Trigger event, e.g. A28. */
  event: string;
  controlId: string;
  sendingApp: string;
  sendingFacility: string;
  /** MSH-7 as sent. */
  messageDateTime: string;
}

export type IdentityEvent =
  | { kind: 'upsert'; source: EventSource; patient: PatientIdentity }
  | { kind: 'merge'; source: EventSource; survivor: PatientIdentity; merged: MergedIdentity }
  | {
      kind: 'change-identifier';
      source: EventSource;
      patient: PatientIdentity;
      from: Identifier;
      to: Identifier;
    }
  | { kind: 'link' | 'unlink'; source: EventSource; a: PatientIdentity; b: PatientIdentity };

/** Every identity an event names (an A47's MRG-1 identifier is the old one of its patient). */
export function identitiesOf(e: IdentityEvent): Array<PatientIdentity | MergedIdentity> {
  switch (e.kind) {
    case 'upsert':
      return [e.patient];
    case 'change-identifier':
      return [e.patient, { identifiers: [e.from] }];
    case 'merge':
      return [e.survivor, e.merged];
    default:
      return [e.a, e.b];
  }
}

export type PamErrorCode =
  | 'PAM_UNSUPPORTED_MESSAGE'
  | 'PAM_UNKNOWN_EVENT'
  | 'PAM_BAD_STRUCTURE'
  | 'PAM_MISSING_PID'
  | 'PAM_MISSING_MRG'
  | 'PAM_MISSING_IPP'
  | 'PAM_BAD_IDENTIFIER'
  | 'PAM_BAD_INS'
  | 'PAM_TEST_INS'
  | 'PAM_MISSING_BIRTH_NAME'
  | 'PAM_BAD_DATE'
  | 'PAM_BAD_SEX'
  | 'PAM_BAD_BIRTH_PLACE'
  | 'PAM_BAD_RELIABILITY'
  | 'PAM_BAD_COLLECTION_MODE'
  | 'PAM_MISSING_BIRTH_DATE'
  | 'PAM_MISSING_GIVEN_NAME'
  | 'PAM_IPP_WITHOUT_FINESS'
  | 'PAM_BAD_DEATH'
  | 'PAM_FIELD_TOO_LONG';

/**
 * A message this mapping refuses. `ackCode` and `hl7Code` are what the ACK should say: AR for a
 * message we will never take (wrong type or event), AE for content the sender must correct.
 */
export class PamError extends OncoError {
  declare readonly code: PamErrorCode;
  declare readonly hint: string;
  readonly hl7Code: Hl7ErrorCode;
  readonly ackCode: 'AE' | 'AR';
  constructor(
    code: PamErrorCode,
    message: string,
    details: { hint: string; location?: string; hl7Code: Hl7ErrorCode },
  ) {
    const ackCode = details.hl7Code === '200' || details.hl7Code === '201' ? 'AR' : 'AE';
    super(code, { message, ...details, protocol: { hl7: details.hl7Code, ack: ackCode } });
    this.hl7Code = details.hl7Code;
    this.ackCode = ackCode;
  }
}

export interface PamOptions {
  /** Accept the INS test and demo OIDs (every public example uses the test one). Default false. */
  acceptTestIns?: boolean;
}

// Movement events (ITI-31) and their cancellations: the identity in PID is taken, the movement ignored.
const UPSERT_EVENTS = new Set([
  'A28', 'A31', 'A08', 'A01', 'A02', 'A03', 'A04', 'A05', 'A06', 'A07', 'A11', 'A12', 'A13', 'A14', 'A16', 'A21', 'A22',
  'A25', 'A26', 'A27', 'A32', 'A33', 'A38', 'A44', 'A52', 'A53', 'A54', 'A55',
  'Z80', 'Z81', 'Z82', 'Z83', 'Z84', 'Z85', 'Z86', 'Z87', 'Z88', 'Z89', 'Z99',
]); // prettier-ignore

export const INS_OIDS: ReadonlyMap<string, InsKind> = new Map([
  ['1.2.250.1.213.1.4.8', 'INS-NIR'],
  ['1.2.250.1.213.1.4.9', 'INS-NIA'],
  ['1.2.250.1.213.1.4.10', 'INS-NIR-TEST'],
  ['1.2.250.1.213.1.4.11', 'INS-NIR-DEMO'],
]);

/** Map one parsed PAM FR message to its identity events (several for an A40 with several pairs). */
export function mapPamFr(message: Hl7Message, options: PamOptions = {}): IdentityEvent[] {
  const source = sourceOf(message);
  const pids = segmentsNamed(message, 'PID');
  if (pids.length === 0)
    throw refuse(
      'PAM_MISSING_PID',
      `${source.event} has no PID segment`,
      'send the patient identification segment PID',
      'PID',
      '101',
    );
  const patient = (pid: Hl7Segment, n: number): PatientIdentity => readPatient(message, pid, n, options);
  switch (source.event) {
    case 'A40':
      return mergePairs(message).map(([pid, mrg, n]) => ({
        kind: 'merge',
        source,
        survivor: fileable(patient(pid, n), n),
        merged: withIpp(readMerged(message, mrg, options), 'MRG-1'),
      }));
    case 'A47':
      return [changeIdentifier(message, source, patient(pids[0] as Hl7Segment, 1), options)];
    case 'A24':
    case 'A37': {
      if (pids.length !== 2)
        throw refuse(
          'PAM_BAD_STRUCTURE',
          `${source.event} must carry exactly two PID segments, found ${pids.length}`,
          'send the two patients to link or unlink, one PID each',
          'PID',
          '100',
        );
      return [
        {
          kind: source.event === 'A24' ? 'link' : 'unlink',
          source,
          a: patient(pids[0] as Hl7Segment, 1),
          b: patient(pids[1] as Hl7Segment, 2),
        },
      ];
    }
    default:
      return [{ kind: 'upsert', source, patient: fileable(patient(pids[0] as Hl7Segment, 1), 1) }];
  }
}

/**
 * What the store needs to file an identity, checked here so that the sender hears it in the
 * answer (AE) rather than after an AA: the store's checks remain as a safety net only.
 */
function fileable(patient: PatientIdentity, n: number): PatientIdentity {
  const at = (field: number): string => `${n > 1 ? `PID[${n}]` : 'PID'}-${field}`;
  if (patient.birthDate === undefined)
    throw refuse(
      'PAM_MISSING_BIRTH_DATE',
      `${at(7)} (birth date) is empty: a strict trait is missing`,
      'send the birth date as YYYYMMDD in PID-7 (YYYY or YYYYMM when only that is known)',
      at(7),
      '101',
    );
  if (!/\p{L}/u.test(patient.birthName))
    throw refuse(
      'PAM_MISSING_BIRTH_NAME',
      `${at(5)} birth name "${patient.birthName}" has no letter`,
      'send the birth name as BIRTHNAME^FIRSTGIVEN^GIVENNAMES^^^^L in PID-5',
      `${at(5)}.1`,
      '101',
    );
  if (!/\p{L}/u.test(patient.firstGivenName))
    throw refuse(
      'PAM_MISSING_GIVEN_NAME',
      `${at(5)} has no first given name`,
      'send the first given name in PID-5.2 of the birth name (repetition of type L)',
      `${at(5)}.2`,
      '101',
    );
  return patient;
}

/** An A40's merged identity is found by its IPP: without one there is nothing to merge. */
function withIpp(merged: MergedIdentity, where: string): MergedIdentity {
  if (!merged.identifiers.some((id) => id.type === 'PI'))
    throw refuse(
      'PAM_MISSING_IPP',
      `${where} has no IPP (identifier of type PI)`,
      'send the IPP of the merged identity as value^^^NAMESPACE&FINESS&M^PI in MRG-1',
      where,
      '101',
    );
  return merged;
}

function sourceOf(message: Hl7Message): EventSource {
  const type = get(message, 'MSH-9.1');
  if (type !== 'ADT') {
    throw refuse(
      'PAM_UNSUPPORTED_MESSAGE',
      `MSH-9 is ${type || '(empty)'}^${get(message, 'MSH-9.2')}: the identity feed takes ADT messages only`,
      'send IHE PAM FR ADT messages to this channel; results and documents go to their own channels',
      'MSH-9',
      '200',
    );
  }
  const event = get(message, 'MSH-9.2') || get(message, 'EVN-1');
  if (!UPSERT_EVENTS.has(event) && !['A40', 'A47', 'A24', 'A37'].includes(event)) {
    throw refuse(
      'PAM_UNKNOWN_EVENT',
      `ADT event "${event}" is not a PAM FR identity or movement event this feed handles`,
      'use A28/A31 (identity), A40 (merge), A47 (identifier change), A24/A37 (link/unlink) or a movement event carrying PID',
      'MSH-9.2',
      '201',
    );
  }
  return {
    event,
    controlId: get(message, 'MSH-10'),
    sendingApp: get(message, 'MSH-3'),
    sendingFacility: get(message, 'MSH-4'),
    messageDateTime: get(message, 'MSH-7'),
  };
}

function refuse(
  code: PamErrorCode,
  message: string,
  hint: string,
  location: string | undefined,
  hl7Code: Hl7ErrorCode,
): PamError {
  return new PamError(
    code,
    message,
    location === undefined ? { hint, hl7Code } : { hint, location, hl7Code },
  );
}

// ADT_A39: the PATIENT group (PID, PD1, MRG, PV1) repeats; each PID must be followed by its MRG.
function mergePairs(message: Hl7Message): [Hl7Segment, Hl7Segment, number][] {
  const pairs: [Hl7Segment, Hl7Segment, number][] = [];
  let pid: Hl7Segment | undefined;
  let n = 0;
  for (const segment of message.segments) {
    if (segment.name === 'PID') {
      if (pid !== undefined) throw missingMrg(n);
      pid = segment;
      n++;
    } else if (segment.name === 'MRG') {
      if (pid === undefined)
        throw refuse(
          'PAM_BAD_STRUCTURE',
          'an MRG segment comes before its PID',
          'in A40 each PID is followed by the MRG of the identity it absorbs',
          'MRG',
          '100',
        );
      pairs.push([pid, segment, n]);
      pid = undefined;
    }
  }
  if (pid !== undefined) throw missingMrg(n);
  return pairs;
}

function missingMrg(n: number): PamError {
  return refuse(
    'PAM_MISSING_MRG',
    `PID ${n} of the merge has no MRG segment`,
    'in A40 each PID (surviving identity) is followed by an MRG naming the merged identity in MRG-1',
    `PID[${n}]`,
    '101',
  );
}

function changeIdentifier(
  message: Hl7Message,
  source: EventSource,
  patient: PatientIdentity,
  options: PamOptions,
): IdentityEvent {
  const mrg = segmentsNamed(message, 'MRG')[0];
  if (mrg === undefined)
    throw refuse(
      'PAM_MISSING_MRG',
      'A47 has no MRG segment',
      'send the incorrect identifier in MRG-1',
      'MRG',
      '101',
    );
  const from = readMerged(message, mrg, options).identifiers[0];
  if (from === undefined || from.type !== 'PI')
    throw refuse(
      'PAM_MISSING_MRG',
      'MRG-1 of A47 holds no IPP (identifier of type PI)',
      'send the incorrect IPP in MRG-1 as value^^^NAMESPACE&FINESS&M^PI',
      'MRG-1',
      '101',
    );
  const to = patient.identifiers.find(
    (id) => id.type === from.type && id.authority === from.authority && id.namespace === from.namespace,
  );
  if (to === undefined) {
    throw refuse(
      'PAM_BAD_IDENTIFIER',
      `A47: PID-3 has no ${from.type || 'identifier'} from the authority of MRG-1 (${from.namespace}/${from.authority})`,
      'PID-3 must carry the correct identifier issued by the same authority as the incorrect one in MRG-1',
      'PID-3',
      '101',
    );
  }
  return { kind: 'change-identifier', source, patient, from, to };
}

function readMerged(message: Hl7Message, mrg: Hl7Segment, options: PamOptions): MergedIdentity {
  const { identifiers, ins } = readIdentifiers(message, mrg, 1, 'MRG', options);
  if (identifiers.length === 0 && ins === undefined)
    throw refuse(
      'PAM_MISSING_MRG',
      'MRG-1 holds no identifier',
      'send the identifier of the merged (or incorrect) identity in MRG-1',
      'MRG-1',
      '101',
    );
  return ins === undefined ? { identifiers } : { identifiers, ins };
}

function readPatient(message: Hl7Message, pid: Hl7Segment, n: number, options: PamOptions): PatientIdentity {
  const where = n > 1 ? `PID[${n}]` : 'PID';
  const at = (field: number): string => `${where}-${field}`;
  const { identifiers, ins } = readIdentifiers(message, pid, 3, where, options);
  if (!identifiers.some((id) => id.type === 'PI')) {
    throw refuse(
      'PAM_MISSING_IPP',
      'PID-3 has no IPP (identifier of type PI)',
      'send the local patient identifier as value^^^NAMESPACE&FINESS&M^PI in PID-3',
      at(3),
      '101',
    );
  }
  const names = repetitions(message, pid, 5);
  const birth = names.find((r) => component(r, 7) === 'L') ?? names.find((r) => component(r, 7) === '');
  const used = names.find((r) => component(r, 7) === 'D');
  const name = (rep: Hl7Repetition | undefined, c: number): string =>
    within(component(rep, c).trim(), `${at(5)}[${names.indexOf(rep!) + 1}].${c}`, MAX.name);
  const birthName = name(birth, 1);
  if (birthName === '')
    throw refuse(
      'PAM_MISSING_BIRTH_NAME',
      'PID-5 has no birth name (repetition of type L)',
      'send the birth name as BIRTHNAME^FIRSTGIVEN^GIVENNAMES^^^^L in PID-5',
      at(5),
      '101',
    );
  const firstGivenName = name(birth, 2);
  const patient: PatientIdentity = {
    identifiers,
    birthName,
    firstGivenName,
    givenNames: splitGivenNames(name(birth, 3), firstGivenName),
    reliability: readReliability(message, pid, at(32)),
  };
  if (ins !== undefined) patient.ins = ins;
  const birthDate = readDate(get(message, at(7)), at(7));
  if (birthDate !== undefined) patient.birthDate = birthDate;
  const sex = readSex(get(message, at(8)), at(8));
  if (sex !== undefined) patient.sex = sex;
  const place = readBirthPlace(repetitions(message, pid, 11), at(11));
  if (place !== undefined) patient.birthPlace = place;
  if (used !== undefined && name(used, 1) !== '') patient.usedName = name(used, 1);
  if (used !== undefined && name(used, 2) !== '') patient.usedGivenName = name(used, 2);
  const deathDate = readDate(get(message, at(29)), at(29));
  if (deathDate !== undefined) patient.deathDate = deathDate;
  const deceased = readDeathIndicator(get(message, at(30)), at(30));
  if (deceased !== undefined) patient.deceased = deceased;
  const mode = readCollectionMode(message);
  if (mode !== undefined) patient.collectionMode = mode;
  return patient;
}

function splitGivenNames(list: string, first: string): string[] {
  const names = list.split(' ').filter((n) => n !== '');
  return names.length > 0 ? names : first === '' ? [] : [first];
}

function readIdentifiers(
  message: Hl7Message,
  segment: Hl7Segment,
  field: number,
  where: string,
  options: PamOptions,
): MergedIdentity {
  const identifiers: Identifier[] = [];
  let ins: Ins | undefined;
  repetitions(message, segment, field).forEach((rep, i) => {
    const location = `${where}-${field}[${i + 1}]`;
    const id = readCx(rep, location);
    if (id === undefined) return;
    if (id.type === 'INS' || INS_OIDS.has(id.authority)) {
      const found = readIns(id, location, options);
      if (ins !== undefined && ins.matricule !== found.matricule)
        throw refuse(
          'PAM_BAD_INS',
          `${where}-${field} carries two different INS`,
          'send a single INS per patient',
          location,
          '205',
        );
      ins = found;
    } else {
      identifiers.push(id);
    }
  });
  return ins === undefined ? { identifiers } : { identifiers, ins };
}

function readCx(rep: Hl7Repetition, location: string): Identifier | undefined {
  const id: Identifier = {
    value: within(component(rep, 1).trim(), `${location}.1`, MAX.idNumber),
    type: within(component(rep, 5).trim(), `${location}.5`, MAX.idType),
    namespace: within(component(rep, 4, 1).trim(), `${location}.4.1`, MAX.namespace),
    authority: within(component(rep, 4, 2).trim(), `${location}.4.2`, MAX.universalId),
    authorityType: within(component(rep, 4, 3).trim(), `${location}.4.3`, MAX.idType),
  };
  if (id.value === '' && id.type === '' && id.namespace === '' && id.authority === '') return undefined;
  if (id.value === '')
    throw refuse(
      'PAM_BAD_IDENTIFIER',
      `${location} has an assigning authority but no identifier value`,
      'put the identifier in the first component of the CX',
      location,
      '101',
    );
  if (id.namespace === '' && id.authority === '') {
    throw refuse(
      'PAM_BAD_IDENTIFIER',
      `${location} (type ${id.type || 'none'}) has no assigning authority: we cannot tell which establishment issued it`,
      'send the authority as NAMESPACE&FINESS&M in CX-4',
      `${location}.4`,
      '101',
    );
  }
  if (id.type === 'PI' && !/^\d{9}$/.test(id.authority)) {
    throw refuse(
      'PAM_IPP_WITHOUT_FINESS',
      `IPP ${id.value} (namespace ${id.namespace || 'empty'}) carries no FINESS in ${location}.4.2: the DCC cannot tell which establishment it belongs to`,
      "send the establishment's 9-digit FINESS as NAMESPACE&FINESS&M in CX-4",
      `${location}.4.2`,
      '101',
    );
  }
  return id;
}

/**
 * Field lengths: HL7 v2.5 (chapter 2A) for identifiers, the INS referential for names (birth name,
 * first given name, the list of given names: 100 characters each, what PAM FR senders fill from
 * INSi). Refused beyond, naming the field: a longer value is an error of the sender, and an
 * oversized one must never reach the identity comparisons.
 */
const MAX = {
  /** CX-1 is ST(15) in HL7 v2.5; some establishments pad their IPPs, hence a little more. */
  idNumber: 20,
  /** CX-5 and HD-3: ID(5) and ID(6). */
  idType: 6,
  /** HD-1: IS(20). */
  namespace: 20,
  /** HD-2: ST(199), an OID or a FINESS. */
  universalId: 199,
  name: 100,
} as const;

function within(value: string, location: string, max: number): string {
  if (value.length > max)
    throw refuse(
      'PAM_FIELD_TOO_LONG',
      `${location} is ${value.length} characters; PAM FR allows at most ${max}`,
      `correct ${location} in the sending system: at most ${max} characters`,
      location,
      '102',
    );
  return value;
}

function readIns(id: Identifier, location: string, options: PamOptions): Ins {
  const kind = INS_OIDS.get(id.authority);
  if (kind === undefined) {
    throw refuse(
      'PAM_BAD_INS',
      `${location} is typed INS but its OID "${id.authority}" is not an INS OID`,
      'use 1.2.250.1.213.1.4.8 (INS-NIR) or 1.2.250.1.213.1.4.9 (INS-NIA) in CX-4.2',
      `${location}.4.2`,
      '103',
    );
  }
  if ((kind === 'INS-NIR-TEST' || kind === 'INS-NIR-DEMO') && options.acceptTestIns !== true) {
    throw refuse(
      'PAM_TEST_INS',
      `${location} carries a ${kind} (OID ${id.authority}), refused on this channel`,
      'send the production INS-NIR/INS-NIA; on a test appliance only, set ONCO_ACCEPT_TEST_INS=true',
      `${location}.4.2`,
      '103',
    );
  }
  if (!validMatricule(id.value)) {
    throw refuse(
      'PAM_BAD_INS',
      `${location}: the INS matricule is not 15 characters with a valid control key`,
      'send the matricule exactly as returned by the INSi teleservice',
      `${location}.1`,
      '102',
    );
  }
  return { matricule: id.value, oid: id.authority, kind };
}

// NIR/NIA: 13 characters then a key = 97 - (number mod 97); Corsica's 2A/2B count as 19/18.
export function validMatricule(value: string): boolean {
  if (!/^[0-9]{5}(?:[0-9]{2}|2[AB])[0-9]{8}$/.test(value)) return false;
  const digits = value.slice(0, 13).replace('2A', '19').replace('2B', '18');
  return 97 - (Number(digits) % 97) === Number(value.slice(13));
}

function readDate(raw: string, location: string): string | undefined {
  if (raw === '') return undefined;
  const m =
    /^(\d{4})(?:(\d{2})(?:(\d{2})(?:\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,4})?)?)?)?)?)?(?:[+-]\d{4})?$/.exec(raw);
  const bad = (): PamError =>
    refuse(
      'PAM_BAD_DATE',
      `${location} "${raw}" is not a valid date`,
      `send ${location} as YYYYMMDD (YYYY or YYYYMM when only that is known)`,
      location,
      '102',
    );
  if (m === null) throw bad();
  const [, year, month, day] = m as unknown as [string, string, string | undefined, string | undefined];
  if (month === undefined) return year;
  if (Number(month) < 1 || Number(month) > 12) throw bad();
  if (day === undefined) return `${year}-${month}`;
  const lastDay = new Date(Date.UTC(Number(year), Number(month), 0)).getUTCDate();
  if (Number(day) < 1 || Number(day) > lastDay) throw bad();
  return `${year}-${month}-${day}`;
}

// HL7 table 0136: Y or N.
function readDeathIndicator(raw: string, location: string): boolean | undefined {
  switch (raw.trim().toUpperCase()) {
    case '':
      return undefined;
    case 'Y':
      return true;
    case 'N':
      return false;
    default:
      throw refuse(
        'PAM_BAD_DEATH',
        `${location} "${raw}" is not a death indicator`,
        'send Y (deceased) or N in PID-30, the date of death in PID-29',
        location,
        '103',
      );
  }
}

function readSex(raw: string, location: string): 'M' | 'F' | 'I' | undefined {
  switch (raw.toUpperCase()) {
    case '':
      return undefined;
    case 'M':
    case 'F':
      return raw.toUpperCase() as 'M' | 'F';
    case 'U':
    case 'I':
    case 'O':
    case 'A':
    case 'N':
      return 'I';
    default:
      throw refuse(
        'PAM_BAD_SEX',
        `${location} "${raw}" is not an administrative sex code`,
        'send M, F or U (unknown) in PID-8',
        location,
        '103',
      );
  }
}

function readBirthPlace(addresses: Hl7Repetition[], location: string): string | undefined {
  const code = component(
    addresses.find((a) => component(a, 7) === 'BDL'),
    9,
  ).trim();
  if (code === '') return undefined;
  if (!/^(?:[0-9]{5}|2[AB][0-9]{3})$/.test(code)) {
    throw refuse(
      'PAM_BAD_BIRTH_PLACE',
      `${location} (type BDL): "${code}" is not an INSEE place code`,
      'send the 5-character INSEE code of the birth commune (99xxx for a country) in XAD-9',
      `${location}.9`,
      '102',
    );
  }
  return code;
}

const STATUS_RANK: Record<IdentityStatus, number> = { PROV: 0, RECUP: 1, VALI: 1, QUAL: 2 };
const RELIABILITY_CODES = new Set([
  'VIDE',
  'PROV',
  'RECUP',
  'VALI',
  'QUAL',
  'DOUT',
  'DOUTE',
  'FICT',
  'FICTI',
]);

// PAM FR 2.11 carries either the reliability codes (VIDE/PROV/VALI/DOUT/FICT, also spelt DOUTE
// and FICTI) or the identity status (RECUP/QUAL): we accept both. When several statuses are sent we keep the lowest, so that
// a contradictory message can never raise an identity above what the sender is sure of.
function readReliability(message: Hl7Message, pid: Hl7Segment, location: string): Reliability {
  const codes = repetitions(message, pid, 32)
    .map((r) => component(r, 1).trim().toUpperCase())
    .filter((c) => c !== '');
  const unknown = codes.find((c) => !RELIABILITY_CODES.has(c));
  if (unknown !== undefined) {
    throw refuse(
      'PAM_BAD_RELIABILITY',
      `${location} "${unknown}" is not an identity reliability code`,
      'send one of VIDE, PROV, RECUP, VALI, QUAL, DOUT, FICT in PID-32',
      location,
      '103',
    );
  }
  const statuses = codes.filter((c): c is IdentityStatus => c in STATUS_RANK);
  const status =
    statuses.reduce<IdentityStatus | undefined>(
      (low, s) => (low === undefined || STATUS_RANK[s] < STATUS_RANK[low] ? s : low),
      undefined,
    ) ?? 'PROV';
  return {
    status,
    codes,
    doubtful: codes.some((c) => c.startsWith('DOUT')),
    fictitious: codes.some((c) => c.startsWith('FICT')),
  };
}

const COLLECTION_MODES = new Set<string>(['SM', 'CV', 'INSI', 'CB', 'RFID', 'AV']);

function readCollectionMode(message: Hl7Message): CollectionMode | undefined {
  const mode = get(message, 'ZFD-5').trim().toUpperCase();
  if (mode === '') return undefined;
  if (!COLLECTION_MODES.has(mode)) {
    throw refuse(
      'PAM_BAD_COLLECTION_MODE',
      `ZFD-5 "${mode}" is not an identity collection mode`,
      'send SM, CV, INSI, CB, RFID or AV in ZFD-5',
      'ZFD-5',
      '103',
    );
  }
  return mode as CollectionMode;
}

// ---------------------------------------------------------------------------------------------
// Step: pam-fr

const stepSchema = Type.Object({
  acceptTestIns: Default(
    Type.Boolean({
      description: 'accept the INS test and demo OIDs (test channels only: ONCO_ACCEPT_TEST_INS)',
    }),
    false,
  ),
  defaultCharset: defaultCharsetOption,
});

export type PamStepOptions = OptionsOf<typeof stepSchema>;

export const pamFrStep: StepSpec<Static<typeof stepSchema>> = {
  kind: 'step',
  type: 'pam-fr',
  summary:
    'Maps an IHE PAM FR ADT message (HL7 v2) to identity events (upsert, merge, identifier change, link, unlink) as JSON.',
  schema: stepSchema,
  create(given): Step {
    const options = readOptions(stepSchema, given);
    const parseOptions = { defaultCharset: options.defaultCharset };
    // A file may hold several messages (or an FHS/BHS batch): all are mapped, in order, or none is —
    // the sender gets one ACK for the file, so the file is accepted or refused whole.
    return (input) => {
      const messages = splitForStep(input.content);
      const events: IdentityEvent[] = [];
      messages.forEach((content, i) => {
        const at = messages.length > 1 ? `message ${i + 1} of ${messages.length}: ` : '';
        try {
          events.push(...mapPamFr(parseForStep({ ...input, content }, parseOptions), options));
        } catch (error) {
          if ((error instanceof StepError && at) || error instanceof PamError)
            throw StepError.from(error, at);
          throw error;
        }
      });
      return {
        content: Buffer.from(JSON.stringify(events)),
        contentType: IDENTITY_CONTENT_TYPE,
        meta: {
          ...input.meta,
          pamEvent: [...new Set(events.map((e) => e.source.event))].join(','),
          identityEvents: events.length,
          hl7Messages: messages.length,
          ...identifiersMeta(events),
        },
      };
    };
  },
};

/**
 * The patients' identifiers and the control ids, for the message browser's index: `ipp` as
 * `FINESS/IPP` and `ins` as matricules, each a comma-separated list without repeats.
 */
function identifiersMeta(events: readonly IdentityEvent[]): Record<string, string> {
  const patients = events.flatMap(identitiesOf);
  const list = (values: string[]): string => [...new Set(values)].join(',');
  return {
    controlId: list(events.map((e) => e.source.controlId)),
    ipp: list(
      patients.flatMap((p) =>
        p.identifiers.filter((i) => i.type === 'PI').map((i) => `${i.authority}/${i.value}`),
      ),
    ),
    ins: list(patients.flatMap((p) => (p.ins ? [p.ins.matricule] : []))),
  };
}

function splitForStep(content: Buffer): Buffer[] {
  try {
    return splitBatch(content).messages;
  } catch (error) {
    if (!(error instanceof Hl7Error)) throw error;
    throw StepError.from(error);
  }
}
