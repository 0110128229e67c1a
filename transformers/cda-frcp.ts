// FRCP writer: a patient's RCP form as a CI-SIS CANCER-FRCP 2022.01 CDA R2 document
// (template 1.2.250.1.213.1.1.1.8, LOINC 34794-8). Pure: the same form gives the same bytes.
// Every section the schematron requires is written; entries are coded where the form is coded
// (value sets JDV_NatureDiscussion, JDV_RCP_Appareil/Organe, JDV_Tumeur, JDV_Morphologie,
// JDV_TypeTraitement_FRCP, JDV_StatutQuorum, JDV_StatutCasPresente, JDV_StatutDoc).
import {
  CARE_PLAN_TEMPLATES,
  SNOMED_CT,
  FUNCTION_CARE_TEAM,
  facilityLocation,
  FUNCTION_CORRESPONDENT,
  FUNCTION_GP,
  assignedEntity,
  booleanValue,
  cd,
  clinicalDocument,
  codeAttrs,
  displayDate,
  documentStatusSection,
  el,
  entryIds,
  ii,
  isCoded,
  label,
  loinc,
  narrative,
  narrativeTable,
  paragraphs,
  participant,
  section,
  simpleObservation,
  taAsip,
  period,
  OTHER_TREATMENT,
  treatmentLabel,
} from './cda-header.ts';
import type { Xml } from './cda-header.ts';
import type { Coded, CodedOrText, Diagnosis, RcpForm } from './rcp-model.ts';

export const FRCP_TEMPLATE = { root: '1.2.250.1.213.1.1.1.8', extension: '2022.01' };
export const FRCP_CODE = loinc('34794-8', 'CR de réunion de concertation pluridisciplinaire');

const TNM_UICC = '2.16.840.1.113883.15.6';
const ICD10 = '2.16.840.1.113883.6.3';

export function writeFrcp(form: RcpForm): string {
  const nextId = entryIds(form.id);
  const m = form.meeting;
  const title = `${m.network.acronym} / ${m.organiserId.acronym} / ${m.committee.name}`;
  const participants = form.participants ?? m.participants;
  return clinicalDocument(
    { template: FRCP_TEMPLATE, code: FRCP_CODE },
    form,
    form.patient,
    {
      title,
      participants: [
        participant('RESP', { text: 'Coordonnateur de la RCP' }, m.organiser),
        participant('REFB', { text: 'Médecin demandeur' }, form.referringPhysician),
        form.generalPractitioner === undefined
          ? el(
              'participant',
              { typeCode: 'INF' },
              el('functionCode', codeAttrs(FUNCTION_GP)),
              el('time', { nullFlavor: 'UNK' }),
              el('associatedEntity', { classCode: 'PROV', nullFlavor: 'NI' }),
            )
          : participant('INF', FUNCTION_GP, form.generalPractitioner),
        ...participants.map((p) =>
          participant('PRF', p.quorum ? FUNCTION_CARE_TEAM : FUNCTION_CORRESPONDENT, p),
        ),
      ],
      documentationOf: [
        el(
          'documentationOf',
          {},
          el(
            'serviceEvent',
            { classCode: 'ACT' },
            el(
              'code',
              {
                code: '39',
                displayName: 'Réunion de Concertation Pluridisciplinaire (RCP)',
                codeSystem: '1.2.250.1.213.3.3.13',
                codeSystemName: 'TRE_R213-ModePriseEnCharge',
              },
              el('originalText', {}, title),
            ),
            el('effectiveTime', {}, el('low', { value: m.date })),
            el('performer', { typeCode: 'PRF' }, assignedEntity(m.organiser)),
          ),
        ),
        el(
          'documentationOf',
          {},
          el(
            'serviceEvent',
            { classCode: 'ACT' },
            isCoded(form.diagnosis.topography)
              ? el('code', codeAttrs(form.diagnosis.topography))
              : el(
                  'code',
                  codeAttrs(taAsip('GEN-243', 'Topographie')),
                  el('originalText', {}, form.diagnosis.topography.text),
                ),
          ),
        ),
      ],
      componentOf: el(
        'componentOf',
        {},
        el(
          'encompassingEncounter',
          {},
          ii({ root: '1.2.250.1.161.1.20.1.1', extension: m.network.id }),
          ii({ root: '1.2.250.1.161.1.20.2.1', extension: m.organiserId.id }),
          ii({ root: '1.2.250.1.161.1.20.3.1', extension: m.committee.id }),
          m.committee.sessionId !== undefined &&
            ii({ root: '1.2.250.1.213.1.1.9', extension: m.committee.sessionId }),
          // An RCP discusses the file in the patient's absence: a "virtual" encounter.
          el('code', { code: 'VR', displayName: 'Virtuelle', codeSystem: '2.16.840.1.113883.5.4' }),
          el('effectiveTime', {}, el('low', { value: m.date })),
          facilityLocation(m.site),
        ),
      ),
    },
    [
      reasonSection(form, nextId),
      discoverySection(form, nextId),
      diagnosisSection(form.diagnosis, nextId),
      section({
        templates: ['1.3.6.1.4.1.19376.1.5.3.1.1.13.2.7', '1.2.250.1.213.1.1.2.25'],
        code: loinc('18733-6', 'Note de progression'),
        title: 'ÉTAT DU PATIENT',
        text: narrative(paragraphs(form.progressNote ?? 'Non renseigné.')),
      }),
      section({
        templates: ['1.3.6.1.4.1.19376.1.5.3.1.3.4', '1.2.250.1.213.1.1.2.130'],
        code: loinc('10164-2', 'Histoire de la maladie'),
        title: 'HISTOIRE DE LA MALADIE',
        text: narrative(paragraphs(form.clinicalSummary)),
      }),
      fileStatusSection(form, nextId),
      carePlanSection(form, nextId),
      frameSection(form, nextId),
      documentStatusSection(form.status, form.statusDate, nextId),
    ],
  );
}

