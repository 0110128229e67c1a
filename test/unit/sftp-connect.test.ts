// Host key pinning rules and the SFTP specs' option schemas, without a server.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { Registry } from '../../channels/registry.ts';
import type { ConfigProblem } from '../../config/loader.ts';
import { fingerprintOf, knownHostKeys } from '../../connectors/sftp-connect.ts';
import { sftpPollSpec } from '../../connectors/sftp-poller.ts';
import { sftpPushSpec } from '../../connectors/sftp-writer.ts';

/** An ed25519 public key blob in SSH wire form, and its known_hosts base64. */
function hostKey(): { blob: Buffer; line: string } {
  const raw = crypto
    .generateKeyPairSync('ed25519')
    .publicKey.export({ format: 'der', type: 'spki' })
    .subarray(-32);
  const field = (b: Buffer): Buffer => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(b.length);
    return Buffer.concat([length, b]);
  };
  const blob = Buffer.concat([field(Buffer.from('ssh-ed25519')), field(raw)]);
  return { blob, line: `ssh-ed25519 ${blob.toString('base64')}` };
}

describe('SFTP host key pinning', () => {
  const a = hostKey();
  const b = hostKey();

  it('prints fingerprints as OpenSSH does: SHA256: and unpadded base64', () => {
    const fp = fingerprintOf(a.blob);
    assert.match(fp, /^SHA256:[A-Za-z0-9+/]{43}$/);
    assert.equal(fp, `SHA256:${crypto.createHash('sha256').update(a.blob).digest('base64').slice(0, 43)}`);
  });

  it('finds a host on port 22 by name and on other ports as [host]:port only', () => {
    const text = `sftp.chu.example ${a.line}\n[sftp.chu.example]:2222 ${b.line}\n`;
    assert.deepEqual(knownHostKeys(text, 'sftp.chu.example', 22).trusted, [fingerprintOf(a.blob)]);
    assert.deepEqual(knownHostKeys(text, 'sftp.chu.example', 2222).trusted, [fingerprintOf(b.blob)]);
    assert.deepEqual(knownHostKeys(text, 'other.example', 22).trusted, []);
  });

  it('honours comma lists, wildcards and negation', () => {
    const text = `# comment\n\n*.chu.example,!old.chu.example ${a.line}\n`;
    assert.equal(knownHostKeys(text, 'sftp.chu.example', 22).trusted.length, 1);
    assert.equal(knownHostKeys(text, 'SFTP.CHU.EXAMPLE', 22).trusted.length, 1);
    assert.equal(knownHostKeys(text, 'old.chu.example', 22).trusted.length, 0);
    assert.equal(knownHostKeys(text, 'chu.example.evil', 22).trusted.length, 0);
  });

  it('matches hashed host names and keeps @revoked keys apart; @cert-authority lines vouch for nothing', () => {
    const salt = crypto.randomBytes(20);
    const hash = crypto.createHmac('sha1', salt).update('[10.0.0.5]:2022').digest('base64');
    const text = [
      `|1|${salt.toString('base64')}|${hash} ${a.line}`,
      `@revoked [10.0.0.5]:2022 ${b.line}`,
      `@cert-authority [10.0.0.5]:2022 ${b.line}`,
    ].join('\n');
    assert.deepEqual(knownHostKeys(text, '10.0.0.5', 2022), {
      trusted: [fingerprintOf(a.blob)],
      revoked: [fingerprintOf(b.blob)],
    });
  });
});

describe('SFTP spec options', () => {
  const registry = new Registry().register(sftpPollSpec, sftpPushSpec);
  const file = { file: 'channels/lab.yaml', data: {}, lineOf: () => 1 };
  const check = (kind: 'source' | 'destination', options: Record<string, unknown>) => {
    const problems: ConfigProblem[] = [];
    const ok = registry.validate(kind, options, file, '/source', problems);
    return { ok, problems, options };
  };
  const login = { host: 'sftp.lab.example', username: 'onco', privateKeyFile: 'keys/lab' };

  it('fills defaults for a poller', () => {
    const { ok, options } = check('source', {
      type: 'sftp-poll',
      ...login,
      path: 'out',
      afterRead: 'delete',
    });
    assert.ok(ok);
    assert.equal(options.port, 22);
    assert.equal(options.pollMs, 5000);
  });

  it('wants moveTo when afterRead is move', () => {
    const { ok, problems } = check('source', { type: 'sftp-poll', ...login, path: 'out', afterRead: 'move' });
    assert.equal(ok, false);
    assert.ok(
      problems.some((p) => p.message.includes('moveTo')),
      JSON.stringify(problems),
    );
  });

  it('wants a password or a key', () => {
    const { ok } = check('destination', { type: 'sftp-push', host: 'h', username: 'u', path: 'in' });
    assert.equal(ok, false);
  });

  it('accepts one or several pinned fingerprints and refuses another notation', () => {
    const fp = fingerprintOf(hostKey().blob);
    const base = { type: 'sftp-push', ...login, path: 'in' };
    assert.ok(check('destination', { ...base, hostKeySha256: fp }).ok);
    assert.ok(check('destination', { ...base, hostKeySha256: [fp, fp] }).ok);
    assert.equal(check('destination', { ...base, hostKeySha256: 'ab:cd:ef' }).ok, false);
  });
});
