// The PDFs we write by hand (transformers/pdf-canvas.ts), read by two independent PDF implementations
// as a recipient's viewer would: qpdf checks the file's structure (header, objects, cross-reference
// table, streams), Poppler's pdftotext extracts the text a reader sees. Debian's qpdf and
// poppler-utils; .ci/run installs them, so this suite never skips in CI.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { writeFrcp } from '../../transformers/cda-frcp.ts';
import { writePps } from '../../transformers/cda-pps.ts';
import { renderPdf } from '../../transformers/pdf-render.ts';
import { fullForm, fullPps, hostileForm } from '../fixtures/documents/rcp-forms.ts';

const run = promisify(execFile);

describe('our PDFs read by qpdf and Poppler (conformance)', function () {
  this.timeout(60_000);
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onco-pdf-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  function saved(name: string, pdf: Buffer): string {
    const file = path.join(dir, name);
    fs.writeFileSync(file, pdf);
    return file;
  }

  const cases = [
    { name: 'FRCP', pdf: () => renderPdf(writeFrcp(fullForm)), shows: ['PAT-TEST', 'FRCP-2026-000001-1'] },
    { name: 'PPS', pdf: () => renderPdf(writePps(fullPps)), shows: ['PAT-TEST'] },
    {
      name: 'FRCP with hostile free text over many pages',
      pdf: () =>
        renderPdf(
          writeFrcp({
            ...hostileForm,
            clinicalSummary: Array.from({ length: 200 }, (_, i) => `Ligne ${i + 1} (parenthèse) \\ é`).join(
              '\n',
            ),
          }),
        ),
      shows: ['Ligne 1 (parenthèse) \\ é', 'Ligne 200 (parenthèse) \\ é'],
    },
  ];

  for (const c of cases) {
    it(`${c.name}: qpdf finds no structural error, pdftotext reads its text`, async () => {
      const file = saved(`${c.name.replace(/\W+/g, '-')}.pdf`, c.pdf());
      // qpdf exits 0 only when the file has neither errors nor warnings.
      const check = await run('qpdf', ['--check', file]);
      assert.match(check.stdout, /No syntax or stream encoding errors found/);
      const { stdout: text } = await run('pdftotext', ['-enc', 'UTF-8', '-layout', file, '-']);
      const flat = text.replace(/\s+/g, ' ');
      for (const fact of c.shows) assert.ok(flat.includes(fact), `pdftotext does not show "${fact}"`);
      const info = await run('pdfinfo', [file]);
      assert.match(info.stdout, /^Pages:\s+[1-9]/m);
    });
  }
});
