// `onco-relay import forms FILE`: forms of another RCP software, the patient named by IPP and the
// session given whole, validated into the documents-out outbox; a refused form is named.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { tempDir } from '../support/engine-harness.ts';
import { documentDirectory, knownPatient, SUD } from '../support/documents-out.ts';
import { Store } from '../../store/store.ts';

const run = (args: string[]) =>
  new Promise<{ code: number; out: string }>((resolve) =>
    execFile(process.execPath, ['bin/onco-relay.mjs', ...args], (error, stdout, stderr) =>
      resolve({ code: error ? Number(error.code) : 0, out: stdout + stderr }),
    ),
  );

describe('onco-relay import forms', function () {
  this.timeout(60_000);

  it('imports each form once into the outbox, creating the session once, and names the refused one', async () => {
    const configDir = tempDir('onco-formimport-config-');
    const dataDir = tempDir('onco-formimport-data-');
    fs.writeFileSync(path.join(configDir, 'directory.yaml'), YAML.stringify(documentDirectory));
    const store = new Store({ dataDir });
    await knownPatient(store, true);
    await store.close();
    const meeting = { date: '2024-03-05', committee: 'Digestif', site: SUD, organiserRpps: '10000000004' };
    const form = (externalId: string, ipp: string) => ({
      externalId,
      patient: { finess: SUD, ipp },
      meeting,
      question: 'Chirurgie ?',
      summary: 'Résumé.',
      diagnosis: { icd10: 'C18.7', icdo3Morphology: '8140/3', tnm: 'T3N1M0', date: '202402' },
      proposal: 'Colectomie.',
      referringRpps: '10000000004',
    });
    const file = path.join(configDir, 'forms.json');
    fs.writeFileSync(
      file,
      JSON.stringify([form('X-1', 'IPP-000123'), form('X-2', 'UNKNOWN'), form('X-3', 'IPP-000123')]),
    );
    const r = await run(['import', 'forms', file, '--data', dataDir, '--config', configDir]);
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /2 form\(s\) imported, 1 refused/);
    assert.match(r.out, /refused: form 1: RCP_UNKNOWN: no patient with IPP 310000001\/UNKNOWN/);
    const after = new Store({ dataDir });
    try {
      assert.equal(after.outbox.waitingCount('documents-out'), 2);
      assert.equal(after.rcp.meetings('2024-01-01', '2025-01-01').length, 1);
      assert.ok(
        after.audit.search({ action: 'frcp-validate' }, {}).items.every((a) => a.actor.startsWith('import:')),
      );
    } finally {
      await after.close();
    }
    const again = await run(['import', 'forms', file, '--data', dataDir, '--config', configDir]);
    assert.match(again.out, /RCP_ALREADY_IMPORTED/);
  });
});
