// HPRIM Santé (ASTM E1238 style, versions 2.2 to 2.4): records H (header), P (patient), OBR
// (request), OBX (result), C (comment), L (end), one per line. The field separator is the second
// character of H and the next four are the component, repetition, escape and sub-component
// characters. No official text is at hand (STANDARDS.md), so the reader is liberal: unknown
// records are skipped, CR, LF or CRLF end a record, and a record may be continued on an `A` line.
//
// An HPRIM P record carries the requester's patient id (P-3) without its assigning authority: the
// IPP is returned with an empty authority, and whoever files it takes the sending account's FINESS.
import {
  ReportError,
  attachment,
  emptyReport,
  addFinding,
  findingKind,
  organization,
  isoTimestamp,
  readIns,
  decodeLegacyText,
} from './clinical-report.ts';
import type { ClinicalReport, ReadOptions, ReportKind } from './clinical-report.ts';

const LOINC_CONCLUSION = '22637-3';

interface Separators {
  field: string;
  component: string;
  repetition: string;
  escape: string;
  subcomponent: string;
}

/** `H|^~\&` (any non-alphanumeric separators) at the start of the content. */
export function looksLikeHprimSante(content: Buffer): boolean {
  return /^(?:\xef\xbb\xbf)?H([^A-Za-z0-9\s])[^A-Za-z0-9\s]{4}\1/.test(
    content.subarray(0, 16).toString('latin1'),
  );
}

export function readHprimSante(content: Buffer, kind: ReportKind, options: ReadOptions = {}): ClinicalReport {
  const text = decodeLegacyText(content);
  const lines = joinContinuations(text.replace(/^\uFEFF/, '').split(/\r\n|\r|\n/));
  const header = lines[0] ?? '';
  if (!looksLikeHprimSante(Buffer.from(header.slice(0, 16), 'latin1'))) {
    throw new ReportError(
      'REPORT_BAD_STRUCTURE',
      'an HPRIM Santé file starts with an H record declaring its separators (H|^~\\&)',
      'check the file is HPRIM Santé and starts with its H line',
      'line 1',
    );
  }
  const s: Separators = {
    field: header[1] as string,
    component: header[2] as string,
    repetition: header[3] as string,
    escape: header[4] as string,
    subcomponent: header[5] as string,
  };
  const report = emptyReport(kind, 'hprim-sante', attachment('application/x-hprim-sante', content));
  const records = lines.map((line, i) => ({ fields: line.split(s.field), line: i + 1 }));
  // H-5 sender: id^name; the id is the lab's FINESS when it is nine digits.
  const sender = component(records[0]?.fields[4] ?? '', s, 1);
  const finess = /^\d{9}$/.test(sender) ? sender : undefined;
  const lab = organization(
    finess,
    component(records[0]?.fields[4] ?? '', s, 2) || (finess === undefined ? sender : ''),
  );
  if (lab !== undefined) report.lab = lab;
  const textLines: string[] = [];
  let patients = 0;
  for (const { fields, line } of records) {
    const at = `line ${line}`;
    const f = (n: number, c = 1): string => unescapeHprim(component(fields[n - 1] ?? '', s, c), s).trim();
    switch (fields[0]) {
      case 'P':
        if (++patients > 1) {
          throw new ReportError(
            'REPORT_BAD_STRUCTURE',
            'the file holds reports for more than one patient',
            'send one patient per HPRIM file',
            at,
          );
        }
        readPatient(f, report, options, at);
        break;
      case 'OBR': {
        const placer = f(3);
        if (placer !== '') report.order = { placerNumber: placer };
        // ASTM numbering (the record type is field 1): OBR-8 collection, OBR-16 specimen, OBR-23 reported.
        const reported = isoTimestamp(f(23), `${at} OBR-23`);
        if (reported !== undefined) report.reportDate ??= reported;
        if (f(5) !== '') report.documentType ??= { code: f(5), display: f(5, 2) };
        const collected = isoTimestamp(f(8), `${at} OBR-8`);
        if (f(16) !== '' || collected !== undefined) {
          report.specimens.push({
            ...(f(16) === '' ? {} : { type: { code: f(16), display: f(16, 2) } }),
            ...(collected === undefined ? {} : { collected }),
          });
        }
        break;
      }
      case 'OBX': {
        const type = f(3);
        const value = fields[5] ?? '';
        if (type === 'CE' || type === 'CWE') {
          const code = unescapeHprim(component(value, s, 1), s).trim();
          const system = unescapeHprim(component(value, s, 3), s).trim();
          const found = findingKind(system, code);
          if (code !== '' && found !== 'other') {
            addFinding(report, {
              kind: found,
              code,
              system,
              display: unescapeHprim(component(value, s, 2), s).trim(),
            });
          }
        } else {
          const words = value
            .split(s.repetition)
            .map((r) => unescapeHprim(r, s))
            .join('\n');
          if (f(4) === LOINC_CONCLUSION) report.conclusion = words.trim();
          else if (words.trim() !== '') textLines.push(words);
        }
        if (f(12).toUpperCase() === 'C') report.document.status = 'replacement';
        if (f(12).toUpperCase() === 'D') report.document.status = 'deletion';
        break;
      }
      case 'C':
        if (f(4) !== '') textLines.push(f(4));
        break;
    }
  }
  if (patients === 0) {
    throw new ReportError(
      'REPORT_NO_PATIENT',
      'the HPRIM file has no P (patient) record',
      'send the patient as a P record before the results',
    );
  }
  if (textLines.length > 0) report.text = textLines.join('\n');
  // H carries the message date near its end (its position varies between HPRIM versions).
  report.reportDate ??= isoTimestamp(
    [...(records[0]?.fields ?? [])]
      .reverse()
      .find((x) => /^\d{8,14}$/.test(x.trim()))
      ?.trim() ?? '',
    'line 1',
  );
  return report;
}

