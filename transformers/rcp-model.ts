// The typed content of the cancer documents the DCC writes: an RCP meeting, a patient's RCP form
// (FRCP) and a personalised care programme (PPS). The CDA writers (cda-frcp.ts, cda-pps.ts) read
// only this; the store that will fill it (issue 11) is not here. Times are HL7 TS strings
// (`YYYYMMDD` or `YYYYMMDDHHMMSS+ZZZZ`), given by the caller: the writers have no clock.

/** A coded value: the code system is an OID (ICD-10 2.16.840.1.113883.6.3, SNOMED CT 2.16.840.1.113883.6.96, …). */
export interface Coded {
  code: string;
  codeSystem: string;
  displayName: string;
  codeSystemName?: string;
}

/** A value that is coded when the source coded it, and free text for humans otherwise. */
export type CodedOrText = Coded | { text: string };

/** An instance identifier: an OID (or UUID) root and an optional extension. */
export interface InstanceId {
  root: string;
  extension?: string;
}

export interface Address {
  houseNumber?: string;
  streetName?: string;
  postalCode?: string;
  city?: string;
  country?: string;
}

export interface Telecom {
  /** URL form: `tel:0241000000`, `mailto:dr.x@hopital.mssante.fr`. */
  value: string;
  use?: 'WP' | 'H' | 'MC' | 'PUB';
}

export interface Organization {
  /** FINESS (written under the FINESS OID 1.2.250.1.71.4.2.2). */
  finess?: string;
  name: string;
  addr?: Address;
  telecom?: Telecom[];
}

export interface Professional {
  /** RPPS number (written under 1.2.250.1.71.4.2.1); absent for a person known to neither RPPS nor ADELI. */
  rpps?: string;
  family: string;
  given?: string;
  prefix?: string;
  suffix?: string;
  /** Profession / speciality (code system 1.2.250.1.213.1.1.4.5, `G15_10/SM36` …). */
  specialty?: Coded;
  addr?: Address;
  telecom?: Telecom[];
  organization?: Organization;
}

export interface Patient {
  /** The INS, only when the identity is qualified (STANDARDS.md): matricule + OID (1.2.250.1.213.1.4.8 …). */
  ins?: { matricule: string; oid: string };
  /** The establishment's IPP, under the establishment's own OID. */
  ipp: { value: string; oid: string };
  birthName: string;
  /** All birth given names, space-separated, as on the birth certificate. */
  birthGivenNames: string;
  firstGivenName: string;
  usedName?: string;
  usedGivenName?: string;
  sex: 'M' | 'F' | 'U';
  /** `YYYYMMDD`. */
  birthDate: string;
  /** INSEE code of the birth place. */
  birthPlaceCode?: string;
  addr?: Address;
  telecom?: Telecom[];
}

/** What every CI-SIS document carries in its header besides the patient. */
export interface DocumentHeader {
  id: InstanceId;
  /** Common to every version of the document. */
  setId: InstanceId;
  /** 1 for the first version; a correction is the next number with `replaces` set. */
  version: number;
  /** The id of the version this one replaces (written as relatedDocument RPLC). */
  replaces?: InstanceId;
  effectiveTime: string;
  confidentiality?: 'N' | 'R' | 'V';
  author: Professional;
  authorTime: string;
  custodian: Organization;
  legalAuthenticator: Professional;
  legalAuthenticationTime: string;
}

export interface RcpMeeting {
  /** Start of the session. */
  date: string;
  /** National ids of the regional network (RRC), of the RCP organiser and of the RCP; local session id. */
  network: { id: string; acronym: string };
  organiserId: { id: string; acronym: string };
  committee: { id: string; name: string; sessionId?: string };
  /** `organ`: RCP by organ or apparatus (ORG-117); `transversal`: transversal or supportive care (ORG-132). */
  nature: 'organ' | 'transversal';
  /** The apparatus (JDV_RCP_Appareil, SNOMED CT) and the organ (JDV_RCP_Organe) discussed. */
  apparatus: CodedOrText;
  organ?: CodedOrText;
  /** The meeting's coordinator (participant RESP, serviceEvent performer). */
  organiser: Professional;
  /** The establishment where the RCP is held; facilityType from 1.2.250.1.71.4.2.4 (`SA01` …). */
  site: Organization & { facilityType: Coded };
  /** Professionals present, with their RPPS; `quorum` when they count towards it. */
  participants: Array<Professional & { quorum: boolean }>;
}

