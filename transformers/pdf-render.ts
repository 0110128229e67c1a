// The PDF a human reads beside the CDA (issue 11 item 4). It is drawn from the CDA itself, not from
// the form it came from: what the PDF says is what the structured document says — header facts,
// patient identity with INS and IPP, participants, every section's narrative block, the validation
// by the legal authenticator — so the two cannot drift apart. One renderer serves FRCP and PPS (and
// any CI-SIS document), because the CDA narrative is already the document's human reading.
//
// Deterministic: the PDF's CreationDate comes from the document's effectiveTime, so the same CDA
// always gives the same bytes and a re-sent attachment is recognisably the same. Fonts are PDF's
// standard Helvetica family (no font file, no network), drawn by pdf-canvas.ts; they speak
// WinAnsi, so any character outside it is written as its unaccented base letter, or `?` when it
// has none.
import { PdfCanvas, type FontName } from './pdf-canvas.ts';
import { StepError } from './contract.ts';
import { attr, childElements, element, elements, parseXml, text } from './xml.ts';
import type { XmlElement } from './xml.ts';

export const PDF_CONTENT_TYPE = 'application/pdf';

const INS_ROOTS: Readonly<Record<string, string>> = {
  '1.2.250.1.213.1.4.8': 'INS-NIR',
  '1.2.250.1.213.1.4.9': 'INS-NIA',
  '1.2.250.1.213.1.4.10': 'INS-NIR (test)',
  '1.2.250.1.213.1.4.11': 'INS-NIR (démonstration)',
};
const RPPS_ROOT = '1.2.250.1.71.4.2.1';
const FINESS_ROOT = '1.2.250.1.71.4.2.2';

const CONFIDENTIALITY: Readonly<Record<string, string>> = {
  N: 'Normal',
  R: 'Restreint',
  V: 'Très restreint',
};
const SEX: Readonly<Record<string, string>> = { M: 'Masculin', F: 'Féminin', U: 'Inconnu' };

function incomplete(what: string): StepError {
  return new StepError('PDF_CDA_INCOMPLETE', `the CDA document has no ${what}: it cannot be rendered as PDF`);
}

// ---- Reading the CDA -----------------------------------------------------------------------------

/** `20260112160000+0100` → `12/01/2026 16:00`; `202512` → `12/2025`. */
export function humanTime(ts: string | undefined): string {
  if (ts === undefined) return '';
  const m = /^(\d{4})(\d{2})?(\d{2})?(?:(\d{2})(\d{2}))?/.exec(ts);
  if (m === null) return ts;
  const date = [m[3], m[2], m[1]].filter((p) => p !== undefined).join('/');
  return m[4] === undefined ? date : `${date} ${m[4]}:${m[5]}`;
}

/** The instant a CDA TS designates (its offset honoured; no offset is read as UTC, never as local time). */
export function tsToDate(ts: string): Date | undefined {
  const m = /^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d+)?([+-]\d{4})?$/.exec(ts);
  if (m === null) return undefined;
  const [y, mo = '01', d = '01', h = '00', mi = '00', s = '00'] = m.slice(1, 7);
  const zone = m[7] === undefined ? 'Z' : `${m[7].slice(0, 3)}:${m[7].slice(3)}`;
  const date = new Date(`${y}-${mo}-${d}T${h}:${mi}:${s}${zone}`);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

function personName(name: XmlElement | undefined): string {
  if (name === undefined) return '';
  const part = (local: string): string =>
    elements(name, local)
      .map((e) => text(e))
      .filter((t) => t !== '')
      .join(' ');
  return [part('prefix'), part('given'), part('family')].filter((p) => p !== '').join(' ');
}

/** `RPPS 10000000001` from the IdNat_PS `810000000001` (type 8 = RPPS), the raw id otherwise. */
function professionalId(id: XmlElement | undefined): string {
  const ext = attr(id, 'extension');
  if (ext === undefined) return '';
  if (attr(id, 'root') === RPPS_ROOT && /^8\d{11}$/.test(ext)) return `RPPS ${ext.slice(1)}`;
  return `IdNat_PS ${ext}`;
}

/** `FINESS 310000001` from the IdNat_Struct `1310000001` (type 1 = FINESS). */
function organizationId(id: XmlElement | undefined): string {
  const ext = attr(id, 'extension');
  if (ext === undefined) return '';
  if (attr(id, 'root') === FINESS_ROOT && /^1\d{9}$/.test(ext)) return `FINESS ${ext.slice(1)}`;
  return ext;
}

