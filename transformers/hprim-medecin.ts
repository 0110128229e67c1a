// HPRIM Médecin (the "HPRIM 1" text report): a fixed header of 12 lines, then the report as free
// text, optionally a `****LAB****` block of structured results (RES|label|code|type|value|…) ended
// by `****FIN****`, and `****FINFICHIER****` at the end of the file. No official text is at hand
// (STANDARDS.md): the reader is liberal about blank trailing header lines and date formats.
//
// Header lines: 1 patient file number (the IPP), 2 name, 3 given name, 4-5 address, 6 postcode and
// town, 7 birth date, 8 social-security number, 9 request number, 10 date of the examination,
// 11 sender code, 12 receiver code.
import { ReportError, attachment, emptyReport, decodeLegacyText } from './clinical-report.ts';
import type { ClinicalReport, ReportKind } from './clinical-report.ts';

const HEADER_LINES = 12;
const DATE = /^(\d{2})[/.-](\d{2})[/.-](\d{4})$|^(\d{4})(\d{2})(\d{2})$/;

/** A 12-line header whose 7th line is a date, or the HPRIM block markers. */
export function looksLikeHprimMedecin(content: Buffer): boolean {
  const head = content.subarray(0, 4096).toString('latin1');
  if (/^\*{4}(?:LAB|FIN|FINFICHIER)\*{4}\s*$/m.test(head)) return true;
  const lines = head.split(/\r\n|\r|\n/);
  return lines.length > HEADER_LINES && DATE.test((lines[6] ?? '').trim()) && (lines[0] ?? '').trim() !== '';
}

export function readHprimMedecin(content: Buffer, kind: ReportKind): ClinicalReport {
  const text = decodeLegacyText(content);
  const lines = text.replace(/^\uFEFF/, '').split(/\r\n|\r|\n/);
  if (lines.length < HEADER_LINES) {
    throw new ReportError(
      'REPORT_BAD_STRUCTURE',
      `an HPRIM Médecin report starts with a ${HEADER_LINES}-line header; this file has ${lines.length} lines`,
      'send the whole report: patient number, name, given name, address (3 lines), birth date, …',
      `line ${lines.length}`,
    );
  }
  const line = (n: number): string => (lines[n - 1] ?? '').trim();
  const report = emptyReport(kind, 'hprim-medecin', attachment('text/plain', content));
  if (line(1) === '') {
    throw new ReportError(
      'REPORT_NO_PATIENT',
      'line 1 of the HPRIM Médecin header (patient file number) is empty',
      "put the establishment's patient number (IPP) on the first line",
      'line 1',
    );
  }
  report.patient.identifiers.push({
    value: line(1),
    type: 'PI',
    namespace: '',
    authority: '',
    authorityType: '',
  });
  if (line(2) !== '') report.patient.birthName = line(2);
  if (line(3) !== '') {
    report.patient.firstGivenName = line(3).split(' ')[0] as string;
    report.patient.givenNames = line(3)
      .split(' ')
      .filter((g) => g !== '');
  }
  const birth = isoDate(line(7), 'line 7');
  if (birth !== undefined) report.patient.birthDate = birth;
  const examined = isoDate(line(10), 'line 10');
  if (examined !== undefined) report.reportDate = examined;
  if (line(9) !== '') report.order = { placerNumber: line(9) };
  const body: string[] = [];
  const results: string[] = [];
  let inLab = false;
  for (const raw of lines.slice(HEADER_LINES)) {
    const marker = /^\*{4}([A-Z]+)\*{4}\s*$/.exec(raw.trim())?.[1];
    if (marker === 'LAB') inLab = true;
    else if (marker === 'FIN') inLab = false;
    else if (marker === 'FINFICHIER') break;
    else if (inLab) results.push(raw);
    else body.push(raw);
  }
  const words = body.join('\n').trim();
  if (words !== '') report.text = words;
  // RES|label|code|type|value|unit|…: the block repeats results already in the text, for software
  // that files values; a pathology or molecular report's findings are in its words.
  const conclusion = results.map((r) => r.split('|')).find((r) => /conclusion/i.test(r[1] ?? ''));
  if (conclusion !== undefined && (conclusion[4] ?? '').trim() !== '')
    report.conclusion = (conclusion[4] as string).trim();
  return report;
}

function isoDate(raw: string, location: string): string | undefined {
  if (raw === '') return undefined;
  const m = DATE.exec(raw);
  if (m === null) {
    throw new ReportError('REPORT_BAD_DATE', `"${raw}" is not a date`, 'write dates as DD/MM/YYYY', location);
  }
  return m[3] !== undefined ? `${m[3]}-${m[2]}-${m[1]}` : `${m[4]}-${m[5]}-${m[6]}`;
}
