// What the CI-SIS CDA writers share: a small XML builder that escapes every text and attribute by
// construction (a caller cannot hand it unescaped markup), the CI-SIS header (patient with INS and
// IPP, author, custodian, legal authenticator, participants, version chain) and the body pieces both
// FRCP and PPS use. Element order follows CDA_extended.xsd; shapes follow the agency's examples.
import { StepError } from './contract.ts';
import type {
  Address,
  Coded,
  CodedOrText,
  DocumentHeader,
  DocumentStatus,
  InstanceId,
  Organization,
  Patient,
  Professional,
  Telecom,
  Treatment,
} from './rcp-model.ts';

/** A fragment of markup built by el(): the only way markup enters a document. */
export interface Xml {
  readonly markup: string;
}

/** A string child is text and is escaped; arrays are flattened; undefined and false are skipped. */
export type Child = Xml | string | undefined | false | readonly Child[];

type Attrs = Record<string, string | number | boolean | undefined>;

// XML 1.0 Char production: anything else cannot be written at all, not even as a character reference.
const NOT_XML_CHAR = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;

function checked(text: string): string {
  const bad = NOT_XML_CHAR.exec(text);
  if (bad !== null) {
    const character = `U+${bad[0].codePointAt(0)?.toString(16).toUpperCase().padStart(4, '0')}`;
    throw new StepError('CDA_INVALID_CHARACTER', `character ${character} cannot appear in an XML document`, {
      // Not the text itself: free text of a form may name the patient, and errors reach logs.
      location: `character offset ${bad.index} of a text field`,
    });
  }
  return text;
}

const ENTITY: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  '\t': '&#9;',
  '\n': '&#10;',
  '\r': '&#13;',
};

/**
 * Text that needs neither escaping nor checking, in either place: XML characters of the basic plane
 * other than `& < > "`, tabs and line breaks (surrogate pairs take the long way). Most of a
 * document's texts and attributes (codes, ids, names), tested once instead of checked then escaped.
 */
const PLAIN = /^[\u0020\u0021\u0023-\u0025\u0027-\u003b\u003d\u003f-\uD7FF\uE000-\uFFFD]*$/;

function escapeText(text: string): string {
  if (PLAIN.test(text)) return text;
  return checked(text).replace(/[&<>]/g, (c) => ENTITY[c] ?? c);
}