function address(addr: XmlElement | undefined): string {
  if (addr === undefined || attr(addr, 'nullFlavor') !== undefined) return '';
  const line = (locals: string[]): string =>
    locals
      .map((l) => text(element(addr, l)))
      .filter((t) => t !== '')
      .join(' ');
  return [line(['houseNumber', 'streetName', 'streetAddressLine']), line(['postalCode', 'city'])]
    .filter((t) => t !== '')
    .join(', ');
}

function telecoms(from: XmlElement): string {
  return elements(from, 'telecom')
    .map((t) => (attr(t, 'value') ?? '').replace(/^(tel|mailto|fax):/, ''))
    .filter((t) => t !== '')
    .join(', ');
}

function coded(node: XmlElement | undefined): string {
  if (node === undefined) return '';
  return attr(node, 'displayName') ?? text(element(node, 'originalText'));
}

/** One line per professional: name, national id, speciality, organisation, contact. */
function professional(entity: XmlElement, personPath: string, orgPath: string): string {
  const org = element(entity, orgPath);
  return [
    personName(element(entity, `${personPath}/name`)),
    professionalId(element(entity, 'id')),
    coded(element(entity, 'code')),
    org === undefined
      ? ''
      : [text(element(org, 'name')), organizationId(element(org, 'id'))].join(' ').trim(),
    telecoms(entity),
  ]
    .filter((p) => p !== '')
    .join(' — ');
}

// ---- Drawing -------------------------------------------------------------------------------------

// WinAnsiEncoding beyond Latin-1: what the standard fonts can still show.
const WIN_ANSI_EXTRA = new Set('€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ');

/** Text the fonts show as it is (printable ASCII and Latin-1, no combining marks): most of a document. */
const LATIN1 = /^[\x20-\x7e\xa0-\xff]*$/;

function winAnsi(input: string): string {
  if (LATIN1.test(input)) return input;
  let out = '';
  for (const ch of input.normalize('NFC')) {
    const code = ch.codePointAt(0) ?? 0;
    if ((code >= 0x20 && code <= 0x7e) || (code >= 0xa0 && code <= 0xff) || WIN_ANSI_EXTRA.has(ch)) {
      out += ch;
    } else if (ch === '\t' || ch === '\n') {
      out += ' ';
    } else {
      const base = ch.normalize('NFD').replace(/\p{M}/gu, '');
      out += base !== ch && base.length > 0 && [...base].every((c) => c.charCodeAt(0) < 0x7f) ? base : '?';
    }
  }
  return out;
}

const MARGIN = 50;
const FONT: FontName = 'Helvetica';
const BOLD: FontName = 'Helvetica-Bold';
const ITALIC: FontName = 'Helvetica-Oblique';
const GREY = '#555555';

class Writer {
  readonly doc: PdfCanvas;
  constructor(doc: PdfCanvas) {
    this.doc = doc;
  }

  get width(): number {
    return this.doc.page.width - 2 * MARGIN;
  }

  /** Room for `height` more points on this page, or a new page. */
  room(height: number): void {
    if (this.doc.y + height > this.doc.page.height - MARGIN - 20) this.doc.addPage();
  }

  heading(title: string, size = 12): void {
    this.room(40);
    this.doc.moveDown(0.6).font(BOLD).fontSize(size).fillColor('black');
    this.doc.text(winAnsi(title), MARGIN, this.doc.y, { width: this.width });
    const y = this.doc.y + 1;
    this.doc
      .moveTo(MARGIN, y)
      .lineTo(MARGIN + this.width, y)
      .lineWidth(0.5)
      .strokeColor('#999999')
      .stroke();
    this.doc.moveDown(0.3);
  }

  line(
    value: string,
    options: { font?: FontName; size?: number; indent?: number; color?: string } = {},
  ): void {
    if (value.trim() === '') return;
    const indent = options.indent ?? 0;
    this.doc
      .font(options.font ?? FONT)
      .fontSize(options.size ?? 9.5)
      .fillColor(options.color ?? 'black');
    this.doc.text(winAnsi(value), MARGIN + indent, this.doc.y, { width: this.width - indent });
  }

