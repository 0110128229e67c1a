// PPS writer: a personalised cancer care programme as a CI-SIS CANCER-PPS 2022.01 CDA R2 document
// (template 1.2.250.1.213.1.1.1.26, LOINC 18776-5). Pure: the same programme gives the same bytes.
// Each planned act is an FR-Acte whose code says its kind (MED-568 treatment, MED-571 follow-up,
// MED-572 supportive care) and whose qualifier carries the value from the value set the schematron
// checks without a nullFlavor: an act the source did not code takes the set's "other" value and
// keeps its words in originalText.
import {
  CARE_PLAN_TEMPLATES,
  FUNCTION_GP,
  assignedEntity,
  clinicalDocument,
  codeAttrs,
  commentSection,
  displayDate,
  documentStatusSection,
  el,
  entryIds,
  facilityLocation,
  isCoded,
  label,
  loinc,
  narrative,
  narrativeTable,
  participant,
  section,
  simpleObservation,
  taAsip,
  period,
  OTHER_TREATMENT,
  treatmentLabel,
} from './cda-header.ts';
import type { Xml } from './cda-header.ts';
import type { Coded, CodedOrText, PpsDocument } from './rcp-model.ts';

export const PPS_TEMPLATE = { root: '1.2.250.1.213.1.1.1.26', extension: '2022.01' };
export const PPS_CODE = loinc('18776-5', 'Plan personnalisé de soins');

interface ActKind {
  code: Coded;
  /** The value set's "other" value, for an act the source did not code. */
  other: Coded;
}

const TREATMENT: ActKind = { code: taAsip('MED-568', 'Traitement'), other: OTHER_TREATMENT };
const FOLLOW_UP: ActKind = {
  code: taAsip('MED-571', 'Suivi'),
  other: taAsip('GEN-092.04.06', 'Autre type de suivi'),
};
const SUPPORTIVE_CARE: ActKind = {
  code: taAsip('MED-572', 'Soin oncologique de support'),
  other: taAsip('GEN-092.04.07', 'Autre soins de support'),
};

function plannedAct(a: {
  id: Xml;
  kind: ActKind;
  type: CodedOrText;
  ref: string;
  done: boolean;
  start?: string;
  end?: string;
}): Xml {
  const qualifier = el(
    'qualifier',
    {},
    el(
      'value',
      codeAttrs(isCoded(a.type) ? a.type : a.kind.other),
      !isCoded(a.type) && el('originalText', {}, el('reference', { value: `#${a.ref}` })),
    ),
  );
  return el(
    'procedure',
    { classCode: 'PROC', moodCode: a.done ? 'EVN' : 'INT', negationInd: false },
    [
      '1.3.6.1.4.1.19376.1.5.3.1.4.19',
      a.done ? '2.16.840.1.113883.10.20.1.29' : '2.16.840.1.113883.10.20.1.25',
      '1.2.250.1.213.1.1.3.62',
    ].map((root) => el('templateId', { root })),
    a.id,
    el('code', codeAttrs(a.kind.code), qualifier),
    el('text', {}, el('reference', { value: `#${a.ref}` })),
    el('statusCode', { code: a.done ? 'completed' : 'active' }),
    a.start === undefined ? el('effectiveTime', { nullFlavor: 'UNK' }) : period(a.start, a.end),
  );
}

function item(id: string, text: string): Xml {
  return el('item', {}, el('content', { ID: id }, text));
}

