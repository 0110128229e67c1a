// The parameters of a verified contextual call (ACTX, see the contract) read into what the store
// decides on: the professional, the clock and nonce, and the patient as the identity rules take it
// (the IPP under the caller's FINESS; an INS, which the contract sends only for a qualified
// identity, checked like the identity feeds check it). Every refusal names its parameter (400).
import { OncoError } from '../config/errors.ts';
import { acceptedInsOids } from '../connectors/identity-writer.ts';
import type { IdentityInput } from '../store/patients.ts';
import { validMatricule } from '../transformers/pam-fr.ts';

export interface ActxCall {
  ts: number;
  nonce: string;
  professional: { rpps: string; family: string; given: string };
  identity: IdentityInput | null;
  insOids: string[];
}

const missing = (name: string) => new OncoError('ACTX_PARAM_MISSING', { params: { name } });
const invalid = (name: string, reason: string) =>
  new OncoError('ACTX_PARAM_INVALID', { params: { name, reason } });

/** Names and identifiers as a record system prints them: no control characters, a sane length. */
const NAME_CHARS = 100;

function text(params: Record<string, string>, name: string, max = NAME_CHARS): string {
  const value = params[name]?.trim();
  if (value === undefined || value === '') throw missing(name);
  if (value.length > max) throw invalid(name, `longer than ${max} characters`);
  if ([...value].some((c) => c < ' ' || c === '\u007f')) throw invalid(name, 'contains control characters');
  return value;
}

function match(params: Record<string, string>, name: string, pattern: RegExp, what: string): string {
  const value = text(params, name);
  if (!pattern.test(value)) throw invalid(name, what);
  return value;
}

function birthDate(params: Record<string, string>): string {
  const ddn = match(params, 'ddn', /^\d{8}$/, 'not a date YYYYMMDD');
  const [y, m, d] = [ddn.slice(0, 4), ddn.slice(4, 6), ddn.slice(6)].map(Number) as [number, number, number];
  const date = new Date(Date.UTC(y, m - 1, d));
  if (date.getUTCFullYear() !== y || date.getUTCMonth() !== m - 1 || date.getUTCDate() !== d)
    throw invalid('ddn', `${ddn} is not a day of the calendar (YYYYMMDD)`);
  if (y < 1880 || date.getTime() > Date.now()) throw invalid('ddn', `${ddn} is not a plausible birth date`);
  return ddn;
}

function patient(
  params: Record<string, string>,
  finess: string,
  acceptTestIns: boolean,
): { identity: IdentityInput; insOids: string[] } {
  const insOids = acceptedInsOids({ acceptTestIns });
  const ipp = text(params, 'ipp', 64);
  const birthName = text(params, 'nom');
  const given = text(params, 'prenom');
  const ddn = birthDate(params);
  const sex = match(params, 'sexe', /^[MFI]$/, 'not M, F or I');
  const lieu = params.lieu?.trim()
    ? match(params, 'lieu', /^(?:\d{5}|2[AB]\d{3})$/, 'not an INSEE code')
    : null;
  const hasIns = Boolean(params.ins?.trim());
  if (hasIns !== Boolean(params.ins_oid?.trim())) throw missing(hasIns ? 'ins_oid' : 'ins');
  let ins: IdentityInput['ins'] = null;
  if (hasIns) {
    const matricule = text(params, 'ins');
    const oid = text(params, 'ins_oid');
    if (!validMatricule(matricule)) throw invalid('ins', 'not 15 characters with a valid control key');
    if (!insOids.includes(oid))
      throw invalid('ins_oid', `${oid} is not an INS OID this DCC accepts (${insOids.join(', ')})`);
    ins = { matricule, oid, status: 'QUAL' };
  }
  return {
    insOids,
    identity: {
      birthName,
      firstGivenName: given,
      givenNames: [given],
      birthDate: ddn,
      sex,
      birthPlace: lieu,
      ins,
      // The contract sends an INS only for a qualified identity; without it nothing was checked here.
      reliability: ins ? 'QUAL' : 'PROV',
      identifiers: [{ finess, ipp }],
    },
  };
}

/** Reads a verified call's parameters; `kind` says whether a patient is part of it. */
export function readActxCall(
  kind: 'patient' | 'global',
  params: Record<string, string>,
  finess: string,
  acceptTestIns: boolean,
): ActxCall {
  const ts = Number(match(params, 'ts', /^\d{1,12}$/, 'not a Unix time in seconds'));
  const nonce = match(params, 'nonce', /^[A-Za-z0-9._~-]{8,128}$/, '8 to 128 letters, digits or - . _ ~');
  const professional = {
    rpps: match(params, 'rpps', /^\d{11}$/, 'not 11 digits'),
    family: text(params, 'pro_nom'),
    given: text(params, 'pro_prenom'),
  };
  const found = kind === 'patient' ? patient(params, finess, acceptTestIns) : null;
  return { ts, nonce, professional, identity: found?.identity ?? null, insOids: found?.insOids ?? [] };
}