function cdValue(value: CodedOrText, ...children: Xml[]): Xml {
  return cd('value', value, { 'xsi:type': 'CD' }, ...children);
}

const NATURE: Readonly<Record<RcpForm['meeting']['nature'], Coded>> = {
  organ: taAsip('ORG-117', 'RCP Appareil - Organes'),
  transversal: taAsip('ORG-132', 'RCP Transversale et de soins de support'),
};

function reasonSection(form: RcpForm, nextId: () => Xml): Xml {
  const m = form.meeting;
  return section({
    templates: ['1.3.6.1.4.1.19376.1.5.3.1.3.1', '1.3.6.1.4.1.19376.1.5.3.1.3.2', '1.2.250.1.213.1.1.2.128'],
    code: loinc('42349-1', 'Raison de la recommandation'),
    title: 'TYPE DE RCP / MOTIF DE LA RCP',
    text: narrative(
      narrativeTable('Type de RCP', [
        ['Nature de la discussion', NATURE[m.nature].displayName, 'nature-discussion'],
        ['Appareil', label(m.apparatus), 'appareil'],
        ...(m.organ === undefined ? [] : [['Organe', label(m.organ), 'organe'] as [string, string, string]]),
      ]),
      el('paragraph', {}, 'Question posée à la RCP : ', el('content', { ID: 'question' }, form.question)),
    ),
    entries: [
      simpleObservation({
        id: nextId(),
        code: taAsip('GEN-098', 'Nature de la discussion'),
        textRef: 'nature-discussion',
        value: el('value', { 'xsi:type': 'CD', ...codeAttrs(NATURE[m.nature]) }),
        relationships: [
          el(
            'entryRelationship',
            { typeCode: 'SUBJ' },
            simpleObservation({
              id: nextId(),
              code: taAsip('ORG-118', 'Appareil concerné'),
              textRef: 'appareil',
              value: cdValue(m.apparatus),
              relationships:
                m.organ === undefined
                  ? []
                  : [
                      el(
                        'entryRelationship',
                        { typeCode: 'REFR' },
                        simpleObservation({
                          id: nextId(),
                          code: taAsip('ORG-119', 'Organe'),
                          textRef: 'organe',
                          value: cdValue(m.organ),
                        }),
                      ),
                    ],
            }),
          ),
        ],
      }),
      el(
        'observation',
        { classCode: 'OBS', moodCode: 'EVN', negationInd: false },
        ['2.16.840.1.113883.10.20.1.28', '1.3.6.1.4.1.19376.1.5.3.1.4.5', '1.2.250.1.213.1.1.3.37'].map(
          (root) => el('templateId', { root }),
        ),
        nextId(),
        el('code', {
          code: '55607006',
          displayName: 'problème',
          codeSystem: SNOMED_CT,
          codeSystemName: 'SNOMED CT',
        }),
        el('text', {}, el('reference', { value: '#question' })),
        el('statusCode', { code: 'completed' }),
        el('effectiveTime', {}, el('low', { value: m.date })),
        el(
          'value',
          { 'xsi:type': 'CD', nullFlavor: 'NA' },
          el('originalText', {}, el('reference', { value: '#question' })),
        ),
      ),
    ],
  });
}

