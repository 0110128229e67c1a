// Step `rcp-cda`: a validated RCP form or PPS as the core store wrote it to the outbox
// (`application/vnd.onco-relay.rcp-document+json`, store/rcp.ts `ValidatedDocument`) becomes its CDA
// R2 document (cda-frcp.ts, cda-pps.ts). The header the store does not know is made here: document
// ids under the configured root, times from the validation, author and legal authenticator (the
// meeting's organiser, the programme's referent), custodian. The recipients the routing needs are
// set in meta: establishments (FINESS) and professionals (RPPS with their role), never the patient's
// traits; the INS only as the Mon espace santé mailbox, and only when the store allowed it.
//
// SEAM (issue 11 items 4-5): the packaging steps (PDF, XDM, MDM) follow this one in the per-transport
// channels once they are on main; until then the channels carry the CDA alone.
import Type from 'typebox';
import type { PatientSnapshot } from '../contracts/patient-snapshot.ts';
import { Default, StepError, type OptionsOf, type Step, type StepSpec } from './contract.ts';
import type { CodedOrText, Patient, PpsDocument, Professional, RcpForm, RcpMeeting } from './rcp-model.ts';
import { writeFrcp } from './cda-frcp.ts';
import { writePps } from './cda-pps.ts';

export const RCP_DOCUMENT_TYPE = 'application/vnd.onco-relay.rcp-document+json';
export const CDA_TYPE = 'application/hl7-cda+xml';

export const rcpCdaSchema = Type.Object({
  documentRoot: Default(
    Type.String({
      pattern: '^[0-2](\\.(0|[1-9][0-9]*))+$',
      description: 'OID under which document ids and set ids are written (`ROOT.8` FRCP, `ROOT.26` PPS).',
    }),
    '1.2.250.1.999.1',
  ),
  ippRoot: Default(
    Type.String({
      description: 'OID of an establishment’s IPPs: `{finess}` is replaced by its FINESS.',
    }),
    '1.2.250.1.71.4.2.2.{finess}',
  ),
  network: Default(
    Type.Object(
      {
        id: Type.String({ description: 'National id of the network.' }),
        acronym: Type.String({ description: 'Its acronym, in the document title.' }),
      },
      { description: 'The regional cancer network (RRC) holding the RCPs, when a meeting names none.' },
    ),
    { id: '0000', acronym: 'DCC' },
  ),
  custodian: Default(
    Type.Union([Type.Object({ finess: Type.Optional(Type.String()), name: Type.String() }), Type.Null()], {
      description: 'Organisation keeping the documents; null: the meeting’s (or programme’s) site.',
    }),
    null,
  ),
});

export type RcpCdaOptions = OptionsOf<typeof rcpCdaSchema>;

/** What this step reads of the store's outbox document. */
interface OutboxDocument {
  kind: 'frcp' | 'pps';
  documentId: number;
  setId: string;
  version: number;
  replaces: { documentId: number; version: number } | null;
  validatedAt: string;
  patient: PatientSnapshot;
  meeting: (Partial<RcpMeeting> & { id: number; date: string; site: RcpMeeting['site'] }) | null;
  content: Record<string, unknown>;
  mesAllowed: boolean;
}

/** A recipient the routing may send to: an establishment by FINESS or a professional by RPPS. */
export interface DocumentRecipient {
  role: 'establishment' | 'referring' | 'gp' | 'participant' | 'referent' | 'contact';
  finess?: string;
  rpps?: string;
}

const invalid = (reason: string): StepError =>
  new StepError('RCP_CONTENT_INVALID', `the validated document cannot be written as CDA: ${reason}`, {
    hint: 'correct the document (a new version) and validate it again',
    protocol: { retryable: false },
  });

/** HL7 TS (UTC) of an ISO instant. */
const ts = (isoTime: string): string => `${isoTime.replace(/[-:T]/g, '').slice(0, 14)}+0000`;
const day = (d: string): string => d.replace(/-/g, '');

function patientOf(p: OutboxDocument['patient'], siteFiness: string | undefined, ippRoot: string): Patient {
  const ipp = p.identifiers.find((i) => i.finess === siteFiness) ?? p.identifiers[0];
  if (!ipp) throw invalid('the patient has no IPP in any establishment');
  return {
    ...(p.ins ? { ins: p.ins } : {}),
    ipp: { value: ipp.ipp, oid: ippRoot.replace('{finess}', ipp.finess) },
    birthName: p.birthName,
    birthGivenNames: p.givenNames || p.firstGivenName,
    firstGivenName: p.firstGivenName,
    ...(p.usedName ? { usedName: p.usedName } : {}),
    ...(p.usedGivenName ? { usedGivenName: p.usedGivenName } : {}),
    sex: p.sex === 'M' || p.sex === 'F' ? p.sex : 'U',
    birthDate: day(p.birthDate),
    ...(p.birthPlace ? { birthPlaceCode: p.birthPlace } : {}),
  };
}