/** Tabs and line breaks as character references: an attribute value would otherwise normalise them to spaces. */
function escapeAttribute(value: string): string {
  if (PLAIN.test(value)) return value;
  return checked(value).replace(/[&<>"\t\n\r]/g, (c) => ENTITY[c] ?? c);
}

/**
 * An element built, not yet written: its markup is serialised once, in one pass over the whole tree,
 * when it is asked for (the document's root), rather than by every element for its parent to copy.
 * Text and attribute values are escaped (and checked) as the element is built.
 */
class XmlNode implements Xml {
  private readonly children: Array<XmlNode | string> = [];
  constructor(
    private readonly open: string,
    private readonly name: string,
    children: readonly Child[],
  ) {
    this.add(children);
  }

  private add(children: readonly Child[]): void {
    for (const child of children) {
      if (child === undefined || child === false) continue;
      if (typeof child === 'string') this.children.push(escapeText(child));
      else if (Array.isArray(child)) this.add(child as readonly Child[]);
      else if (child instanceof XmlNode) this.children.push(child);
      else this.children.push((child as Xml).markup);
    }
  }

  get markup(): string {
    const out: string[] = [];
    this.write(out);
    return out.join('');
  }

  private write(out: string[]): void {
    // An element with only empty text is written as empty, as before: `<x/>`.
    if (this.children.every((c) => c === '')) {
      out.push(`${this.open}/>`);
      return;
    }
    out.push(`${this.open}>`);
    for (const c of this.children) {
      if (typeof c === 'string') out.push(c);
      else c.write(out);
    }
    out.push(`</${this.name}>`);
  }
}

export function el(name: string, attrs: Attrs = {}, ...children: Child[]): Xml {
  let open = `<${name}`;
  for (const key in attrs) {
    const value = attrs[key];
    if (value !== undefined) open += ` ${key}="${escapeAttribute(String(value))}"`;
  }
  return new XmlNode(open, name, children);
}

// ---- Code systems and national identifier roots -------------------------------------------------

export const LOINC = '2.16.840.1.113883.6.1';
export const SNOMED_CT = '2.16.840.1.113883.6.96';
export const TA_ASIP = '1.2.250.1.213.1.1.4.322';
const RPPS_ROOT = '1.2.250.1.71.4.2.1';
const FINESS_ROOT = '1.2.250.1.71.4.2.2';

/** The CI-SIS template of every document (HL7 France, CI-SIS) before the document's own. */
const CISIS_DOCUMENT_TEMPLATES = ['2.16.840.1.113883.2.8.2.1', '1.2.250.1.213.1.1.1.1'];

export function loinc(code: string, displayName: string): Coded {
  return { code, codeSystem: LOINC, displayName, codeSystemName: 'LOINC' };
}

export function taAsip(code: string, displayName: string): Coded {
  return { code, codeSystem: TA_ASIP, displayName, codeSystemName: 'TA_ASIP' };
}

export function isCoded(value: CodedOrText): value is Coded {
  return 'code' in value;
}

/** The words a human reads for a value, coded or not. */
export function label(value: CodedOrText): string {
  return isCoded(value) ? value.displayName : value.text;
}

export function codeAttrs(coded: Coded): Attrs {
  return {
    code: coded.code,
    displayName: coded.displayName,
    codeSystem: coded.codeSystem,
    codeSystemName: coded.codeSystemName,
  };
}

/** A CD element: coded, or `nullFlavor="OTH"` with the text the source gave (where the value set allows it). */
export function cd(name: string, value: CodedOrText, extra: Attrs = {}, ...children: Child[]): Xml {
  if (isCoded(value)) return el(name, { ...extra, ...codeAttrs(value) }, ...children);
  return el(name, { ...extra, nullFlavor: 'OTH' }, el('originalText', {}, value.text), ...children);
}

export function ii(id: InstanceId, name = 'id'): Xml {
  return el(name, { root: id.root, extension: id.extension });
}

/** Ids of entries, derived from the document's id so that the same input gives the same document. */
export function entryIds(document: InstanceId): () => Xml {
  let n = 0;
  return () => {
    n += 1;
    return ii({ root: document.root, extension: `${document.extension ?? 'doc'}.e${n}` });
  };
}

/** An act's planned period: an `effectiveTime` interval, a single day being from and to that day. */
export function period(start: string, end: string | undefined): Xml {
  return el('effectiveTime', {}, el('low', { value: start }), el('high', { value: end ?? start }));
}

// ---- People and organisations -------------------------------------------------------------------

/** An address, or `nullFlavor="NAV"` when the source has none (the element itself is required where used). */
export function addr(a: Address | undefined): Xml {
  if (a === undefined) return el('addr', { nullFlavor: 'NAV' });
  return el(
    'addr',
    {},
    a.houseNumber !== undefined && el('houseNumber', {}, a.houseNumber),
    a.streetName !== undefined && el('streetName', {}, a.streetName),
    a.postalCode !== undefined && el('postalCode', {}, a.postalCode),
    a.city !== undefined && el('city', {}, a.city),
    a.country !== undefined && el('country', {}, a.country),
  );
}

function telecoms(list: Telecom[] | undefined): Xml[] {
  return (list ?? []).map((t) => el('telecom', { value: t.value, use: t.use }));
}

function personName(p: Professional): Xml {
  return el(
    'name',
    {},
    p.prefix !== undefined && el('prefix', {}, p.prefix),
    p.given !== undefined && el('given', {}, p.given),
    el('family', {}, p.family),
    p.suffix !== undefined && el('suffix', {}, p.suffix),
  );
}

function organization(name: string, org: Organization): Xml {
  return el(
    name,
    {},
    org.finess !== undefined && ii({ root: FINESS_ROOT, extension: `1${org.finess}` }),
    el('name', {}, org.name),
    telecoms(org.telecom),
    addr(org.addr),
  );
}

/**
 * A professional as an assignedAuthor / assignedEntity / associatedEntity: national id (IdNat_PS:
 * "8" + RPPS, as in the agency's examples), speciality, address, telecom, person, organisation.
 */
export function professional(
  p: Professional,
  names: { entity: string; person: string; organization: string; attrs?: Attrs },
): Xml {
  return el(
    names.entity,
    names.attrs ?? {},
    p.rpps !== undefined && ii({ root: RPPS_ROOT, extension: `8${p.rpps}` }),
    p.specialty !== undefined && el('code', codeAttrs(p.specialty)),
    addr(p.addr),
    telecoms(p.telecom),
    el(names.person, {}, personName(p)),
    p.organization !== undefined && organization(names.organization, p.organization),
  );
}

const ASSIGNED = {
  entity: 'assignedEntity',
  person: 'assignedPerson',
  organization: 'representedOrganization',
};

export function assignedEntity(p: Professional): Xml {
  return professional(p, ASSIGNED);
}

/** A header participant (coordinator RESP, referring REFB, GP INF/PCP, RCP member PRF, contact CON). */
export function participant(
  typeCode: 'RESP' | 'REFB' | 'INF' | 'PRF' | 'CON',
  functionCode: Coded | { text: string },
  p: Professional,
): Xml {
  return el(
    'participant',
    { typeCode },
    isCoded(functionCode)
      ? el('functionCode', codeAttrs(functionCode))
      : el('functionCode', { nullFlavor: 'NA' }, el('originalText', {}, functionCode.text)),
    el('time', { nullFlavor: 'UNK' }),
    professional(p, {
      entity: 'associatedEntity',
      person: 'associatedPerson',
      organization: 'scopingOrganization',
      attrs: { classCode: 'PROV' },
    }),
  );
}

export const FUNCTION_CARE_TEAM: Coded = {
  code: '353',
  displayName: "Membre de l'équipe de soins",
  codeSystem: '1.2.250.1.213.1.6.1.107',
};
export const FUNCTION_CORRESPONDENT: Coded = {
  code: 'CORRE',
  displayName: 'Correspondant',
  codeSystem: '1.2.250.1.213.1.1.4.2.280',
};
export const FUNCTION_GP: Coded = {
  code: 'PCP',
  displayName: 'Médecin traitant',
  codeSystem: '2.16.840.1.113883.5.88',
};

/** The establishment where care happens (encompassingEncounter/location): FINESS, type, name, address. */
export function facilityLocation(site: Organization & { facilityType: Coded }): Xml {
  return el(
    'location',
    {},
    el(
      'healthCareFacility',
      {},
      site.finess !== undefined && ii({ root: FINESS_ROOT, extension: `1${site.finess}` }),
      el('code', codeAttrs(site.facilityType)),
      el('location', {}, el('name', {}, site.name), addr(site.addr)),
    ),
  );
}

// ---- Patient -----------------------------------------------------------------------------------

const SEX: Readonly<Record<Patient['sex'], string>> = { M: 'Masculin', F: 'Féminin', U: 'Inconnu' };

/** recordTarget: INS (qualified identities only: the caller leaves `ins` out otherwise), IPP, strict traits. */
export function recordTarget(p: Patient): Xml {
  return el(
    'recordTarget',
    {},
    el(
      'patientRole',
      {},
      p.ins !== undefined && ii({ root: p.ins.oid, extension: p.ins.matricule }),
      ii({ root: p.ipp.oid, extension: p.ipp.value }),
      p.addr !== undefined && addr(p.addr),
      telecoms(p.telecom),
      el(
        'patient',
        { classCode: 'PSN' },
        el(
          'name',
          {},
          el('family', { qualifier: 'BR' }, p.birthName),
          el('given', {}, p.birthGivenNames),
          el('given', { qualifier: 'BR' }, p.firstGivenName),
          p.usedName !== undefined && el('family', { qualifier: 'CL' }, p.usedName),
          p.usedGivenName !== undefined && el('given', { qualifier: 'CL' }, p.usedGivenName),
        ),
        el('administrativeGenderCode', {
          code: p.sex,
          displayName: SEX[p.sex],
          codeSystem: '2.16.840.1.113883.5.1',
        }),
        el('birthTime', { value: p.birthDate }),
        p.birthPlaceCode !== undefined &&
          el('birthplace', {}, el('place', {}, el('addr', {}, el('county', {}, p.birthPlaceCode)))),
      ),
    ),
  );
}

// ---- Document ----------------------------------------------------------------------------------

export interface DocumentKind {
  /** The document's own CI-SIS template. */
  template: InstanceId;
  code: Coded;
}

export interface HeaderParts {
  title: string;
  participants: Xml[];
  documentationOf: Xml[];
  componentOf: Xml;
}

/** The whole ClinicalDocument: header in XSD order, then the structured body. */
export function clinicalDocument(
  kind: DocumentKind,
  h: DocumentHeader,
  patient: Patient,
  parts: HeaderParts,
  sections: Xml[],
): string {
  if (!Number.isInteger(h.version) || h.version < 1)
    throw new StepError(
      'CDA_BAD_VERSION',
      `version ${h.version} of document ${h.setId.root} is not a positive integer`,
      {
        hint: 'number the versions of a document 1, 2, 3…',
      },
    );
  if ((h.version === 1) !== (h.replaces === undefined))
    throw new StepError(
      'CDA_BAD_VERSION',
      h.version === 1
        ? `version 1 of document ${h.setId.root} says it replaces another document`
        : `version ${h.version} of document ${h.setId.root} does not name the version it replaces`,
    );
  const doc = el(
    'ClinicalDocument',
    {
      xmlns: 'urn:hl7-org:v3',
      'xmlns:xsi': 'http://www.w3.org/2001/XMLSchema-instance',
    },
    el('realmCode', { code: 'FR' }),
    el('typeId', { root: '2.16.840.1.113883.1.3', extension: 'POCD_HD000040' }),
    CISIS_DOCUMENT_TEMPLATES.map((root) => el('templateId', { root })),
    ii(kind.template, 'templateId'),
    ii(h.id),
    el('code', codeAttrs(kind.code)),
    el('title', {}, parts.title),
    el('effectiveTime', { value: h.effectiveTime }),
    el('confidentialityCode', {
      code: h.confidentiality ?? 'N',
      codeSystem: '2.16.840.1.113883.5.25',
      displayName: { N: 'Normal', R: 'Restreint', V: 'Très restreint' }[h.confidentiality ?? 'N'],
    }),
    el('languageCode', { code: 'fr-FR' }),
    ii(h.setId, 'setId'),
    el('versionNumber', { value: h.version }),
    recordTarget(patient),
    el(
      'author',
      {},
      el('time', { value: h.authorTime }),
      professional(h.author, {
        entity: 'assignedAuthor',
        person: 'assignedPerson',
        organization: 'representedOrganization',
      }),
    ),
    el(
      'custodian',
      {},
      el('assignedCustodian', {}, organization('representedCustodianOrganization', h.custodian)),
    ),
    el(
      'legalAuthenticator',
      {},
      el('time', { value: h.legalAuthenticationTime }),
      el('signatureCode', { code: 'S' }),
      assignedEntity(h.legalAuthenticator),
    ),
    parts.participants,
    parts.documentationOf,
    h.replaces !== undefined &&
      el('relatedDocument', { typeCode: 'RPLC' }, el('parentDocument', {}, ii(h.replaces))),
    parts.componentOf,
    el(
      'component',
      {},
      el(
        'structuredBody',
        {},
        sections.map((s) => el('component', {}, s)),
      ),
    ),
  );
  return `<?xml version="1.0" encoding="UTF-8"?>\n${doc.markup}\n`;
}

// ---- Body pieces -------------------------------------------------------------------------------

export function section(s: {
  templates: string[];
  code: Coded;
  title: string;
  text: Xml;
  entries?: Xml[];
}): Xml {
  return el(
    'section',
    {},
    s.templates.map((root) => el('templateId', { root })),
    el('code', codeAttrs(s.code)),
    el('title', {}, s.title),
    s.text,
    (s.entries ?? []).map((e) => el('entry', {}, e)),
  );
}

/** Narrative: a two-column table of label / value; a value with an id can be referenced from an entry. */
export function narrativeTable(
  heading: string,
  rows: Array<[string, string, string?]>,
  headingId?: string,
): Xml {
  return el(
    'table',
    { border: 0 },
    el('thead', {}, el('tr', {}, el('th', { colspan: 2, ID: headingId }, heading))),
    el(
      'tbody',
      {},
      rows.map(([name, value, id]) =>
        el(
          'tr',
          {},
          el('td', {}, name),
          el('td', {}, id === undefined ? value : el('content', { ID: id }, value)),
        ),
      ),
    ),
  );
}

export function narrative(...children: Child[]): Xml {
  return el('text', {}, ...children);
}

/** Free text as paragraphs, one per line of the source. */
export function paragraphs(text: string): Xml[] {
  return text
    .split(/\r?\n/)
    .filter((line) => line.trim() !== '')
    .map((line) => el('paragraph', {}, line));
}

/** FR-Plan-de-soins (CCD, IHE PCC Care Plan, CI-SIS). */
export const CARE_PLAN_TEMPLATES = [
  '2.16.840.1.113883.10.20.1.10',
  '1.3.6.1.4.1.19376.1.5.3.1.3.36',
  '1.2.250.1.213.1.1.2.158',
];

export const SIMPLE_OBSERVATION = ['1.3.6.1.4.1.19376.1.5.3.1.4.13', '1.2.250.1.213.1.1.3.48'];

/** FR-Simple-Observation: a code, a reference to its narrative, a time and a value. */
export function simpleObservation(o: {
  id: Xml;
  code: Coded;
  textRef?: string;
  time?: Xml;
  value: Xml;
  templates?: string[];
  relationships?: Xml[];
}): Xml {
  return el(
    'observation',
    { classCode: 'OBS', moodCode: 'EVN' },
    (o.templates ?? SIMPLE_OBSERVATION).map((root) => el('templateId', { root })),
    o.id,
    el('code', codeAttrs(o.code)),
    o.textRef !== undefined && el('text', {}, el('reference', { value: `#${o.textRef}` })),
    el('statusCode', { code: 'completed' }),
    o.time ?? el('effectiveTime', { nullFlavor: 'NA' }),
    o.value,
    o.relationships,
  );
}

export function booleanValue(value: boolean): Xml {
  return el('value', { 'xsi:type': 'BL', value });
}

/** JDV_StatutDoc_CISIS. */
const STATUS: Readonly<Record<DocumentStatus, Coded>> = {
  'in-progress': {
    code: '385651009',
    displayName: "en cours d'exécution",
    codeSystem: SNOMED_CT,
    codeSystemName: 'SNOMED CT',
  },
  completed: {
    code: '398166005',
    displayName: 'réalisé',
    codeSystem: SNOMED_CT,
    codeSystemName: 'SNOMED CT',
  },
  approved: { code: '9571008', displayName: 'approuvé', codeSystem: SNOMED_CT, codeSystemName: 'SNOMED CT' },
  closed: { code: '29179001', displayName: 'clôturé', codeSystem: SNOMED_CT, codeSystemName: 'SNOMED CT' },
};

/** FR-Statut-du-document (both FRCP and PPS carry it); `more` adds entries such as the RCP date. */
export function documentStatusSection(
  status: DocumentStatus,
  date: string,
  nextId: () => Xml,
  more: { rows?: Array<[string, string]>; entries?: Xml[] } = {},
): Xml {
  return section({
    templates: ['1.2.250.1.213.1.1.2.35'],
    code: loinc('33557-0', "Etat d'achèvement"),
    title: 'Statut du document',
    text: narrative(
      narrativeTable('Statut du document', [
        ['Statut du document', STATUS[status].displayName, 'statut-document'],
        ['Date du statut du document', displayDate(date)],
        ...(more.rows ?? []),
      ]),
    ),
    entries: [
      simpleObservation({
        id: nextId(),
        templates: [...SIMPLE_OBSERVATION, '1.2.250.1.213.1.1.3.48.16'],
        code: taAsip('GEN-065', 'Statut du document'),
        textRef: 'statut-document',
        time: el('effectiveTime', { value: date }),
        value: el('value', { 'xsi:type': 'CD', ...codeAttrs(STATUS[status]) }),
      }),
      ...(more.entries ?? []),
    ],
  });
}

/** `20190218` or `20190218171100+0100` as the French reader expects it: 18/02/2019. */
export function displayDate(ts: string): string {
  const m = /^(\d{4})(\d{2})(\d{2})/.exec(ts);
  return m === null ? ts : `${m[3]}/${m[2]}/${m[1]}`;
}

/** A treatment the form did not code: "other treatment (to specify)" of JDV_TypeTraitement, specified in text. */
export const OTHER_TREATMENT = taAsip('GEN-092.03.01', 'Autres traitements (à préciser)');

export function treatmentLabel(t: Treatment): string {
  const period =
    t.start === undefined
      ? ''
      : ` (à partir du ${displayDate(t.start)}${t.end === undefined ? '' : ` jusqu'au ${displayDate(t.end)}`})`;
  return `${label(t.type)}${t.detail === undefined ? '' : ` : ${t.detail}`}${period}`;
}

/** FR-Commentaire-non-code: free narrative under a title of its own. */
export function commentSection(title: string, content: Xml): Xml {
  return section({
    templates: ['2.16.840.1.113883.10.12.201', '1.3.6.1.4.1.19376.1.4.1.2.16', '1.2.250.1.213.1.1.2.73'],
    code: loinc('55112-7', 'Commentaire'),
    title,
    text: narrative(content),
  });
}