function discoverySection(form: RcpForm, nextId: () => Xml): Xml {
  const screening = form.fromScreening;
  return section({
    templates: [
      '1.3.6.1.4.1.19376.1.5.3.1.1.21.2.9',
      '1.3.6.1.4.1.19376.1.7.3.1.1.13.7',
      '1.2.250.1.213.1.1.2.163',
    ],
    code: loinc('42545-4', 'Evènements observés'),
    title: 'MODE DE DÉCOUVERTE DU CANCER',
    text: narrative(
      narrativeTable('Mode de découverte du cancer', [
        [
          'Patient issu du dépistage',
          screening === undefined ? 'Non renseigné' : screening ? 'Oui' : 'Non',
          'depistage',
        ],
      ]),
    ),
    entries:
      screening === undefined
        ? []
        : [
            simpleObservation({
              id: nextId(),
              code: loinc('63921-1', 'Dépistage du cancer'),
              textRef: 'depistage',
              value: booleanValue(screening),
            }),
          ],
  });
}

function tnmValue(value: CodedOrText, edition: string | undefined): Xml {
  if (!isCoded(value)) return cdValue(value);
  return el('value', {
    'xsi:type': 'CD',
    ...codeAttrs({ codeSystemName: 'TNM_UICC', ...value }),
    codeSystemVersion: edition,
  });
}

