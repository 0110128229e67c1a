// The store's identity model: what a source may send about a patient (`IdentityInput`, defined
// here once; each feed's writer maps its own format to it), what the store keeps (`Identity`,
// `PatientRecord`), the decisions it journals, and the validation between input and record.
import { OncoError } from '../config/errors.ts';
import { foldName, MAX_COMPARED_CHARS, normaliseBirthDate, type Sex } from './identity-match.ts';

/** Identity status (national identity-vigilance reference) plus the PAM FR reliability codes worth keeping. */
export type Reliability = 'PROV' | 'RECUP' | 'VALI' | 'QUAL' | 'DOUT' | 'FICT';

export interface IdentifierRef {
  finess: string;
  ipp: string;
  /** Assigning-authority namespace as the establishment writes it (PID-3.4.1); informative. */
  namespace?: string | null;
}

export interface InsInput {
  matricule: string;
  oid: string;
  /** Identity status the INS was sent with; when absent the identity's reliability applies. */
  status?: string | null;
}

/** An identity as a source sent it; the engine maps its transformer's output to this. */
export interface IdentityInput {
  birthName: string;
  /** All birth given names, in order. */
  givenNames?: string[] | null;
  firstGivenName: string;
  /** `YYYY-MM-DD` or `YYYYMMDD` (an HL7 TS with a time is accepted), or partial `YYYY`/`YYYYMM`. */
  birthDate: string;
  /** `M`, `F`, `U`; `I` (PAM FR undetermined) and anything else unknown read as `U`. */
  sex: string;
  /** INSEE code of the birth place. */
  birthPlace?: string | null;
  usedName?: string | null;
  usedGivenName?: string | null;
  ins?: InsInput | null;
  /** PROV, RECUP, VALI, QUAL, DOUT, FICT; anything else reads as PROV. */
  reliability?: string | null;
  identifiers: IdentifierRef[];
  /** SM, CV, INSI, CB, RFID, AV. */
  collectionMode?: string | null;
  /** Date of death as `birthDate` is written, and the death indicator (PID-29, PID-30). */
  deathDate?: string | null;
  deceased?: boolean | null;
}

/** An identity after validation: what the store writes. */
export interface Identity {
  birthName: string;
  givenNames: string;
  firstGivenName: string;
  birthDate: string;
  sex: Sex;
  birthPlace: string | null;
  usedName: string | null;
  usedGivenName: string | null;
  ins: { matricule: string; oid: string; status: Reliability } | null;
  reliability: Reliability;
  collectionMode: string | null;
  /** Absent or null: the sources said nothing (records written before PID-29/30 were mapped). */
  deathDate?: string | null;
  deceased?: boolean | null;
}

export interface PatientRecord extends Identity {
  id: number;
  mergedInto: number | null;
  createdAt: string;
  updatedAt: string;
  sourceMessageId: number | null;
}

export interface IdentifierRecord {
  id: number;
  finess: string;
  ipp: string;
  namespace: string | null;
  /** The patient this identifier was attached to; differs from the looked-up patient after a merge. */
  patientId: number;
  status: 'active' | 'merged';
  mergedIntoIpp: string | null;
  /** The last identity this establishment sent for this IPP. */
  identity: Identity;
  updatedAt: string;
}

export type DecisionAction =
  | 'created'
  | 'created-with-review'
  | 'linked'
  | 'updated'
  | 'merged'
  | 'unmerged'
  | 'identifier-merged'
  | 'identifier-changed'
  | 'identifier-detached'
  | 'patients-linked'
  | 'patients-unlinked'
  | 'review-rejected'
  | 'unchanged';

export interface Decision {
  decisionId: number;
  patientId: number;
  action: DecisionAction;
  /** The rule that made the decision, e.g. `ipp-known`, `ins-qualified`, `strict-traits`, `manual`. */
  rule: string;
}

/** Who acts: the message that carried the event, or the person in the dashboard (`author`). */
export interface ActionContext {
  messageId?: number | null;
  author?: string | null;
}

export interface DecisionRecord {
  id: number;
  at: string;
  patientId: number | null;
  otherPatientId: number | null;
  action: DecisionAction;
  rule: string;
  messageId: number | null;
  author: string | null;
  input: unknown;
  detail: unknown;
}

export interface PatientSummary {
  id: number;
  birthName: string;
  firstGivenName: string;
  usedName: string | null;
  birthDate: string;
  sex: Sex;
  reliability: Reliability;
  ins: Identity['ins'];
}

export interface Page<T> {
  items: T[];
  /** Opaque cursor for the next page, null on the last one. */
  next: string | null;
}

export interface PatientView {
  patient: PatientRecord;
  /** The id asked for, when it was merged into `patient`. */
  requestedId: number;
  /** Patients merged into this one (transitively): their documents belong to it. */
  family: number[];
  identifiers: IdentifierRecord[];
  links: Array<{ patientId: number; decisionId: number }>;
  merges: Array<{
    mergeId: number;
    survivorId: number;
    mergedId: number;
    decisionId: number;
    undone: boolean;
  }>;
  history: DecisionRecord[];
}

