import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { tempDir } from '../support/engine-harness.ts';
import { a28 } from '../support/pam.ts';
import { Store } from '../../store/store.ts';

describe('onco-relay import identities', function () {
  this.timeout(30_000);

  it('files every good identity of the files and folders given, and names each refused message', () => {
    const data = tempDir();
    const src = tempDir();
    const p = (i: number, birthDate = '19600101', finess = '310000001') =>
      a28(
        {
          ipp: `I${i}`,
          finess,
          birthName: `NOM${String.fromCharCode(65 + i)}`,
          given: 'ANNE',
          birthDate,
          sex: 'F',
        },
        `C${i}`,
      );
    fs.writeFileSync(path.join(src, 'a.hl7'), p(1) + p(2, '19601399') + p(3));
    fs.mkdirSync(path.join(src, 'more'));
    fs.writeFileSync(path.join(src, 'more', 'b.hl7'), p(4) + p(5, '19600101', '999999999'));
    fs.writeFileSync(path.join(src, 'more', 'c.txt'), 'not an HL7 message\n');
    fs.writeFileSync(path.join(src, 'more', 'd.hl7'), p(6));
    const r = spawnSync(
      process.execPath,
      [
        path.resolve('bin/onco-relay.mjs'),
        'import',
        'identities',
        path.join(src, 'a.hl7'),
        path.join(src, 'more'),
        '--data',
        data,
      ],
      { encoding: 'utf8' },
    );
    assert.equal(r.status, 1, 'a refused message makes the exit code 1');
    assert.match(r.stdout, /4 identities filed, 3 refused, from 4 file\(s\)/);
    assert.match(r.stdout, /refused: .*a\.hl7 message 2: .*PID-7/);
    assert.match(r.stdout, /refused: .*b\.hl7 message 2: .*FINESS 999999999/);
    assert.match(r.stdout, /refused: .*c\.txt: HL7_\w+: /);
    assert.match(r.stderr, /4\/4 files/);
    const store = new Store({ dataDir: data });
    for (const ipp of ['I1', 'I3', 'I4', 'I6'])
      assert.notEqual(store.patients.resolveIdentifier({ finess: '310000001', ipp }), null, ipp);
    assert.equal(store.patients.resolveIdentifier({ finess: '310000001', ipp: 'I2' }), null);
    const imported = store.audit.search({ action: 'identity-import' }).items[0];
    assert.deepEqual(imported?.detail, { files: 4, messages: 6, filed: 4, refused: 3 });
    store.close();
  });
});
