// The outside JSON of RCP meetings, forms and PPS (CONTRACT.md: `POST /api/rcp/meetings`,
// `/api/rcp/forms`, `/api/pps`, `onco-relay import forms`) turned into what the store keeps: the
// CDA model's shapes. Professionals named by RPPS and sites by FINESS are completed from the
// directory; a field given in the model's own shape (a coded diagnosis, a professional with
// speciality and address) is kept as given, so a richer producer loses nothing.
import type { DirectoryConfig } from '../config/config.ts';
import { OncoError } from '../config/errors.ts';
import type { Actor, DocumentInput, MeetingData, PersonData } from '../store/rcp.ts';
import type { Store } from '../store/store.ts';

type Json = Record<string, unknown>;

const ICD10 = '2.16.840.1.113883.6.3';
const ICDO3 = '2.16.840.1.113883.6.43.1';
const TNM = '2.16.840.1.113883.15.6';
/** The FINESS nomenclature of establishment categories (`SA01` …), the meeting site's facility type. */
const FACILITY_TYPES = '1.2.250.1.71.4.2.4';

/** The site of a meeting or a programme: an establishment of the directory with its facility type. */
function siteOf(e: DirectoryConfig['establishments'][number]): Json {
  const facilityType = isObjectLike(e.facilityType)
    ? e.facilityType
    : { code: 'SA01', displayName: 'Etablissement public de santé', codeSystem: FACILITY_TYPES };
  return { finess: e.finess, name: e.name, facilityType };
}

const isObjectLike = (v: unknown): boolean => typeof v === 'object' && v !== null;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const invalid = (what: string, missing: string): OncoError =>
  new OncoError('RCP_INVALID', { params: { what, missing } });

/** A professional from the directory by RPPS; one the directory does not know keeps the name given. */
export function person(directory: DirectoryConfig, rpps: unknown, name?: unknown): PersonData {
  if (typeof rpps !== 'string' || rpps === '') {
    if (typeof name === 'string' && name) return { family: name };
    throw invalid('professional', 'rpps or name');
  }
  const known = directory.professionals.find((p) => p.rpps === rpps);
  if (known)
    return {
      rpps,
      family: known.family,
      given: known.given,
      ...(known.mssante ? { telecom: [{ value: `mailto:${known.mssante}`, use: 'WP' }] } : {}),
    };
  return { rpps, family: typeof name === 'string' && name ? name : rpps };
}

const coded = (code: unknown, codeSystem: string): unknown =>
  typeof code === 'string' ? { code, codeSystem, displayName: code } : code;

/** `T1cN0M0` (or an object of t, n, m) as the model's TNM: coded UICC categories. */
function tnm(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  const m = /^\s*(T\w+?)\s*(N\w+?)\s*(M\w+)\s*$/i.exec(value);
  if (!m) return { t: { text: value }, n: { text: value }, m: { text: value } };
  return { t: coded(m[1], TNM), n: coded(m[2], TNM), m: coded(m[3], TNM) };
}

/** `POST /api/rcp/meetings`: `{ date, committee, organ, site, organiserRpps, participants }`, or the model's shape. */
export function meetingInput(body: Json, directory: DirectoryConfig): MeetingData {
  const siteFiness = typeof body.site === 'string' ? body.site : undefined;
  const establishment = directory.establishments.find((e) => e.finess === siteFiness);
  if (siteFiness && !establishment) throw invalid('meeting', `site ${siteFiness} in the directory`);
  const committee =
    typeof body.committee === 'string' ? { id: body.committee, name: body.committee } : body.committee;
  const participants = Array.isArray(body.participants)
    ? body.participants.map((p: Json) =>
        p.family ? p : { ...person(directory, p.rpps, p.name), quorum: p.quorum !== false },
      )
    : [];
  const organiser = isObject(body.organiser) ? body.organiser : person(directory, body.organiserRpps);
  return {
    ...body,
    date: String(body.date ?? ''),
    committee,
    ...(typeof body.organ === 'string' ? { organ: { text: body.organ } } : {}),
    site: establishment ? siteOf(establishment) : (body.site as MeetingData['site']),
    organiser,
    participants: participants.length ? participants : [{ ...organiser, quorum: true }],
  } as MeetingData;
}

/**
 * `POST /api/rcp/forms`: `{ patientId, meetingId, question, summary, diagnosis: { icd10,
 * icdo3Topography, icdo3Morphology, tnm }, proposal, participants, referringRpps }`, or the model's shape.
 */
