// The PDF of an FRCP or a PPS, read back as a viewer reads it (test/support/pdf-text.ts inflates the
// real, compressed content streams): it must say what the CDA says.
import assert from 'node:assert/strict';
import { writeFrcp } from '../../transformers/cda-frcp.ts';
import { writePps } from '../../transformers/cda-pps.ts';
import { StepError } from '../../transformers/contract.ts';
import { renderPdf } from '../../transformers/pdf-render.ts';
import { pdfStreams, pdfText } from '../support/pdf-text.ts';
import {
  correctedForm,
  fullForm,
  fullPps,
  hostileForm,
  minimalUncodedForm,
  HOSTILE_TEXT,
} from '../fixtures/documents/rcp-forms.ts';

/** The shown text with line wraps undone, for phrases that may wrap. */
function shown(pdf: Buffer): string {
  return pdfText(pdf).join(' ').replace(/\s+/g, ' ');
}

function assertShows(pdf: Buffer, facts: string[]): void {
  const all = shown(pdf);
  const missing = facts.filter((f) => !all.includes(f));
  assert.deepEqual(missing, [], `not in the PDF: ${missing.join(' | ')}`);
}

describe('PDF rendering of FRCP and PPS (transformers/pdf-render.ts)', () => {
  it('shows the FRCP’s header, patient with INS and IPP, participants, sections and validation', () => {
    const pdf = renderPdf(writeFrcp(fullForm));
    assert.equal(pdf.subarray(0, 5).toString('latin1'), '%PDF-');
    assertShows(pdf, [
      // header facts
      'ONCO-OCCITANIE / 3C CHU Sud / Sein',
      'CR de réunion de concertation pluridisciplinaire',
      'FRCP-2026-000001-1',
      '12/01/2026 16:00',
      // patient identity
      'PAT-TEST',
      'CAMILLE MARIE',
      'EPOUSE-TEST',
      '28/03/1979',
      '51215',
      '279035121518989',
      'INS-NIR (test)',
      'IPP-000123 (1.2.250.1.71.4.2.2.310000001)',
      // the meeting and its participants
      'CHU Sud — FINESS 310000001',
      'Etablissement public de santé',
      'Jean ADRESSEUR — RPPS 10000000004',
      'Louise GENERALE — RPPS 10000000005',
      'Paul RAYON — RPPS 10000000002',
      'Invitée SANSRPPS',
      // sections and their narrative
      'TYPE DE RCP / MOTIF DE LA RCP',
      'Question posée à la RCP : Traitement adjuvant après tumorectomie ?',
      'C50.2 [CIM-10] Tumeur maligne du quadrant supéro-interne du sein',
      '8500/3 [CIM-O-3] Adénocarcinome canalaire infiltrant',
      'T1c [TNM] Tumeur de 1 à 2 cm',
      'Patiente de 46 ans, nodule du sein droit découvert au dépistage.',
      'Tumorectomie le 05/01/2026.',
      'Quorum atteint',
      'PROPOSITION DE LA RCP',
      "radiothérapie : 50 Gy en 25 fractions (à partir du 02/02/2026 jusqu'au 10/03/2026)",
      'Référentiel régional sein 2025',
      'approuvé',
      // signature / validation block
      'Validé le 12/01/2026 16:00 par DR Anne ONCOTEST — RPPS 10000000001',
      '(signé).',
    ]);
  });

  it('shows the PPS’s programme: treatments, schedule, supportive care, contacts', () => {
    const pdf = renderPdf(writePps(fullPps));
    assertShows(pdf, [
      'Programme personnalisé de soins en cancérologie',
      'PPS-2026-000001-1',
      '279035121518989',
      'Réalisé : intervention chirurgicale : Tumorectomie',
      'Prévu : radiothérapie : 50 Gy en 25 fractions',
      '5 séances par semaine',
      '20/04/2026 : consultation (Consultation de fin de radiothérapie)',
      'Mammographie annuelle',
      'Prise en charge diététique et nutritionnelle',
      'Infirmière de coordination',
      'Inès COORDO',
      'Validé le 12/01/2026 16:00',
    ]);
  });

  it('says when the identity is not qualified, and which version a correction replaces', () => {
    assertShows(renderPdf(writeFrcp(minimalUncodedForm)), ['non transmis (identité non qualifiée)']);
    assertShows(renderPdf(writeFrcp(correctedForm)), [
      'Remplace',
      'FRCP-2026-000001-1',
      'FRCP-2026-000001-2',
    ]);
  });

  it('breaks a long document over pages, each naming its patient, document and page', () => {
    const lines = Array.from({ length: 150 }, (_, i) => `Ligne ${i + 1} de l'histoire de la maladie.`);
    const pdf = renderPdf(writeFrcp({ ...fullForm, clinicalSummary: lines.join('\n') }));
    const text = pdfText(pdf);
    const footers = text.filter((l) =>
      l.startsWith('PAT-TEST CAMILLE né(e) le 28/03/1979 — FRCP-2026-000001-1 — page '),
    );
    assert.ok(footers.length >= 4, `${footers.length} pages`);
    assert.deepEqual(
      footers.map((f) => f.replace(/.* page /, '')),
      footers.map((_, i) => `${i + 1}/${footers.length}`),
    );
    assertShows(pdf, ['Ligne 1 de l', 'Ligne 150 de l', 'Validé le 12/01/2026 16:00']);
  });

  it('is deterministic: the same document gives the same bytes, dated by the document', () => {
    const cda = writeFrcp(fullForm);
    const pdf = renderPdf(cda);
    assert.ok(pdf.equals(renderPdf(cda)));
    // 20260112160000+0100 is 15:00 UTC.
    assert.match(pdf.toString('latin1'), /\(D:20260112150000Z\)/);
    assert.ok(!pdf.equals(renderPdf(writeFrcp(correctedForm))));
  });

  it('uses only the standard fonts, embedding no font file', () => {
    const pdf = renderPdf(writePps(fullPps));
    const source = pdf.toString('latin1');
    assert.match(source, /\/BaseFont \/Helvetica\b/);
    assert.doesNotMatch(source, /\/FontFile/);
    assert.ok(pdfStreams(pdf).length > 0);
  });

  it('keeps markup in free text as text, and shows characters outside the fonts as their base letter or ?', () => {
    const pdf = renderPdf(
      writeFrcp({
        ...hostileForm,
        clinicalSummary: `${HOSTILE_TEXT}\nŁódź 東京 ṡ`,
      }),
    );
    // ó is in WinAnsi, ź decomposes to z, Ł has no base letter, nor have the ideographs.
    assertShows(pdf, ['<script>alert(1)</script>', 'O"BRIEN<&>', '?ódz ?? s']);
  });

  it('refuses what is not a CDA document, naming what is missing', () => {
    assert.throws(
      () => renderPdf('<html xmlns="urn:hl7-org:v3"/>'),
      (e: unknown) =>
        e instanceof StepError && e.code === 'PDF_CDA_INCOMPLETE' && /ClinicalDocument/.test(e.message),
    );
  });
});