  /** `label : value` rows, labels in a column of their own. */
  fields(rows: Array<[string, string]>, indent = 0): void {
    const labelWidth = 130;
    for (const [name, value] of rows) {
      if (value.trim() === '') continue;
      // Drawn, not measured first: each measure is a second line-wrapping pass, and the row's height
      // is where the taller of the two columns ended. A value longer than the page goes on overleaf.
      this.room(24);
      const y = this.doc.y;
      this.doc
        .font(BOLD)
        .fontSize(9.5)
        .fillColor(GREY)
        .text(winAnsi(name), MARGIN + indent, y, { width: labelWidth - 6 });
      const labelEnd = this.doc.y;
      const page = this.doc.page;
      this.doc
        .font(FONT)
        .fillColor('black')
        .text(winAnsi(value), MARGIN + indent + labelWidth, y, { width: this.width - indent - labelWidth });
      this.doc.y = (this.doc.page === page ? Math.max(labelEnd, this.doc.y) : this.doc.y) + 2;
    }
  }

  /** A CDA narrative block (`section/text`): paragraphs, lists, tables, content, line breaks. */
  narrative(block: XmlElement, indent = 0): void {
    let inline = '';
    const flush = (): void => {
      this.line(inline.replace(/\s+/g, ' ').trim(), { indent });
      inline = '';
    };
    for (const child of block.children) {
      if (typeof child === 'string') {
        inline += child;
        continue;
      }
      switch (child.local) {
        case 'br':
          flush();
          break;
        case 'paragraph':
          flush();
          this.paragraph(child, indent);
          break;
        case 'list':
          flush();
          for (const item of elements(child, 'item')) {
            this.room(14);
            this.line(`•  ${text(item)}`, { indent: indent + 8 });
          }
          this.doc.moveDown(0.3);
          break;
        case 'table':
          flush();
          this.table(child, indent);
          break;
        case 'footnote':
        case 'caption':
          flush();
          this.line(text(child), { indent, font: ITALIC, color: GREY });
          break;
        case 'renderMultiMedia':
          break;
        default:
          inline += ` ${text(child)} `;
      }
    }
    flush();
  }

  private paragraph(p: XmlElement, indent: number): void {
    const caption = element(p, 'caption');
    if (caption !== undefined) this.line(text(caption), { indent, font: BOLD });
    const body = { ...p, children: p.children.filter((c) => typeof c === 'string' || c.local !== 'caption') };
    if (childElements(body).some((c) => c.local === 'br')) {
      this.narrative(body, indent);
    } else {
      this.room(14);
      this.line(text(body), { indent });
    }
    this.doc.moveDown(0.3);
  }

  private table(table: XmlElement, indent: number): void {
    const rows = [
      ...elements(table, 'thead/tr'),
      ...elements(table, 'tbody/tr'),
      ...elements(table, 'tr'),
      ...elements(table, 'tfoot/tr'),
    ];
    const caption = element(table, 'caption');
    if (caption !== undefined) this.line(text(caption), { indent, font: BOLD });
    const columns = Math.max(1, ...rows.map((r) => childElements(r).length));
    const twoColumns = columns === 2;
    for (const row of rows) {
      const cells = childElements(row).filter((c) => c.local === 'td' || c.local === 'th');
      if (cells.length === 1 && attr(cells[0], 'colspan') !== undefined) {
        this.room(16);
        this.line(text(cells[0]), { indent, font: BOLD, size: 10 });
        continue;
      }
      if (twoColumns) {
        this.fields([[text(cells[0]), text(cells[1])]], indent + 8);
        continue;
      }
      const width = (this.width - indent) / columns;
      this.doc.fontSize(9);
      const height = Math.max(
        ...cells.map((c) =>
          this.doc
            .font(c.local === 'th' ? BOLD : FONT)
            .heightOfString(winAnsi(text(c)), { width: width - 4 }),
        ),
      );
      this.room(height);
      const y = this.doc.y;
      cells.forEach((c, i) => {
        this.doc
          .font(c.local === 'th' ? BOLD : FONT)
          .fillColor('black')
          .text(winAnsi(text(c)), MARGIN + indent + i * width, y, { width: width - 4 });
      });
      this.doc.y = y + height + 2;
    }
    this.doc.moveDown(0.4);
  }

  section(section: XmlElement, depth: number): void {
    const title = text(element(section, 'title')) || coded(element(section, 'code'));
    this.heading(title, depth === 0 ? 11.5 : 10.5);
    const block = element(section, 'text');
    if (block !== undefined) this.narrative(block, depth * 10);
    for (const sub of elements(section, 'component/section')) this.section(sub, depth + 1);
  }
}