function diagnosisSection(d: Diagnosis, nextId: () => Xml): Xml {
  const tnm = d.tnm;
  const part = (code: string, name: string, value: CodedOrText, ref: string): Xml =>
    el(
      'entryRelationship',
      { typeCode: 'COMP' },
      simpleObservation({
        id: nextId(),
        code: loinc(code, name),
        textRef: ref,
        value: tnmValue(value, tnm.edition),
      }),
    );
  const stageQualifiers: Xml[] = [
    tnm.stage !== undefined &&
      el(
        'qualifier',
        {},
        el('name', codeAttrs(loinc('21909-7', 'Stade clinique'))),
        isCoded(tnm.stage)
          ? el('value', { 'xsi:type': 'CD', ...codeAttrs({ codeSystemName: 'TNM_UICC', ...tnm.stage }) })
          : cd('value', tnm.stage, { 'xsi:type': 'CD' }),
      ),
    tnm.edition !== undefined &&
      el(
        'qualifier',
        {},
        el('name', codeAttrs(loinc('21917-0', 'Version TNM Classification'))),
        el('value', {
          'xsi:type': 'CD',
          code: tnm.edition,
          displayName: `TNM_UICC ${tnm.edition}e édition`,
          codeSystem: TNM_UICC,
          codeSystemName: 'TNM_UICC',
        }),
      ),
  ].filter((q): q is Xml => q !== false);
  const topography = d.topography;
  return section({
    templates: [
      '2.16.840.1.113883.10.20.1.11',
      '1.3.6.1.4.1.19376.1.5.3.1.3.6',
      '1.3.6.1.4.1.19376.1.7.3.1.3.14.1',
      '1.2.250.1.213.1.1.2.27',
    ],
    code: loinc('72135-7', 'Diagnostic du cancer'),
    title: 'TUMEUR',
    text: narrative(
      narrativeTable(
        'Tumeur primitive',
        [
          ['Date du diagnostic initial', displayDate(d.date)],
          ['Topographie', withCode(topography, 'CIM-10'), 'topographie'],
          ...(d.laterality === undefined
            ? []
            : [['Latéralité', d.laterality.displayName] as [string, string]]),
          ['Morphologie', withCode(d.morphology, 'CIM-O-3'), 'morphologie'],
          ...(tnm.stage === undefined ? [] : [['Stade', withCode(tnm.stage, 'TNM')] as [string, string]]),
          ['TNM (T)', withCode(tnm.t, 'TNM'), 'tnm-t'],
          ['TNM (N)', withCode(tnm.n, 'TNM'), 'tnm-n'],
          ['TNM (M)', withCode(tnm.m, 'TNM'), 'tnm-m'],
          ...(d.comment === undefined ? [] : [['Commentaire', d.comment] as [string, string]]),
        ],
        'tumeur-primitive',
      ),
    ),
    entries: [
      el(
        'act',
        { classCode: 'ACT', moodCode: 'EVN' },
        [
          '2.16.840.1.113883.10.20.1.27',
          '1.3.6.1.4.1.19376.1.5.3.1.4.5.1',
          '1.3.6.1.4.1.19376.1.5.3.1.4.5.2',
          '1.2.250.1.213.1.1.3.39',
          '1.2.250.1.213.1.1.3.39.1',
        ].map((root) => el('templateId', { root })),
        nextId(),
        el('code', { nullFlavor: 'NA' }),
        el('statusCode', { code: 'active' }),
        el('effectiveTime', {}, el('low', { value: d.date })),
        el(
          'entryRelationship',
          { typeCode: 'SUBJ', inversionInd: false },
          el(
            'observation',
            { classCode: 'OBS', moodCode: 'EVN', negationInd: false },
            [
              '2.16.840.1.113883.10.20.1.28',
              '1.3.6.1.4.1.19376.1.5.3.1.4.5',
              '1.2.250.1.213.1.1.3.37',
              '1.3.6.1.4.1.19376.1.7.3.1.4.14.1',
              '1.2.250.1.213.1.1.3.113',
            ].map((root) => el('templateId', { root })),
            nextId(),
            el('code', {
              code: '282291009',
              displayName: 'interprétation diagnostique',
              codeSystem: SNOMED_CT,
              codeSystemName: 'SNOMED CT',
            }),
            el('text', {}, el('reference', { value: '#tumeur-primitive' })),
            el('statusCode', { code: 'completed' }),
            el('effectiveTime', {}, el('low', { value: d.date })),
            cdValue(d.morphology),
            isCoded(topography)
              ? el(
                  'targetSiteCode',
                  codeAttrs({
                    codeSystemName: topography.codeSystem === ICD10 ? 'CIM-10' : undefined,
                    ...topography,
                  }),
                  d.laterality !== undefined &&
                    el(
                      'qualifier',
                      {},
                      el('name', codeAttrs(loinc('20228-3', 'Latéralité'))),
                      el('value', codeAttrs(d.laterality)),
                    ),
                )
              : cd('targetSiteCode', topography),
            el(
              'entryRelationship',
              { typeCode: 'SUBJ', inversionInd: false },
              el(
                'observation',
                { classCode: 'OBS', moodCode: 'EVN', negationInd: false },
                el('templateId', { root: '1.3.6.1.4.1.19376.1.7.3.1.4.14.2' }),
                el('code', codeAttrs(loinc('75620-5', 'Stade TNM Clinique'))),
                el('statusCode', { code: 'completed' }),
                el('effectiveTime', {}, el('low', { value: d.date })),
                stageQualifiers.length === 0
                  ? el('value', { 'xsi:type': 'CD', nullFlavor: 'NA' })
                  : el('value', { 'xsi:type': 'CD' }, stageQualifiers),
                part('21905-5', 'TNM Clinique T', tnm.t, 'tnm-t'),
                part('21906-3', 'TNM Clinique N', tnm.n, 'tnm-n'),
                part('21907-1', 'TNM Clinique M', tnm.m, 'tnm-m'),
              ),
            ),
          ),
        ),
      ),
    ],
  });
}

function withCode(value: CodedOrText, system: string): string {
  return isCoded(value) ? `${value.code} [${system}] ${value.displayName}` : value.text;
}

const QUORUM: Readonly<Record<RcpForm['quorum'], Coded>> = {
  reached: taAsip('ORG-126', 'Quorum atteint'),
  'not-reached': taAsip('ORG-133', 'Quorum non atteint'),
  unknown: taAsip('GEN-010', 'Ne sait pas'),
};
const CASE_STATUS: Readonly<Record<RcpForm['caseStatus'], Coded>> = {
  registered: taAsip('ORG-128', 'Cas enregistré'),
  discussed: taAsip('ORG-134', 'Cas discuté'),
};