export class PatientStoreError extends OncoError {
  declare readonly hint: string;
  constructor(code: string, message: string, hint: string, options: { cause?: unknown } = {}) {
    super(code, { message, hint, cause: options.cause });
  }
}

const RANK: Record<Reliability, number> = { FICT: 0, DOUT: 0, PROV: 1, RECUP: 2, VALI: 2, QUAL: 3 };

/** Higher means more trustworthy traits; RECUP and VALI are each half of a qualification, so they rank equal. */
export function reliabilityRank(r: Reliability): number {
  return RANK[r];
}

/**
 * The store's own codes only: a feed's spellings (PAM FR's VIDE, DOUTE, FICTI) are its writer's to
 * map. Unknown or absent codes read as PROV: the lowest status that still allows matching.
 */
export function parseReliability(code: string | null | undefined): Reliability {
  const c = (code ?? '').trim().toUpperCase();
  return Object.hasOwn(RANK, c) ? (c as Reliability) : 'PROV';
}

function invalid(field: string, what: string): PatientStoreError {
  return new PatientStoreError(
    'IDENTITY_INVALID',
    `identity field ${field} ${what}`,
    `correct ${field} in the sending system and send the identity again`,
  );
}

function tidy(s: string | null | undefined): string | null {
  const t = (s ?? '').trim().replace(/\s+/g, ' ');
  return t === '' ? null : t;
}

/** An IPP longer than this is not an identifier an establishment prints on a wristband. */
const MAX_IPP_CHARS = 64;

/**
 * The store's own line against oversized input, whatever its feed: the transformers refuse at the
 * lengths of their standard first, this only guarantees that no stored trait outgrows what a
 * comparison looks at (`MAX_COMPARED_CHARS`).
 */
function checkLengths(input: IdentityInput): void {
  const names: Array<[string, string | null | undefined]> = [
    ['birthName', input.birthName],
    ['firstGivenName', input.firstGivenName],
    ['givenNames', (input.givenNames ?? []).join(' ')],
    ['usedName', input.usedName],
    ['usedGivenName', input.usedGivenName],
  ];
  for (const [field, value] of names) {
    if ((value?.length ?? 0) > MAX_COMPARED_CHARS)
      throw invalid(field, `is ${value!.length} characters; at most ${MAX_COMPARED_CHARS} are allowed`);
  }
  for (const ref of input.identifiers) {
    if (ref.ipp.length > MAX_IPP_CHARS)
      throw invalid(
        'identifiers.ipp',
        `is ${ref.ipp.length} characters; at most ${MAX_IPP_CHARS} are allowed`,
      );
  }
}

/** Validates and normalises an input; throws `IDENTITY_INVALID` naming the field. */
export function parseIdentity(input: IdentityInput): Identity {
  checkLengths(input);
  const birthName = tidy(input.birthName);
  if (birthName === null || foldName(birthName) === '') throw invalid('birthName', 'is empty');
  const firstGivenName = tidy(input.firstGivenName) ?? tidy(input.givenNames?.[0]);
  if (firstGivenName === null) throw invalid('firstGivenName', 'is empty');
  const birthDate = normaliseBirthDate(input.birthDate ?? '');
  if (birthDate === null) throw invalid('birthDate', `is not a date (YYYY-MM-DD or YYYYMMDD)`);
  const sex = (['M', 'F'] as const).find((s) => s === (input.sex ?? '').trim().toUpperCase()) ?? 'U';
  const reliability = parseReliability(input.reliability ?? input.ins?.status);
  const matricule = tidy(input.ins?.matricule)?.replace(/ /g, '') ?? null;
  const oid = tidy(input.ins?.oid);
  // Born in Corsica: the department of a NIR is 2A or 2B.
  if (matricule !== null && !/^\d{5}(?:\d{2}|2[AB])\d{6}(?:\d{2})?$/.test(matricule))
    throw invalid('ins.matricule', 'is not 13 or 15 characters (digits, 2A or 2B for Corsica)');
  if (matricule !== null && oid === null) throw invalid('ins.oid', 'is missing for the INS matricule');
  const deathDate = tidy(input.deathDate) === null ? null : normaliseBirthDate(input.deathDate!);
  if (deathDate === null && tidy(input.deathDate) !== null)
    throw invalid('deathDate', 'is not a date (YYYY-MM-DD or YYYYMMDD)');
  return {
    birthName,
    givenNames:
      (input.givenNames ?? [])
        .map((g) => tidy(g))
        .filter((g) => g !== null)
        .join(' ') || firstGivenName,
    firstGivenName,
    birthDate,
    sex,
    birthPlace: tidy(input.birthPlace),
    usedName: tidy(input.usedName),
    usedGivenName: tidy(input.usedGivenName),
    ins:
      matricule !== null && oid !== null
        ? { matricule, oid, status: input.ins?.status ? parseReliability(input.ins.status) : reliability }
        : null,
    reliability,
    collectionMode: tidy(input.collectionMode),
    deathDate,
    deceased: input.deceased ?? (deathDate === null ? null : true),
  };
}