/** The meeting as the FRCP writer needs it; what an API-made meeting left out takes the network's. */
function meetingOf(m: NonNullable<OutboxDocument['meeting']>, o: RcpCdaOptions): RcpMeeting {
  const organ = m.organ as CodedOrText | undefined;
  return {
    ...(m as RcpMeeting),
    date: /^\d{8}$/.test(day(m.date)) ? day(m.date) : m.date,
    network: m.network ?? o.network,
    organiserId: m.organiserId ?? o.network,
    nature: m.nature ?? 'organ',
    apparatus: m.apparatus ?? organ ?? { text: m.committee?.name ?? 'RCP' },
  };
}

function write(doc: OutboxDocument, o: RcpCdaOptions): { cda: string; recipients: DocumentRecipient[] } {
  const root = `${o.documentRoot}.${doc.kind === 'frcp' ? 8 : 26}`;
  const when = ts(doc.validatedAt);
  const ids = {
    id: { root, extension: `${doc.setId}-${doc.version}` },
    setId: { root, extension: doc.setId },
    version: doc.version,
    ...(doc.replaces ? { replaces: { root, extension: `${doc.setId}-${doc.replaces.version}` } } : {}),
    effectiveTime: when,
    confidentiality: 'N' as const,
    authorTime: when,
    legalAuthenticationTime: when,
    status: 'approved' as const,
    statusDate: when.slice(0, 8),
  };
  const c = doc.content;
  const establishments = new Set(doc.patient.identifiers.map((i) => i.finess));
  const recipients: DocumentRecipient[] = [];
  const person = (role: DocumentRecipient['role'], p: unknown): void => {
    const rpps = (p as Professional | undefined)?.rpps;
    if (rpps) recipients.push({ role, rpps });
  };
  let cda: string;
  if (doc.kind === 'frcp') {
    if (!doc.meeting) throw invalid('a form without its RCP meeting');
    const meeting = meetingOf(doc.meeting, o);
    if (meeting.site.finess) establishments.add(meeting.site.finess);
    const form = {
      caseStatus: 'discussed',
      quorum: 'unknown',
      fileComplete: true,
      ...c,
      ...ids,
      patient: patientOf(doc.patient, meeting.site.finess, o.ippRoot),
      meeting,
      author: meeting.organiser,
      legalAuthenticator: meeting.organiser,
      custodian: o.custodian ?? meeting.site,
    } as RcpForm;
    person('referring', form.referringPhysician);
    person('gp', form.generalPractitioner);
    for (const p of form.participants ?? meeting.participants) person('participant', p);
    cda = writeFrcp(form);
  } else {
    const site = c.site as PpsDocument['site'];
    if (site.finess) establishments.add(site.finess);
    const pps = {
      contacts: [],
      schedule: [],
      supportiveCare: [],
      ...c,
      ...ids,
      ...(doc.meeting ? { rcpDate: day(doc.meeting.date).slice(0, 8) } : {}),
      patient: patientOf(doc.patient, site.finess, o.ippRoot),
      author: c.referent,
      legalAuthenticator: c.referent,
      custodian: o.custodian ?? site,
    } as unknown as PpsDocument;
    person('referent', pps.referent);
    for (const contact of pps.contacts)
      person(contact.generalPractitioner ? 'gp' : 'contact', contact.person);
    cda = writePps(pps);
  }
  for (const finess of establishments) recipients.unshift({ role: 'establishment', finess });
  return { cda, recipients };
}

export const rcpCdaStep: StepSpec<RcpCdaOptions> = {
  kind: 'step',
  type: 'rcp-cda',
  offThread: import.meta.url,
  summary:
    'Writes a validated RCP form or PPS from the core store (documents-out) as its CI-SIS CDA R2 document; meta names its recipients for the routing.',
  schema: rcpCdaSchema,
  create(o: RcpCdaOptions): Step {
    return (input) => {
      if (input.contentType !== RCP_DOCUMENT_TYPE)
        throw invalid(`content type ${input.contentType}, expected ${RCP_DOCUMENT_TYPE}`);
      let doc: OutboxDocument;
      try {
        doc = JSON.parse(input.content.toString('utf8')) as OutboxDocument;
      } catch (error) {
        throw invalid(`not JSON (${(error as Error).message})`);
      }
      const { cda, recipients } = write(doc, o);
      return {
        content: Buffer.from(cda),
        contentType: CDA_TYPE,
        meta: {
          ...input.meta,
          documentKind: doc.kind,
          documentId: doc.documentId,
          setId: doc.setId,
          version: doc.version,
          fileName: `${doc.setId}-${doc.version}`,
          recipients: JSON.stringify(recipients),
          mesAllowed: doc.mesAllowed,
          // The patient's Mon espace santé mailbox, only when the store allowed it (STANDARDS.md).
          ...(doc.mesAllowed && doc.patient.ins
            ? { mesMailbox: `${doc.patient.ins.matricule}@patient.mssante.fr` }
            : {}),
        },
      };
    };
  },
};