function fileStatusSection(form: RcpForm, nextId: () => Xml): Xml {
  const observation = (code: Coded, ref: string, value: Xml): Xml =>
    el('component', {}, simpleObservation({ id: nextId(), code, textRef: ref, value }));
  return section({
    templates: ['1.2.250.1.213.1.1.2.33'],
    code: loinc('21874-3', 'Statut du dossier présenté en RCP'),
    title: 'STATUT DU DOSSIER',
    text: narrative(
      narrativeTable('Statut du dossier présenté en RCP', [
        ['Dossier complet', form.fileComplete ? 'Oui' : 'Non', 'dossier-complet'],
        ['Quorum', QUORUM[form.quorum].displayName, 'quorum'],
        ['Statut du cas présenté', CASE_STATUS[form.caseStatus].displayName, 'statut-cas'],
      ]),
    ),
    entries: [
      el(
        'organizer',
        { classCode: 'CLUSTER', moodCode: 'EVN' },
        el('templateId', { root: '1.2.250.1.213.1.1.3.7' }),
        el('code', codeAttrs(taAsip('GEN-099', 'Information RCP'))),
        el('statusCode', { code: 'completed' }),
        observation(taAsip('GEN-100', 'Dossier complet'), 'dossier-complet', booleanValue(form.fileComplete)),
        observation(
          taAsip('ORG-125', 'Quorum RCP'),
          'quorum',
          el('value', { 'xsi:type': 'CD', ...codeAttrs(QUORUM[form.quorum]) }),
        ),
        observation(
          taAsip('ORG-127', 'Statut du cas présenté'),
          'statut-cas',
          el('value', { 'xsi:type': 'CD', ...codeAttrs(CASE_STATUS[form.caseStatus]) }),
        ),
      ),
    ],
  });
}

/** A proposed treatment: coded from JDV_TypeTraitement, or "other treatment" specified by its narrative. */
function treatmentCode(type: CodedOrText, ref: string): Xml {
  const reference = el('originalText', {}, el('reference', { value: `#${ref}` }));
  return el('code', codeAttrs(isCoded(type) ? type : OTHER_TREATMENT), reference);
}

function carePlanSection(form: RcpForm, nextId: () => Xml): Xml {
  const p = form.proposal;
  return section({
    templates: CARE_PLAN_TEMPLATES,
    code: loinc('18776-5', 'Plan de soins'),
    title: 'PROPOSITION DE LA RCP',
    text: narrative(
      paragraphs(p.text),
      p.treatments.length > 0 &&
        el(
          'list',
          {},
          p.treatments.map((t, i) =>
            el('item', {}, el('content', { ID: `traitement-${i + 1}` }, treatmentLabel(t))),
          ),
        ),
    ),
    entries: p.treatments.map((t, i) =>
      el(
        'procedure',
        { classCode: 'PROC', moodCode: 'INT', negationInd: false },
        ['2.16.840.1.113883.10.20.1.25', '1.3.6.1.4.1.19376.1.5.3.1.4.19', '1.2.250.1.213.1.1.3.62'].map(
          (root) => el('templateId', { root }),
        ),
        nextId(),
        treatmentCode(t.type, `traitement-${i + 1}`),
        el('text', {}, el('reference', { value: `#traitement-${i + 1}` })),
        el('statusCode', { code: 'active' }),
        t.start === undefined ? el('effectiveTime', { nullFlavor: 'UNK' }) : period(t.start, t.end),
        el('priorityCode', {}, el('originalText', {}, String(i + 1))),
      ),
    ),
  });
}

function frameSection(form: RcpForm, nextId: () => Xml): Xml {
  const p = form.proposal;
  return section({
    templates: ['1.2.250.1.213.1.1.2.175'],
    code: loinc('35510-7', 'Essais cliniques - Informations générales'),
    title: 'CADRE DE LA PROPOSITION THÉRAPEUTIQUE',
    text: narrative(
      narrativeTable('Cadre de la proposition thérapeutique', [
        ['Référentiel de pratique clinique', p.guideline ?? 'Non renseigné', 'referentiel'],
        ["Proposition d'inclusion dans un essai clinique", p.clinicalTrial ? 'Oui' : 'Non', 'essai-clinique'],
      ]),
    ),
    entries: [
      p.guideline !== undefined &&
        simpleObservation({
          id: nextId(),
          code: taAsip('MED-249', 'Recommandation/référentiel de pratique clinique'),
          textRef: 'referentiel',
          value: el(
            'value',
            { 'xsi:type': 'CD', nullFlavor: 'OTH' },
            el('originalText', {}, el('reference', { value: '#referentiel' })),
          ),
        }),
      simpleObservation({
        id: nextId(),
        code: taAsip('MED-250', "Proposition d'inclusion dans un essai clinique"),
        textRef: 'essai-clinique',
        value: booleanValue(p.clinicalTrial),
      }),
    ].filter((e): e is Xml => e !== false),
  });
}