export function writePps(pps: PpsDocument): string {
  const nextId = entryIds(pps.id);
  return clinicalDocument(
    { template: PPS_TEMPLATE, code: PPS_CODE },
    pps,
    pps.patient,
    {
      title: 'Programme personnalisé de soins en cancérologie',
      participants: pps.contacts.map((c) =>
        c.generalPractitioner === true
          ? participant('INF', FUNCTION_GP, c.person)
          : participant('CON', { text: c.role }, c.person),
      ),
      documentationOf: [
        el(
          'documentationOf',
          {},
          el(
            'serviceEvent',
            { classCode: 'ACT' },
            el('effectiveTime', {}, el('low', { value: pps.effectiveTime })),
            el('performer', { typeCode: 'PRF' }, assignedEntity(pps.referent)),
          ),
        ),
      ],
      componentOf: el(
        'componentOf',
        {},
        el(
          'encompassingEncounter',
          {},
          pps.rcpDate === undefined
            ? el('effectiveTime', { nullFlavor: 'UNK' })
            : el('effectiveTime', {}, el('low', { value: pps.rcpDate })),
          facilityLocation(pps.site),
        ),
      ),
    },
    [
      section({
        templates: CARE_PLAN_TEMPLATES,
        code: loinc('18776-5', 'Plan de soins'),
        title: 'VOLET SOINS : TRAITEMENTS ET SUIVI',
        text: narrative(
          el('paragraph', {}, 'Traitements'),
          el(
            'list',
            {},
            pps.treatments.map((t, i) =>
              item(
                `traitement-${i + 1}`,
                `${t.done ? 'Réalisé' : 'Prévu'} : ${treatmentLabel(t)}${t.rhythm === undefined ? '' : `, ${t.rhythm}`}`,
              ),
            ),
          ),
          el('paragraph', {}, 'Calendrier de suivi'),
          el(
            'list',
            {},
            pps.schedule.map((s, i) =>
              item(
                `suivi-${i + 1}`,
                `${displayDate(s.date)} : ${label(s.type)}${s.detail === undefined ? '' : ` (${s.detail})`}`,
              ),
            ),
          ),
        ),
        entries: [
          ...pps.treatments.map((t, i) =>
            plannedAct({
              id: nextId(),
              kind: TREATMENT,
              type: t.type,
              ref: `traitement-${i + 1}`,
              done: t.done,
              start: t.start,
              end: t.end,
            }),
          ),
          ...pps.schedule.map((s, i) =>
            plannedAct({
              id: nextId(),
              kind: FOLLOW_UP,
              type: s.type,
              ref: `suivi-${i + 1}`,
              done: false,
              start: s.date,
            }),
          ),
        ],
      }),
      section({
        templates: CARE_PLAN_TEMPLATES,
        code: loinc('18776-5', 'Plan de soins'),
        title: 'SOINS ONCOLOGIQUES DE SUPPORT',
        text: narrative(
          pps.supportiveCare.length === 0
            ? el('paragraph', {}, 'Aucun soin de support prévu.')
            : el(
                'list',
                {},
                pps.supportiveCare.map((s, i) =>
                  item(
                    `support-${i + 1}`,
                    `${label(s.type)}${s.detail === undefined ? '' : ` : ${s.detail}`}${s.start === undefined ? '' : ` (à partir du ${displayDate(s.start)})`}`,
                  ),
                ),
              ),
        ),
        entries: pps.supportiveCare.map((s, i) =>
          plannedAct({
            id: nextId(),
            kind: SUPPORTIVE_CARE,
            type: s.type,
            ref: `support-${i + 1}`,
            done: false,
            start: s.start,
          }),
        ),
      }),
      commentSection(
        'CONTACTS',
        pps.contacts.length === 0
          ? el('paragraph', {}, 'Aucun contact renseigné.')
          : narrativeTable(
              'Contacts',
              pps.contacts.map((c) => [
                c.role,
                [
                  c.person.prefix,
                  c.person.given,
                  c.person.family,
                  ...(c.person.telecom ?? []).map((t) => t.value),
                ]
                  .filter((part) => part !== undefined)
                  .join(' '),
              ]),
            ),
      ),
      documentStatusSection(pps.status, pps.statusDate, nextId, {
        rows: pps.rcpDate === undefined ? [] : [['Date de la RCP', displayDate(pps.rcpDate)]],
        entries:
          pps.rcpDate === undefined
            ? []
            : [
                simpleObservation({
                  id: nextId(),
                  code: taAsip('ORG-189', 'Date de la RCP'),
                  time: el('effectiveTime', { value: pps.rcpDate }),
                  value: el('value', { 'xsi:type': 'TS', value: pps.rcpDate }),
                }),
              ],
      }),
    ],
  );
}