export function formInput(body: Json, directory: DirectoryConfig): DocumentInput {
  const {
    patientId,
    meetingId,
    externalId,
    summary,
    referringRpps,
    gpRpps,
    diagnosis,
    proposal,
    participants,
    ...rest
  } = body;
  const d = isObject(diagnosis) ? diagnosis : undefined;
  const content: Json = {
    ...rest,
    ...(summary !== undefined ? { clinicalSummary: summary } : {}),
    ...(d
      ? {
          diagnosis: {
            date: d.date ?? '',
            topography: d.topography ?? coded(d.icd10, ICD10) ?? { text: 'non précisé' },
            morphology: d.morphology ?? coded(d.icdo3Morphology, ICDO3) ?? { text: 'non précisé' },
            ...(d.laterality ? { laterality: d.laterality } : {}),
            tnm: tnm(d.tnm ?? 'TxNxMx'),
            ...(d.icdo3Topography ? { comment: `Topographie CIM-O-3 : ${String(d.icdo3Topography)}` } : {}),
            ...(d.comment ? { comment: d.comment } : {}),
          },
        }
      : {}),
    ...(proposal !== undefined
      ? {
          proposal:
            typeof proposal === 'string'
              ? { text: proposal, treatments: [], clinicalTrial: false }
              : proposal,
        }
      : {}),
    ...(Array.isArray(participants)
      ? {
          participants: participants.map((p: Json) =>
            p.family ? p : { ...person(directory, p.rpps, p.name), quorum: p.quorum !== false },
          ),
        }
      : {}),
    ...(referringRpps !== undefined ? { referringPhysician: person(directory, referringRpps) } : {}),
    ...(gpRpps !== undefined ? { generalPractitioner: person(directory, gpRpps) } : {}),
  };
  return {
    patientId: Number(patientId),
    meetingId: meetingId === undefined || meetingId === null ? null : Number(meetingId),
    content,
    externalId: typeof externalId === 'string' ? externalId : null,
  };
}

/** `POST /api/pps`: the model's PPS content; `referentRpps` and `site` (FINESS) completed from the directory. */
export function ppsInput(body: Json, directory: DirectoryConfig): DocumentInput {
  const { patientId, meetingId, externalId, referentRpps, site, ...rest } = body;
  const establishment =
    typeof site === 'string' ? directory.establishments.find((e) => e.finess === site) : undefined;
  if (typeof site === 'string' && !establishment) throw invalid('pps', `site ${site} in the directory`);
  return {
    patientId: Number(patientId),
    meetingId: meetingId === undefined || meetingId === null ? null : Number(meetingId),
    content: {
      ...rest,
      ...(referentRpps !== undefined ? { referent: person(directory, referentRpps) } : {}),
      ...(establishment ? { site: siteOf(establishment) } : site !== undefined ? { site } : {}),
    },
    externalId: typeof externalId === 'string' ? externalId : null,
  };
}

export interface ImportResult {
  index: number;
  id?: number;
  status?: string;
  error?: { code: string; message: string };
}

/**
 * Imports forms produced elsewhere (`onco-relay import forms FILE`, `POST /api/rcp/forms/import`):
 * each item as `POST /api/rcp/forms` with its `externalId`, the patient by `patientId` or by
 * `patient: { finess, ipp }`, the session by `meetingId` or given whole as `meeting` (created once
 * per import however many forms name it). Each form is validated (so sent) unless `validate: false`;
 * a refused item is reported with its index and does not stop the others.
 */
export async function importForms(
  store: Store,
  items: readonly Json[],
  directory: DirectoryConfig,
  actor: Actor,
): Promise<ImportResult[]> {
  const meetings = new Map<string, number>();
  const results: ImportResult[] = [];
  const inputs: Array<DocumentInput & { validate: boolean; index: number }> = [];
  for (const [index, item] of items.entries()) {
    try {
      let { patientId, meetingId } = item;
      if (patientId === undefined && isObject(item.patient)) {
        const { finess, ipp } = item.patient;
        patientId = store.patients.resolveIdentifier({ finess: String(finess), ipp: String(ipp) });
        if (patientId === null)
          throw new OncoError('RCP_UNKNOWN', {
            params: { what: 'patient with IPP', id: `${String(finess)}/${String(ipp)}` },
          });
      }
      if (meetingId === undefined && isObject(item.meeting)) {
        const key = JSON.stringify(item.meeting);
        meetingId = meetings.get(key);
        if (meetingId === undefined) {
          meetingId = (
            await store.write.rcp.createMeeting(meetingInput(item.meeting, directory), actor, Date.now())
          ).id;
          meetings.set(key, meetingId as number);
        }
      }
      const { patient: _p, meeting: _m, validate, ...form } = item;
      inputs.push({
        ...formInput({ ...form, patientId, meetingId }, directory),
        validate: validate !== false,
        index,
      });
    } catch (error) {
      if (!(error instanceof OncoError)) throw error;
      results.push({ index, error: { code: error.code, message: error.message } });
    }
  }
  const stored = await store.write.rcp.importForms(inputs, actor, Date.now());
  for (const [i, r] of stored.entries()) results.push({ ...r, index: inputs[i]!.index });
  return results.sort((a, b) => a.index - b.index);
}