function documentFields(doc: XmlElement): Array<[string, string]> {
  const id = element(doc, 'id');
  const related = elements(doc, 'relatedDocument').find((r) => attr(r, 'typeCode') === 'RPLC');
  const replaced = related === undefined ? undefined : element(related, 'parentDocument/id');
  const confidentiality = attr(element(doc, 'confidentialityCode'), 'code') ?? '';
  return [
    ['Type de document', coded(element(doc, 'code'))],
    ['Identifiant', [attr(id, 'extension'), attr(id, 'root')].filter(Boolean).join(' @ ')],
    ['Version', attr(element(doc, 'versionNumber'), 'value') ?? ''],
    ['Remplace', replaced === undefined ? '' : (attr(replaced, 'extension') ?? attr(replaced, 'root') ?? '')],
    ['Date du document', humanTime(attr(element(doc, 'effectiveTime'), 'value'))],
    ['Confidentialité', CONFIDENTIALITY[confidentiality] ?? confidentiality],
  ];
}

function patientFields(doc: XmlElement): Array<[string, string]> {
  const role = element(doc, 'recordTarget/patientRole');
  if (role === undefined) {
    throw incomplete('recordTarget');
  }
  const patient = element(role, 'patient');
  const names = patient === undefined ? [] : elements(patient, 'name');
  const part = (local: string, qualifier: string | undefined): string =>
    names
      .flatMap((n) => elements(n, local))
      .filter((e) => attr(e, 'qualifier') === qualifier)
      .map((e) => text(e))
      .join(' ');
  const ids = elements(role, 'id');
  const ins = ids.find((i) => INS_ROOTS[attr(i, 'root') ?? ''] !== undefined);
  const ipps = ids.filter((i) => i !== ins);
  const sex = attr(element(patient ?? role, 'administrativeGenderCode'), 'code') ?? '';
  return [
    ['Nom de naissance', part('family', 'BR')],
    ['Prénom(s) de naissance', part('given', undefined)],
    ['Premier prénom', part('given', 'BR')],
    ['Nom utilisé', part('family', 'CL')],
    ['Prénom utilisé', part('given', 'CL')],
    ['Sexe', SEX[sex] ?? sex],
    ['Date de naissance', humanTime(attr(element(patient ?? role, 'birthTime'), 'value'))],
    ['Lieu de naissance (INSEE)', text(element(patient ?? role, 'birthplace/place/addr/county'))],
    [
      'INS',
      ins === undefined
        ? 'non transmis (identité non qualifiée)'
        : `${attr(ins, 'extension') ?? ''} — ${INS_ROOTS[attr(ins, 'root') ?? ''] ?? ''} (${attr(ins, 'root') ?? ''})`,
    ],
    ...ipps.map((i): [string, string] => ['IPP', `${attr(i, 'extension') ?? ''} (${attr(i, 'root') ?? ''})`]),
    ['Adresse', address(element(role, 'addr'))],
  ];
}

function participantRows(doc: XmlElement): Array<[string, string]> {
  const rows: Array<[string, string]> = [];
  for (const author of elements(doc, 'author')) {
    const entity = element(author, 'assignedAuthor');
    if (entity !== undefined) {
      rows.push(['Auteur', professional(entity, 'assignedPerson', 'representedOrganization')]);
    }
  }
  const custodian = element(doc, 'custodian/assignedCustodian/representedCustodianOrganization');
  if (custodian !== undefined) {
    rows.push([
      'Conservation',
      [text(element(custodian, 'name')), organizationId(element(custodian, 'id'))].join(' ').trim(),
    ]);
  }
  for (const p of elements(doc, 'participant')) {
    const entity = element(p, 'associatedEntity');
    if (entity === undefined) continue;
    const fn = element(p, 'functionCode');
    rows.push([
      coded(fn) || attr(p, 'typeCode') || '',
      professional(entity, 'associatedPerson', 'scopingOrganization'),
    ]);
  }
  for (const event of elements(doc, 'documentationOf/serviceEvent')) {
    for (const performer of elements(event, 'performer/assignedEntity')) {
      rows.push(['Responsable', professional(performer, 'assignedPerson', 'representedOrganization')]);
    }
  }
  return rows;
}

