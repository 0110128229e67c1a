// The SFTP server's host key: generated once, then kept, because clients pin it (known_hosts) and a new
// key on every start would look like an attack to them.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import ssh2 from 'ssh2';
import { SftpServerError } from './sftp-error.ts';

/** Loads the private host key, creating an ed25519 key (mode 0600) when the file does not exist. */
export async function loadOrCreateHostKey(file: string): Promise<Buffer> {
  try {
    const key = await fs.readFile(file);
    const mode = (await fs.stat(file)).mode & 0o777;
    // A key others can read is a key others can impersonate the server with: tighten, do not refuse.
    if (mode & 0o077) await fs.chmod(file, 0o600);
    const parsed = ssh2.utils.parseKey(key);
    if (parsed instanceof Error) {
      throw new SftpServerError('SFTP_HOST_KEY', `host key ${file} is not a private key ssh2 can read`, {
        hint: 'move it away to have a new one generated (clients will then see a new host key)',
        cause: parsed,
      });
    }
    return key;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await fs.mkdir(path.dirname(file), { recursive: true });
  const pair = readableKeyPair();
  // Written whole under a name of its own, then linked into place: a link fails when the name exists,
  // so when two starts race the first key wins, and neither ever reads a half-written key.
  const draft = `${file}.${process.pid}-${randomUUID()}`;
  await fs.writeFile(draft, pair.private, { mode: 0o600, flag: 'wx' });
  try {
    await fs.link(draft, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    await fs.rm(draft, { force: true });
  }
  return fs.readFile(file);
}

/**
 * An ed25519 pair that ssh2 itself can read back. ssh2's generator strips the leading zero bytes of the
 * public key, so about one key in 256 is malformed to its own parser (mscdex/ssh2#1390, #1513): the
 * server would then fail to start with "Malformed OpenSSH private key". Such a pair is drawn again.
 */
export function readableKeyPair(): { private: string; public: string } {
  for (;;) {
    const pair = ssh2.utils.generateKeyPairSync('ed25519');
    if (
      !(ssh2.utils.parseKey(pair.private) instanceof Error) &&
      !(ssh2.utils.parseKey(pair.public) instanceof Error)
    )
      return pair;
  }
}
