// Clinical readers against the national agency's own examples, read where ONCO_ANS_KIT points
// (CI: ../shared/ans). The kit is the oracle and is never copied into the repository.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { readCdaReport } from '../../transformers/cda-report.ts';
import { readHl7Report } from '../../transformers/hl7v2-report.ts';
import { readReport, clinicalStepSchema } from '../../transformers/clinical-steps.ts';
import { readOptions } from '../../transformers/contract.ts';
import type { ClinicalReport } from '../../transformers/clinical-report.ts';

const kit = process.env.ONCO_ANS_KIT;

describe('ANS kit: clinical documents (CR-GM, CDA over HL7 v2)', function () {
  before(function () {
    if (kit === undefined) {
      console.log(
        '    skipped: ONCO_ANS_KIT is not set (point it at the folder holding TestContenuCDA-3-0/ and hl7v2-examples/, e.g. ../shared/ans)',
      );
      this.skip();
    }
  });

  const crgm = (name: string): ClinicalReport =>
    readCdaReport(
      readFileSync(
        path.join(kit as string, 'TestContenuCDA-3-0/ExemplesCDA', `CANCER-CR-GM_2022.01_${name}.xml`),
      ),
      'pathology',
      { acceptTestIns: true },
    );

  it('CR-GM "analyse réalisée": every variant with its gene, reference sequence and HGVS changes', () => {
    const report = crgm('AnalyseRealisee');
    assert.equal(report.kind, 'molecular', 'the CR-GM template makes it a molecular result');
    assert.equal(report.template, '1.2.250.1.213.1.1.1.32');
    assert.equal(report.documentType?.code, '51969-4');
    const variants = report.variants.map((v) => [
      v.gene,
      v.referenceSequence,
      v.dnaChange,
      v.proteinChange,
      v.classification?.code,
    ]);
    assert.deepEqual(variants, [
      ['EGFR', 'NM_005228.3', 'c.2573T>G', 'p.Leu858Arg', 'MED-536'],
      ['MET', 'NM_001127500.1', 'c.2942-2A>G', "Variant d'épissage", 'MED-537'],
      ['NRAS', 'NM_002524.3', undefined, undefined, 'MED-538'],
      ['KRAS', undefined, undefined, undefined, 'MED-539'],
      ['KIT', undefined, undefined, undefined, 'MED-540'],
      ['EGFR', undefined, undefined, 'p.L858R', 'MED-542'],
      ['MET', undefined, undefined, undefined, 'MED-542'],
      ['NRAS', undefined, undefined, undefined, 'MED-542'],
      ['HRAS', undefined, undefined, undefined, 'MED-543'],
      ['PDGFRA', undefined, undefined, undefined, 'MED-545'],
    ]);
    const egfr = report.variants[5];
    assert.deepEqual(
      egfr?.interpretation?.map((i) => [i.code, i.system]),
      [
        ['83185005', '2.16.840.1.113883.6.96'],
        ['L01E', '2.16.840.1.113883.6.73'],
      ],
    );
    assert.deepEqual(report.genesAnalysed, ['AKT1', 'ALK', 'BRAF']);
    assert.deepEqual(
      report.findings.filter((f) => f.kind === 'adicap').map((f) => f.code),
      ['B', 'RB', 'A7A8', 'H'],
    );
    assert.match(report.conclusion ?? '', /^Présence de la mutation c\.2573T>G du gène EGFR/);
    assert.deepEqual(report.document, {
      status: 'final',
      uniqueId: '1.2.250.1.213.1.1.1.32.2022.2.1',
      setId: '1.2.250.1.213.1.1.1.32.2022.2',
      version: 1,
    });
    assert.deepEqual(report.patient.ins, {
      matricule: '279035121518989',
      oid: '1.2.250.1.213.1.4.10',
      kind: 'INS-NIR-TEST',
    });
    assert.deepEqual(report.patient.identifiers, [
      {
        value: '1234567890121',
        type: 'PI',
        namespace: '',
        authority: '1.2.3.4.567.8.9.10',
        authorityType: 'ISO',
      },
    ]);
    assert.equal(report.patient.birthName, 'PAT-TROIS');
    assert.equal(report.patient.birthDate, '1979-03-28');
    assert.deepEqual(report.author, { rpps: '800100200300', name: 'Michel MARTIN' });
    assert.deepEqual(report.lab, {
      finess: '490012345',
      name: "Laboratoire de génétique moléculaire d'Angers",
    });
    assert.equal(report.reportDate, '2018-01-23T12:45:00+01:00');
    assert.deepEqual(report.order, { placerNumber: '11223345566778', placerNamespace: '1.2.250.2.21.1.1.1' });
  });

  it('CR-GM "analyse non réalisée": no variant, the genes of the panel listed', () => {
    const report = crgm('AnalyseNonRealisee');
    assert.deepEqual(report.variants, []);
    assert.deepEqual(report.genesAnalysed, ['AKT1', 'ALK', 'BRAF']);
    assert.equal(report.document.version, 2);
  });

  it('refuses the examples’ test INS unless the channel accepts it', () => {
    const file = path.join(
      kit as string,
      'TestContenuCDA-3-0/ExemplesCDA/CANCER-CR-GM_2022.01_AnalyseRealisee.xml',
    );
    assert.throws(
      () =>
        readReport(
          { content: readFileSync(file), contentType: 'text/xml', meta: {} },
          'molecular',
          readOptions(clinicalStepSchema, {}),
        ),
      (e: Error & { code?: string; hint?: string }) =>
        e.code === 'REPORT_TEST_INS' && /ONCO_ACCEPT_TEST_INS=true/.test(e.hint ?? ''),
    );
  });

  const transmissions = (): string[] =>
    [
      path.join(kit as string, 'hl7v2-examples/Vague 2/Trans_Doc-CDA-HL7V2'),
      path.join(kit as string, 'hl7v2-examples/Volets/TRANS_DOC_CDA_HL7V2'),
    ]
      .flatMap((dir) => readdirSync(dir, { recursive: true, encoding: 'utf8' }).map((f) => path.join(dir, f)))
      .filter((f) => /message_/.test(path.basename(f)));

  it('reads every ORU and MDM example: document extracted, status from OBX-11', () => {
    const files = transmissions();
    assert.equal(files.length, 12, 'the kit holds 12 document transmissions (4 MDM, 8 ORU)');
    for (const file of files) {
      const report = readHl7Report(readFileSync(file), 'pathology', { acceptTestIns: true });
      const name = path.basename(file);
      const expected = /_DEL_/.test(name) ? 'deletion' : /_RPLC_/.test(name) ? 'replacement' : 'final';
      assert.equal(report.document.status, expected, name);
      assert.equal(report.format, name.includes('MDM') ? 'hl7v2-mdm' : 'hl7v2-oru', name);
      assert.equal(report.patient.ins?.matricule, '279035121518989', name);
      assert.ok(report.attachments.length >= 1, `${name}: the document is extracted`);
      if (name.includes('ORU')) {
        assert.deepEqual(report.order, {
          placerNumber: '98765431',
          placerNamespace: 'Nephro',
          fillerNumber: '1001-E1',
        });
      }
    }
  });

  it('reads the embedded CDA: its ids, the replaced document and its PDF copy', () => {
    const vague2 = path.join(
      kit as string,
      'hl7v2-examples/Vague 2/Trans_Doc-CDA-HL7V2/TRANSMISSION_DOCS_CDA_EN_HL7V2_V2.1',
    );
    const read = (f: string): ClinicalReport =>
      readHl7Report(readFileSync(path.join(vague2, f)), 'pathology', { acceptTestIns: true });

    const initial = read('ORU/Transmission initiale ORU/message_ORU_CR_Bio_INIT_N3_SEGUR.hl7');
    assert.deepEqual(initial.document, {
      status: 'final',
      uniqueId: '1.2.250.1.213.1.1.9',
      setId: '1.2.250.1.213.1.1.9',
      version: 1,
    });
    assert.deepEqual(
      initial.attachments.map((a) => a.mediaType),
      ['text/xml', 'image/png', 'application/pdf'],
    );
    const pdf = Buffer.from(initial.attachments[2]?.base64 ?? '', 'base64');
    assert.equal(pdf.subarray(0, 5).toString(), '%PDF-');

    const replacement = read('ORU/Remplacement ORU/message_ORU_CR_Bio_RPLC_N3_SEGUR.hl7');
    assert.equal(replacement.document.status, 'replacement');
    assert.equal(replacement.document.replaces, '1.2.250.1.213.1.1.12');
    assert.equal(replacement.document.version, 2);

    const mdmReplacement = read('MDM/Remplacement MDM/message_MDM_CR_Radio_RPLC_N1.er7');
    assert.equal(mdmReplacement.document.status, 'replacement');
    assert.equal(mdmReplacement.document.uniqueId, '1.2.250.1.71.4.2.2.120456789.71024000082', 'TXA-12');
    assert.equal(mdmReplacement.document.replaces, '1.2.250.1.71.4.2.2.120456789.71024000081', 'TXA-13');
    assert.deepEqual(mdmReplacement.author, { rpps: '801234564895', name: 'Thomas Eric' });
    assert.deepEqual(mdmReplacement.lab, { finess: '300017985', name: 'Organisation-Y' });

    const mdmDeletion = read('MDM/Suppression MDM/message_MDM_CR_Radio_DEL_N1.er7');
    assert.equal(mdmDeletion.document.status, 'deletion');
    assert.equal(mdmDeletion.document.uniqueId, '1.2.250.1.71.4.2.2.120456789.71024000082');
  });
});