export interface Tnm {
  /** TNM UICC categories (code system 2.16.840.1.113883.15.6), or text when not coded. */
  t: CodedOrText;
  n: CodedOrText;
  m: CodedOrText;
  stage?: CodedOrText;
  /** UICC edition, e.g. `8`. */
  edition?: string;
}

export interface Diagnosis {
  /** Date of the initial diagnosis (at least month and year). */
  date: string;
  /** ICD-10 topography (JDV_Tumeur). */
  topography: CodedOrText;
  /** ICD-O-3 morphology (JDV_Morphologie). */
  morphology: CodedOrText;
  /** SNOMED CT laterality (24028007 right, 7771000 left). */
  laterality?: Coded;
  tnm: Tnm;
  comment?: string;
}

export interface Treatment {
  /** JDV_TypeTraitement (NCIT C15313 radiotherapy, C15632 chemotherapy, SNOMED 387713003 surgery…). */
  type: CodedOrText;
  /** What the humans read: drugs, doses, target. */
  detail?: string;
  start?: string;
  end?: string;
}

export interface RcpForm extends DocumentHeader {
  patient: Patient;
  meeting: RcpMeeting;
  /** The question put to the meeting. */
  question: string;
  clinicalSummary: string;
  /** The patient's state at the time of the meeting (progress note), when the form has one. */
  progressNote?: string;
  /** Whether the patient came from an organised screening programme. */
  fromScreening?: boolean;
  diagnosis: Diagnosis;
  proposal: {
    text: string;
    treatments: Treatment[];
    /** Proposal follows the clinical-practice guideline named here. */
    guideline?: string;
    clinicalTrial: boolean;
  };
  /** Professionals who took part in the discussion of this form (default: the meeting's). */
  participants?: Array<Professional & { quorum: boolean }>;
  referringPhysician: Professional;
  generalPractitioner?: Professional;
  caseStatus: 'registered' | 'discussed';
  quorum: 'reached' | 'not-reached' | 'unknown';
  fileComplete: boolean;
  /** Document status (JDV_StatutDoc): a validated form is `approved`. */
  status: DocumentStatus;
  statusDate: string;
}

export type DocumentStatus = 'in-progress' | 'completed' | 'approved' | 'closed';

export interface PpsTreatment extends Treatment {
  /** Already given (EVN) or planned (INT). */
  done: boolean;
  rhythm?: string;
}

export interface PpsAppointment {
  /** JDV_TypeDeSuivi (MED-091 biology, MED-092 imaging, SNOMED 11429006 consultation). */
  type: CodedOrText;
  date: string;
  detail?: string;
}

export interface PpsContact {
  /** What the patient calls them for, in words: "Infirmière de coordination". */
  role: string;
  person: Professional;
  /** The patient's general practitioner (written as the médecin traitant participant). */
  generalPractitioner?: boolean;
}

export interface PpsDocument extends DocumentHeader {
  patient: Patient;
  /** Date of the RCP whose proposal this programme carries out. */
  rcpDate?: string;
  treatments: PpsTreatment[];
  schedule: PpsAppointment[];
  contacts: PpsContact[];
  /** JDV_SoinsOncoDeSupport (ORG-035 pain, ORG-036 nutrition, …). */
  supportiveCare: Array<{ type: CodedOrText; detail?: string; start?: string }>;
  /** The establishment that runs the programme; facilityType from 1.2.250.1.71.4.2.4. */
  site: Organization & { facilityType: Coded };
  /** The care team's referent, e.g. the oncologist (serviceEvent performer). */
  referent: Professional;
  status: DocumentStatus;
  statusDate: string;
}
