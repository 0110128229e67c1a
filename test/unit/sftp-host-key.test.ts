import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ssh2 from 'ssh2';
import { loadOrCreateHostKey, readableKeyPair } from '../../connectors/sftp-host-key.ts';
import type { SftpServerError } from '../../connectors/sftp-error.ts';

describe('sftp host key', function () {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'host-key-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('is generated once as an ed25519 key readable by the owner only, then reused', async function () {
    const file = path.join(dir, 'keys', 'ssh_host_ed25519_key');
    const first = await loadOrCreateHostKey(file);
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    const parsed = ssh2.utils.parseKey(first);
    assert.ok(!(parsed instanceof Error));
    assert.equal(parsed.type, 'ssh-ed25519');
    assert.ok((await loadOrCreateHostKey(file)).equals(first));
  });

  it('gives every start that races to create it the same whole key, leaving no draft behind', async function () {
    const file = path.join(dir, 'keys', 'ssh_host_ed25519_key');
    const keys = await Promise.all(Array.from({ length: 20 }, () => loadOrCreateHostKey(file)));
    for (const key of keys) {
      assert.ok(!(ssh2.utils.parseKey(key) instanceof Error), 'a whole private key');
      assert.ok(key.equals(keys[0]!), 'the same key for all');
    }
    assert.deepEqual(fs.readdirSync(path.dirname(file)), ['ssh_host_ed25519_key']);
  });

  it('draws only pairs ssh2 reads back (its generator makes about one unreadable ed25519 key in 256)', function () {
    for (let i = 0; i < 2000; i++) {
      const pair = readableKeyPair();
      assert.ok(!(ssh2.utils.parseKey(pair.private) instanceof Error), `private key ${i}`);
      assert.ok(!(ssh2.utils.parseKey(pair.public) instanceof Error), `public key ${i}`);
    }
  });

  it('tightens a key file others could read', async function () {
    const file = path.join(dir, 'key');
    fs.writeFileSync(file, readableKeyPair().private, { mode: 0o644 });
    await loadOrCreateHostKey(file);
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  });

  it('refuses a file that is not a private key, saying what to do', async function () {
    const file = path.join(dir, 'key');
    fs.writeFileSync(file, 'not a key', { mode: 0o600 });
    await assert.rejects(loadOrCreateHostKey(file), (e: SftpServerError) =>
      /move it away to have a new one generated/.test(e.hint),
    );
  });
});
