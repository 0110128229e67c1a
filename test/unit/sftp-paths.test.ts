import assert from 'node:assert/strict';
import {
  childDirs,
  dropFolderOf,
  fileNameProblem,
  isTemporaryName,
  locate,
  mayExist,
  resolvePath,
  SftpRefusal,
  virtualPath,
} from '../../connectors/sftp-paths.ts';

const refusedCode = (p: string): string | undefined => {
  try {
    resolvePath(p);
    return undefined;
  } catch (err) {
    return err instanceof SftpRefusal ? err.code : 'other error';
  }
};

describe('sftp paths', function () {
  it('normalises paths inside the tree, relative ones from the root', function () {
    assert.equal(virtualPath(resolvePath('.')), '/');
    assert.equal(virtualPath(resolvePath('')), '/');
    assert.equal(virtualPath(resolvePath('in//identity/./')), '/in/identity');
    assert.equal(virtualPath(resolvePath('/in/identity/../pathology/a.hl7')), '/in/pathology/a.hl7');
  });

  it('refuses paths climbing above the root, NUL bytes and backslashes', function () {
    assert.equal(refusedCode('..'), 'SFTP_PATH_OUTSIDE');
    assert.equal(refusedCode('/in/../../etc/passwd'), 'SFTP_PATH_OUTSIDE');
    assert.equal(refusedCode('/in/identity/a\0.hl7'), 'SFTP_PATH_NUL');
    assert.equal(refusedCode('/in/identity/..\\..\\x'), 'SFTP_PATH_BACKSLASH');
  });

  it('names only the fixed tree: its directories and files directly in the file directories', function () {
    assert.deepEqual(locate([]), { kind: 'dir', dir: '' });
    assert.deepEqual(locate(['out', 'ack']), { kind: 'dir', dir: 'out/ack' });
    assert.deepEqual(locate(['in', 'identity', 'a.hl7']), {
      kind: 'file',
      dir: 'in/identity',
      name: 'a.hl7',
    });
    assert.deepEqual(locate(['in', 'a.hl7']), { kind: 'none' });
    assert.deepEqual(locate(['a.hl7']), { kind: 'none' });
    assert.deepEqual(locate(['in', 'identity', 'sub', 'a.hl7']), { kind: 'none' });
    assert.deepEqual(locate(['sftp', 'other-login']), { kind: 'none' });
  });

  it('knows the drop folders and the children of each directory', function () {
    assert.equal(dropFolderOf('in/molecular'), 'molecular');
    assert.equal(dropFolderOf('out'), null);
    assert.equal(dropFolderOf('in'), null);
    assert.deepEqual(childDirs(''), ['in', 'out', 'error']);
    assert.deepEqual(childDirs('in'), ['identity', 'pathology', 'molecular']);
    assert.deepEqual(childDirs('out'), ['ack']);
    assert.deepEqual(childDirs('error'), []);
  });

  it('treats .part, .tmp and WinSCP’s .filepart as uploads in progress', function () {
    for (const name of ['a.hl7.part', 'a.TMP', 'a.hl7.filepart']) assert.ok(isTemporaryName(name), name);
    for (const name of ['a.hl7', 'part', 'a.partial']) assert.ok(!isTemporaryName(name), name);
  });

  it('looks on disk for what can be there: no final name in a drop folder, only uploads in progress', function () {
    const at = (p: string) => mayExist(locate(resolvePath(p)));
    for (const p of [
      '/in/identity/a.hl7.part',
      '/in/pathology/r.tmp',
      '/out/cr.pdf',
      '/error/a.hl7',
      '/in',
      '/',
    ])
      assert.ok(at(p), p);
    for (const p of ['/in/identity/a.hl7', '/in/molecular/r.pdf', '/in/a.hl7', '/elsewhere/x'])
      assert.ok(!at(p), p);
  });

  it('accepts ordinary file names and refuses odd ones', function () {
    for (const name of ['ADT_A28 2024-03-06.hl7', 'CR-ACP_Hôpital(1).xml', 'r+1=2@x,~#.pdf']) {
      assert.equal(fileNameProblem(name), null, name);
    }
    for (const name of [
      '.hidden',
      'a%2e%2e',
      'a:b',
      'a\tb',
      'trailing.',
      'trailing ',
      'x'.repeat(201),
      'a\u202eb',
    ]) {
      assert.notEqual(fileNameProblem(name), null, JSON.stringify(name));
    }
  });
});
