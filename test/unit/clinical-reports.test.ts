// The pathology and molecular steps on our own fixtures (test/fixtures/clinical, written by us,
// fictitious patient) and on hostile input; the OML^O21 writer and the order number read back.
import assert from 'node:assert/strict';
import {
  createReadStream,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  pathologyStep,
  molecularStep,
  readReport,
  clinicalStepSchema,
} from '../../transformers/clinical-steps.ts';
import { REPORT_CONTENT_TYPE } from '../../transformers/clinical-report.ts';
import type { ClinicalReport } from '../../transformers/clinical-report.ts';
import { writeOmlO21 } from '../../transformers/oml-o21.ts';
import type { MolecularOrder } from '../../transformers/oml-o21.ts';
import { parse, get } from '../../transformers/hl7v2.ts';
import { StepError, readOptions } from '../../transformers/contract.ts';
import type { StepInput, MetaValue } from '../../transformers/contract.ts';
import { builtinRegistry } from '../../channels/builtins.ts';

// Options as a channel file gives them, defaulted by the schema: the agency's test INS accepted.
const testChannel = readOptions(clinicalStepSchema, { acceptTestIns: true });
const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/clinical');
const fixture = (name: string): Buffer => readFileSync(path.join(fixtures, name));
const input = (content: Buffer, meta: Record<string, MetaValue> = {}): StepInput => ({
  content,
  contentType: 'application/octet-stream',
  meta,
});

async function run(kind: 'pathology' | 'molecular', content: Buffer, meta: Record<string, MetaValue> = {}) {
  const step = (kind === 'pathology' ? pathologyStep : molecularStep).create(testChannel);
  const out = await step(input(content, meta));
  assert.ok(out !== null);
  assert.equal(out.contentType, REPORT_CONTENT_TYPE);
  return { report: JSON.parse(out.content.toString('utf8')) as ClinicalReport, meta: out.meta };
}