function encounterFields(doc: XmlElement): Array<[string, string]> {
  const encounter = element(doc, 'componentOf/encompassingEncounter');
  const event = element(doc, 'documentationOf/serviceEvent');
  const facility = encounter === undefined ? undefined : element(encounter, 'location/healthCareFacility');
  const when = (from: XmlElement | undefined): string =>
    from === undefined
      ? ''
      : humanTime(
          attr(element(from, 'effectiveTime'), 'value') ?? attr(element(from, 'effectiveTime/low'), 'value'),
        );
  return [
    ['Acte', event === undefined ? '' : coded(element(event, 'code'))],
    ['Date', when(event) || when(encounter)],
    [
      'Lieu',
      facility === undefined
        ? ''
        : [
            text(element(facility, 'location/name')),
            organizationId(element(facility, 'id')),
            address(element(facility, 'location/addr')),
          ]
            .filter((p) => p !== '')
            .join(' — '),
    ],
    ['Type d’établissement', facility === undefined ? '' : coded(element(facility, 'code'))],
  ];
}

function validation(doc: XmlElement): string {
  const legal = element(doc, 'legalAuthenticator');
  const entity = legal === undefined ? undefined : element(legal, 'assignedEntity');
  if (legal === undefined || entity === undefined) return 'Document non validé.';
  const signed = attr(element(legal, 'signatureCode'), 'code') === 'S' ? 'signé' : 'non signé';
  return `Validé le ${humanTime(attr(element(legal, 'time'), 'value'))} par ${professional(
    entity,
    'assignedPerson',
    'representedOrganization',
  )} (${signed}).`;
}

/** The PDF of a CDA R2 document, as bytes; give the parsed tree when the caller already has it. */
export function renderPdf(cda: string | Uint8Array | XmlElement): Buffer {
  const doc = typeof cda === 'object' && 'local' in cda ? cda : parseXml(cda);
  if (doc.local !== 'ClinicalDocument') {
    throw incomplete('ClinicalDocument root');
  }
  const effective = attr(element(doc, 'effectiveTime'), 'value') ?? '';
  const created = tsToDate(effective);
  if (created === undefined) {
    // The PDF's creation date is the document's, so that the same document gives the same bytes.
    throw incomplete(`effectiveTime that is a date (found "${effective}")`);
  }
  const title = text(element(doc, 'title')) || coded(element(doc, 'code'));
  const pdf = new PdfCanvas({
    margin: MARGIN,
    // The info dictionary says what the document is, never whom it is about: it is read by indexers.
    info: { Title: winAnsi(title), Producer: 'Onco-Relay', Creator: 'Onco-Relay', CreationDate: created },
    lang: 'fr-FR',
  });
  const w = new Writer(pdf);

  pdf.font(BOLD).fontSize(15).text(winAnsi(title), undefined, undefined, { width: w.width });
  pdf.moveDown(0.2);
  w.line(coded(element(doc, 'code')), { color: GREY, size: 10 });

  w.heading('Document');
  w.fields(documentFields(doc));
  w.heading('Patient');
  const patient = patientFields(doc);
  w.fields(patient);
  const encounter = encounterFields(doc);
  if (encounter.some(([, v]) => v !== '')) {
    w.heading('Prise en charge');
    w.fields(encounter);
  }
  w.heading('Intervenants');
  w.fields(participantRows(doc));

  for (const section of elements(doc, 'component/structuredBody/component/section')) w.section(section, 0);

  w.heading('Validation');
  w.line(validation(doc));

  // Every page names its patient and document, as a printed page may travel alone.
  const footer = [
    patient.find(([k]) => k === 'Nom de naissance')?.[1] ?? '',
    patient.find(([k]) => k === 'Premier prénom')?.[1] ?? '',
    `né(e) le ${patient.find(([k]) => k === 'Date de naissance')?.[1] ?? ''}`,
    `— ${attr(element(doc, 'id'), 'extension') ?? attr(element(doc, 'id'), 'root') ?? ''}`,
  ].join(' ');
  const range = pdf.bufferedPageRange();
  for (let i = range.start; i < range.start + range.count; i++) {
    pdf.switchToPage(i);
    const bottom = pdf.page.height - MARGIN + 10;
    pdf.page.margins.bottom = 0;
    pdf
      .font(FONT)
      .fontSize(8)
      .fillColor(GREY)
      .text(winAnsi(`${footer} — page ${i + 1}/${range.count}`), MARGIN, bottom, {
        width: w.width,
        align: 'center',
        lineBreak: false,
      });
  }
  return pdf.bytes();
}