function readPatient(
  f: (n: number, c?: number) => string,
  report: ClinicalReport,
  options: ReadOptions,
  at: string,
): void {
  // P-3 requester's id (the establishment's IPP), P-4 the lab's own id, P-6 name, P-7 birth name,
  // P-8 birth date, P-9 sex; some 2.4 senders put the INS in P-5 as matricule^^^OID.
  const ipp = f(3);
  if (ipp !== '')
    report.patient.identifiers.push({
      value: ipp,
      type: 'PI',
      namespace: '',
      authority: '',
      authorityType: '',
    });
  const labId = f(4);
  if (labId !== '') {
    report.patient.identifiers.push({
      value: labId,
      type: 'LAB',
      namespace: '',
      authority: '',
      authorityType: '',
    });
  }
  const ins = f(5) === '' ? undefined : readIns(f(5), f(5, 4), `${at} P-5`, options);
  if (ins !== undefined) report.patient.ins = ins;
  if (report.patient.identifiers.length === 0 && ins === undefined) {
    throw new ReportError(
      'REPORT_NO_PATIENT',
      'the P record names no patient identifier',
      "put the establishment's patient id (IPP) in P-3",
      at,
    );
  }
  const birthName = f(7) || f(6);
  if (birthName !== '') report.patient.birthName = birthName;
  if (f(7) !== '' && f(6) !== '' && f(6) !== f(7)) report.patient.usedName = f(6);
  const given = f(6, 2);
  if (given !== '') {
    report.patient.firstGivenName = given;
    report.patient.givenNames = [given];
  }
  const birthDate = isoTimestamp(f(8), `${at} P-8`);
  if (birthDate !== undefined) report.patient.birthDate = birthDate.slice(0, 10);
  const sex = f(9).toUpperCase();
  if (sex === 'M' || sex === 'F') report.patient.sex = sex;
  else if (sex !== '') report.patient.sex = 'I';
}

// ASTM continuation: a record longer than the sender's line limit goes on in `A|…` lines.
function joinContinuations(lines: string[]): string[] {
  const out: string[] = [];
  for (const line of lines) {
    if (line.trim() === '') continue;
    if (/^A[^A-Za-z0-9]/.test(line) && out.length > 0) out[out.length - 1] += line.slice(2);
    else out.push(line);
  }
  return out;
}

function component(field: string, s: Separators, n: number): string {
  return field.split(s.repetition)[0]?.split(s.component)[n - 1] ?? '';
}

function unescapeHprim(text: string, s: Separators): string {
  const e = s.escape;
  if (!text.includes(e)) return text;
  const table: Record<string, string> = {
    F: s.field,
    S: s.component,
    R: s.repetition,
    E: e,
    T: s.subcomponent,
    '.br': '\n',
  };
  return text.replace(
    new RegExp(`${escapeRegExp(e)}(F|S|R|E|T|\\.br)${escapeRegExp(e)}`, 'g'),
    (_, k: string) => table[k] ?? '',
  );
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