function refusedWith(code: string, content: Buffer, meta: Record<string, MetaValue> = {}): StepError {
  let caught: unknown;
  try {
    readReport(input(content, meta), 'pathology', testChannel);
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof StepError, `expected a StepError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.ok((caught.hint ?? '').length > 10, 'the sender is told what to do');
  return caught;
}

const ORU_HEAD =
  'MSH|^~\\&|LAB|LABO|ONCO-RELAY|DCC|20260115103000||ORU^R01^ORU_R01|X1|P|2.5|||||FRA|UNICODE UTF-8\r' +
  'PID|1||IPP-000123^^^CHU-DEMO&310000001&M^PI||FICTIF^Camille^^^^^L||19790328|F\r' +
  'OBR|1|||60568-3^CR ACP^LN\r';

describe('clinical reports: pathology and molecular steps', () => {
  it('are registered as steps `pathology` and `molecular`', () => {
    const registry = builtinRegistry();
    assert.equal(registry.step('pathology').type, 'pathology');
    assert.equal(registry.step('molecular').type, 'molecular');
  });

  it('CR-ACP (CDA): patient, ids, replacement, author, lab, specimen, ADICAP, ICD-O-3, TNM, SNOMED CT, conclusion', async () => {
    const { report, meta } = await run('pathology', fixture('cr-acp.xml'), { fileName: 'cr-acp.xml' });
    assert.equal(report.format, 'cda');
    assert.equal(report.kind, 'pathology');
    assert.equal(report.template, '1.2.250.1.213.1.1.1.57');
    assert.deepEqual(report.patient, {
      identifiers: [
        {
          value: 'IPP-000123',
          type: 'PI',
          namespace: '',
          authority: '1.2.250.1.999.1.1',
          authorityType: 'ISO',
        },
      ],
      ins: { matricule: '279035121518989', oid: '1.2.250.1.213.1.4.10', kind: 'INS-NIR-TEST' },
      birthName: 'FICTIF',
      usedName: 'FICTIF-USAGE',
      firstGivenName: 'Camille',
      givenNames: ['Camille', 'Marie'],
      birthDate: '1979-03-28',
      sex: 'F',
      birthPlace: '63220',
    });
    assert.deepEqual(report.document, {
      status: 'replacement',
      uniqueId: '1.2.250.1.999.2.1^CRACP-2026-0042-V2',
      setId: '1.2.250.1.999.2.1^CRACP-2026-0042',
      version: 2,
      replaces: '1.2.250.1.999.2.1^CRACP-2026-0042-V1',
    });
    assert.deepEqual(report.author, { rpps: '810001234567', name: 'Alex PATHOLOGISTE' });
    assert.deepEqual(report.lab, { finess: '310000002', name: 'Laboratoire ACP Demo' });
    assert.deepEqual(report.specimens, [
      {
        id: '1.2.250.1.999.4^B26-0042-A',
        type: { code: 'TUM', system: '1.2.250.1.213.1.1.4.322', display: 'Tissu' },
      },
    ]);
    assert.deepEqual(
      report.findings.map((f) => [f.kind, f.code]),
      [
        ['adicap', 'BHDCA7G0'],
        ['icdo3-topography', 'C18.7'],
        ['icdo3-morphology', '8140/3'],
        ['tnm', 'pT3'],
        ['tnm', 'pN0'],
        ['adicap', 'B'],
        ['snomed-ct', '35917007'],
      ],
    );
    assert.equal(
      report.conclusion,
      'Adénocarcinome lieberkühnien moyennement différencié du côlon sigmoïde. Stade pT3 N0 (0/14).',
    );
    assert.equal(report.reportDate, '2026-01-15T10:30:00+01:00');
    assert.deepEqual(
      Buffer.from(report.original.base64 ?? '', 'base64'),
      fixture('cr-acp.xml'),
      'original bytes kept',
    );
    assert.equal(meta.reportFormat, 'cda');
    assert.equal(meta.documentStatus, 'replacement');
    assert.equal(meta.fileName, 'cr-acp.xml');
  });

  it('HPRIM Santé: separators from H, patient, order, specimen, text, conclusion and coded findings', async () => {
    const { report } = await run('pathology', fixture('report.hpr'));
    assert.equal(report.format, 'hprim-sante');
    assert.deepEqual(report.patient.identifiers, [
      { value: 'IPP-000123', type: 'PI', namespace: '', authority: '', authorityType: '' },
      { value: 'LAB-778', type: 'LAB', namespace: '', authority: '', authorityType: '' },
    ]);
    assert.equal(report.patient.birthName, 'FICTIF');
    assert.equal(report.patient.usedName, 'FICTIF-USAGE');
    assert.equal(report.patient.firstGivenName, 'Camille');
    assert.equal(report.patient.birthDate, '1979-03-28');
    assert.equal(report.patient.sex, 'F');
    assert.deepEqual(report.lab, { finess: '310000002', name: 'Laboratoire ACP Demo' });
    assert.deepEqual(report.order, { placerNumber: 'CMD-2026-0042' });
    assert.equal(report.reportDate, '2026-01-15T10:30:00');
    assert.deepEqual(report.specimens, [
      { type: { code: 'BIOPSIE', display: 'Biopsie colique' }, collected: '2026-01-12T08:30:00' },
    ]);
    assert.equal(report.conclusion, 'Adénocarcinome lieberkühnien moyennement différencié, ^ sigmoïde.');
    assert.equal(report.text, 'Deux fragments biopsiques de 2 mm.\nPrélèvement reçu fixé.');
    assert.deepEqual(
      report.findings.map((f) => [f.kind, f.code]),
      [
        ['adicap', 'BHDCA7G0'],
        ['icdo3-topography', 'C18.7'],
        ['icdo3-morphology', '8140/3'],
      ],
    );

    // The field separator is whatever H says: the same file with `#` reads the same.
    const hashed = Buffer.from(fixture('report.hpr').toString('utf8').replaceAll('|', '#'), 'utf8');
    const again = (await run('pathology', hashed)).report;
    assert.deepEqual({ ...again, original: undefined }, { ...report, original: undefined });
  });

  it('HPRIM Médecin (ISO 8859-1): header, text and the LAB block', async () => {
    const { report } = await run('pathology', fixture('report-medecin.txt'));
    assert.equal(report.format, 'hprim-medecin');
    assert.deepEqual(report.patient, {
      identifiers: [{ value: 'IPP-000123', type: 'PI', namespace: '', authority: '', authorityType: '' }],
      birthName: 'FICTIF',
      firstGivenName: 'Camille',
      givenNames: ['Camille'],
      birthDate: '1979-03-28',
    });
    assert.equal(report.reportDate, '2026-01-15');
    assert.deepEqual(report.order, { placerNumber: 'CMD-2026-0042' });
    assert.match(report.text ?? '', /^Compte rendu d'anatomie et cytologie pathologiques\n/);
    assert.doesNotMatch(report.text ?? '', /RES\|/, 'the LAB block is not part of the text');
    assert.equal(report.conclusion, 'Adénocarcinome lieberkühnien moyennement différencié');
  });

  it('PDF with a JSON sidecar: the PDF kept whole, the patient from the sidecar', async () => {
    const pdf = fixture('report.pdf');
    const { report } = await run('pathology', pdf, {
      fileName: 'report.pdf',
      sidecar: fixture('report.json').toString(),
    });
    assert.equal(report.format, 'pdf');
    assert.deepEqual(report.patient.identifiers, [
      { value: 'IPP-000123', type: 'PI', namespace: '', authority: '310000001', authorityType: 'M' },
    ]);
    assert.equal(report.patient.birthName, 'FICTIF');
    assert.deepEqual(report.author, { rpps: '810001234567' });
    assert.deepEqual(report.lab, { finess: '310000002' });
    assert.equal(report.document.uniqueId, '1.2.250.1.999.3.2');
    assert.equal(report.attachments.length, 1);
    assert.equal(report.attachments[0]?.mediaType, 'application/pdf');
    assert.deepEqual(Buffer.from(report.attachments[0]?.base64 ?? '', 'base64'), pdf);
  });

  it('PDF with an HL7 sidecar (MDM without the document)', async () => {
    const { report } = await run('pathology', fixture('report.pdf'), {
      fileName: 'report.pdf',
      sidecar: fixture('report-sidecar.hl7').toString(),
    });
    assert.equal(report.format, 'pdf');
    assert.equal(report.patient.identifiers[0]?.authority, '310000001');
    assert.equal(report.document.uniqueId, '1.2.250.1.999.3.1');
    assert.equal(report.attachments[0]?.mediaType, 'application/pdf');
  });

  it('molecular ORU with results: variants grouped by OBX-4, specimen, conclusion, the order number', async () => {
    const { report, meta } = await run('molecular', fixture('molecular-oru.hl7'));
    assert.equal(report.format, 'hl7v2-oru');
    assert.equal(report.kind, 'molecular');
    assert.deepEqual(report.variants, [
      {
        gene: 'EGFR',
        referenceSequence: 'NM_005228.3',
        dnaChange: 'c.2573T>G',
        proteinChange: 'p.Leu858Arg',
      },
      { gene: 'KRAS', dnaChange: 'c.35G>A' },
    ]);
    assert.deepEqual(report.specimens, [
      {
        id: 'B26-0042-A',
        type: { code: 'TUM', display: 'Tissu tumoral', system: 'L' },
        collected: '2026-01-12T08:30:00',
      },
    ]);
    assert.match(report.conclusion ?? '', /^Mutation EGFR p\.Leu858Arg/);
    assert.equal(report.reportDate, '2026-01-20T14:30:00');
    assert.deepEqual(report.order, {
      placerNumber: 'CMD-MOL-0007',
      placerNamespace: 'ONCO-RELAY',
      fillerNumber: 'PLT-55',
    });
    assert.equal(meta.placerOrderNumber, 'CMD-MOL-0007');
    assert.equal(meta.variants, 2);
  });

  it('a CR-ACP inside an ORU: the CDA read, PID the patient, OBX-11 or the CDA the status', async () => {
    const cda = fixture('cr-acp.xml').toString('base64');
    // The fixture declares it replaces version 1: F cannot make it a second original.
    for (const [flag, status] of [
      ['F', 'replacement'],
      ['C', 'replacement'],
      ['D', 'deletion'],
    ] as const) {
      const message = ORU_HEAD + `OBX|1|ED|60568-3^CR ACP^LN||^TEXT^XML^Base64^${cda}||||||${flag}\r`;
      const { report } = await run('pathology', Buffer.from(message));
      assert.equal(report.format, 'hl7v2-oru');
      assert.equal(report.template, '1.2.250.1.213.1.1.1.57');
      assert.equal(report.document.status, status, `OBX-11 ${flag}`);
      assert.equal(report.document.uniqueId, '1.2.250.1.999.2.1^CRACP-2026-0042-V2');
      assert.equal(
        report.patient.identifiers[0]?.authority,
        '310000001',
        'PID-3, not the CDA, names the patient',
      );
      assert.deepEqual(
        report.findings.map((f) => f.code),
        ['BHDCA7G0', 'C18.7', '8140/3', 'pT3', 'pN0', 'B', '35917007'],
      );
      assert.deepEqual(Buffer.from(report.attachments[0]?.base64 ?? '', 'base64'), fixture('cr-acp.xml'));
    }
  });

  it('a text report in TX OBX lines and coded findings in CWE OBX', async () => {
    const message =
      ORU_HEAD +
      'OBX|1|TX|60568-3^CR^LN||Biopsie colique.~Adénocarcinome.||||||F\r' +
      'OBX|2|CWE|ADICAP^ADICAP^L||BHDCA7G0^ADENOCARCINOME^ADICAP||||||F\r' +
      'OBX|3|CWE|SNOMED^SNOMED^L||35917007^Adenocarcinoma^SCT||||||F\r';
    const { report } = await run('pathology', Buffer.from(message));
    assert.equal(report.text, 'Biopsie colique.\nAdénocarcinome.');
    assert.deepEqual(
      report.findings.map((f) => [f.kind, f.code]),
      [
        ['adicap', 'BHDCA7G0'],
        ['snomed-ct', '35917007'],
      ],
    );
  });

  describe('hostile input: refused with a clear error, no crash', () => {
    it('billion laughs and an external entity in a CDA', () => {
      refusedWith(
        'XML_DTD_REFUSED',
        Buffer.from(
          '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><ClinicalDocument>&b;</ClinicalDocument>',
        ),
      );
      refusedWith(
        'XML_DTD_REFUSED',
        Buffer.from(
          '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><ClinicalDocument>&x;</ClinicalDocument>',
        ),
      );
    });

    it('a CDA above the configured size', () => {
      const error = (() => {
        try {
          const small = readOptions(clinicalStepSchema, { acceptTestIns: true, maxXmlBytes: 2048 });
          readReport(input(fixture('cr-acp.xml')), 'pathology', small);
        } catch (e) {
          return e as StepError;
        }
        return undefined;
      })();
      assert.equal(error?.code, 'XML_TOO_LARGE');
    });

    it('a 100 MB CDA (refused by size before parsing) and a deeply nested one', () => {
      const big = Buffer.alloc(100 * 1024 * 1024, 0x20);
      big.write('<ClinicalDocument xmlns="urn:hl7-org:v3">', 0);
      assert.match(refusedWith('XML_TOO_LARGE', big).message, /104857600 bytes/);
      const deep = Buffer.from(
        `<ClinicalDocument>${'<x>'.repeat(5000)}${'</x>'.repeat(5000)}</ClinicalDocument>`,
      );
      refusedWith('XML_TOO_DEEP', deep);
    });

    it('a 100 MB CDA or HL7 file kept as a file: refused by its size from its head alone, never loaded whole', async () => {
      const dir = mkdtempSync(path.join(tmpdir(), 'onco-big-report-'));
      /** A sparse file: 100 MB on paper, its head the only bytes written; `content` must not be read. */
      const big = (name: string, head: string) => {
        const file = path.join(dir, name);
        writeFileSync(file, head);
        truncateSync(file, 100 * 1024 * 1024);
        const read = { chunks: 0 };
        const value: StepInput = {
          contentType: 'application/octet-stream',
          meta: { fileName: name },
          file: {
            path: file,
            size: statSync(file).size,
            digest: '0'.repeat(64),
            async *chunks() {
              for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024 })) {
                read.chunks++;
                yield chunk as Buffer;
              }
            },
          },
          get content(): Buffer {
            throw new Error(`the step loaded ${name} whole`);
          },
        };
        return { value, read };
      };
      const step = pathologyStep.create(testChannel);
      try {
        for (const [name, head, code] of [
          ['big.xml', '<?xml version="1.0"?><ClinicalDocument xmlns="urn:hl7-org:v3">', 'XML_TOO_LARGE'],
          ['big.hl7', ORU_HEAD, 'REPORT_TOO_LARGE'],
        ] as const) {
          const { value, read } = big(name, head);
          await assert.rejects(
            async () => step(value),
            (e: StepError) => e.code === code && /104857600 bytes/.test(e.message),
          );
          assert.equal(read.chunks, 1, `${name}: its head only`);
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('XML that is not a CDA', () => {
      assert.match(
        refusedWith('REPORT_BAD_STRUCTURE', Buffer.from('<html><body/></html>')).message,
        /<html>/,
      );
    });

    it('a "PDF" that is not one', () => {
      const error = refusedWith('REPORT_NOT_PDF', Buffer.from('MZ\x90\x00 this is an executable'), {
        fileName: 'report.pdf',
        sidecar: fixture('report.json').toString(),
      });
      assert.match(error.message, /%PDF-/);
      const truncated = fixture('report.pdf').subarray(0, 5000);
      assert.match(
        refusedWith('REPORT_NOT_PDF', truncated, { fileName: 'r.pdf', sidecar: '{}' }).message,
        /truncated/,
      );
    });

    it('a PDF without its sidecar, or with a sidecar naming no patient', () => {
      refusedWith('REPORT_BAD_SIDECAR', fixture('report.pdf'), { fileName: 'report.pdf' });
      refusedWith('REPORT_BAD_SIDECAR', fixture('report.pdf'), { sidecar: '{"patient": "x"}' });
      refusedWith('REPORT_NO_PATIENT', fixture('report.pdf'), { sidecar: '{"patient": {"birthName": "X"}}' });
      refusedWith('REPORT_BAD_SIDECAR', fixture('report.pdf'), { sidecar: '{"patient": {"ipp": "1"}}' });
    });

    it('a base64 OBX that does not decode, and a PDF OBX that is not a PDF', () => {
      const bad = ORU_HEAD + 'OBX|1|ED|60568-3^CR^LN||^TEXT^XML^Base64^PD94bWwg*!!notbase64||||||F\r';
      assert.equal(refusedWith('REPORT_BAD_BASE64', Buffer.from(bad)).location, 'OBX[1]-5');
      const afterMetadata = bad.replace(
        'OBX|1|ED',
        'OBX|1|CWE|DESTDMP^Destinataire DMP^MetaDMPMSS||Y^^expandedYes-NoIndicator||||||F\rOBX|2|ED',
      );
      assert.equal(refusedWith('REPORT_BAD_BASE64', Buffer.from(afterMetadata)).location, 'OBX[2]-5');
      const notPdf =
        ORU_HEAD +
        `OBX|1|ED|60568-3^CR^LN||^AP^PDF^Base64^${Buffer.from('hello').toString('base64')}||||||F\r`;
      refusedWith('REPORT_NOT_PDF', Buffer.from(notPdf));
    });

    it('a CDA in an OBX that carries a DTD', () => {
      const cda = Buffer.from('<!DOCTYPE x [<!ENTITY a "b">]><ClinicalDocument xmlns="urn:hl7-org:v3"/>');
      const message =
        ORU_HEAD + `OBX|1|ED|60568-3^CR^LN||^TEXT^XML^Base64^${cda.toString('base64')}||||||F\r`;
      refusedWith('XML_DTD_REFUSED', Buffer.from(message));
    });

    it('a report without a patient identifier, an unknown format, a broken HL7 message', () => {
      refusedWith(
        'REPORT_NO_PATIENT',
        Buffer.from(ORU_HEAD.replace('IPP-000123^^^CHU-DEMO&310000001&M^PI', '')),
      );
      refusedWith('REPORT_UNKNOWN_FORMAT', Buffer.from('just some words\nthat are no report'));
      refusedWith('HL7_BAD_SEGMENT', Buffer.from(ORU_HEAD + 'this line is no segment\r'));
      refusedWith(
        'REPORT_UNKNOWN_FORMAT',
        Buffer.from(ORU_HEAD.replace('ORU^R01^ORU_R01', 'ADT^A28^ADT_A05')),
      );
    });
  });
});

describe('molecular orders: OML^O21 out, the order number read back from the result', () => {
  const order: MolecularOrder = {
    orderNumber: 'CMD-MOL-0007',
    controlId: 'OML-CMD-MOL-0007-1',
    orderedAt: '2026-01-10T09:15:00+01:00',
    patient: {
      ipp: { value: 'IPP-000123', finess: '310000001' },
      ins: { matricule: '279035121518989', oid: '1.2.250.1.213.1.4.8', kind: 'INS-NIR' },
      birthName: 'FICTIF',
      firstGivenName: 'Camille',
      birthDate: '1979-03-28',
      sex: 'F',
    },
    analysis: {
      code: '51969-4',
      display: 'Recherche de mutations EGFR^KRAS',
      system: '2.16.840.1.113883.6.1',
    },
    lab: { finess: '310000003', name: 'Plateforme moléculaire', application: 'SGL-MOL' },
    prescriber: { rpps: '810001234567', familyName: 'ONCOLOGUE', givenName: 'Dominique' },
  };

  it('writes patient ids, analysis, lab, prescriber RPPS and the order number in ORC-2 and OBR-2', () => {
    const message = parse(writeOmlO21(order));
    assert.equal(get(message, 'MSH-9'), 'OML');
    assert.equal(get(message, 'MSH-9.2'), 'O21');
    assert.equal(get(message, 'MSH-10'), 'OML-CMD-MOL-0007-1');
    assert.equal(get(message, 'MSH-6.2'), '310000003');
    assert.equal(get(message, 'PID-3[1]'), 'IPP-000123');
    assert.equal(get(message, 'PID-3[1].4.2'), '310000001');
    assert.equal(get(message, 'PID-3[1].5'), 'PI');
    assert.equal(get(message, 'PID-3[2]'), '279035121518989');
    assert.equal(get(message, 'PID-3[2].4.2'), '1.2.250.1.213.1.4.8');
    assert.equal(get(message, 'PID-5'), 'FICTIF');
    assert.equal(get(message, 'PID-7'), '19790328');
    assert.equal(get(message, 'ORC-1'), 'NW');
    assert.equal(get(message, 'ORC-2'), 'CMD-MOL-0007');
    assert.equal(get(message, 'OBR-2'), 'CMD-MOL-0007');
    assert.equal(get(message, 'ORC-2.2'), 'ONCO-RELAY');
    assert.equal(get(message, 'OBR-4'), '51969-4');
    assert.equal(
      get(message, 'OBR-4.2'),
      'Recherche de mutations EGFR^KRAS',
      'escaped on the wire, read back whole',
    );
    assert.equal(get(message, 'OBR-4.3'), 'LN');
    assert.equal(get(message, 'ORC-12'), '810001234567');
    assert.equal(get(message, 'OBR-16.9.2'), '1.2.250.1.71.4.2.1');
    assert.equal(get(message, 'ORC-9'), '20260110091500+0100');
  });

  it('the lab’s result carrying that placer number is recognised as the answer to the order', async () => {
    const sent = parse(writeOmlO21(order));
    const { report } = await run('molecular', fixture('molecular-oru.hl7'));
    assert.equal(report.order?.placerNumber, get(sent, 'ORC-2'));
    assert.equal(report.order?.placerNamespace, get(sent, 'ORC-2.2'));
  });

  it('refuses an order without a number or a patient identifier', () => {
    assert.throws(() => writeOmlO21({ ...order, orderNumber: ' ' }), /no number/);
    assert.throws(
      () => writeOmlO21({ ...order, patient: { birthName: 'FICTIF' } }),
      (e: Error & { code?: string }) => e.code === 'REPORT_NO_PATIENT',
    );
  });
});
