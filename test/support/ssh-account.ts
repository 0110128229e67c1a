// An SFTP account logging in with a fresh ed25519 key, as an establishment's or lab's script does.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import ssh2 from 'ssh2';
import type { Store } from '../../store/store.ts';
import type { Role } from '../../store/accounts.ts';
import { addAccount } from './engine-harness.ts';

/** Makes a key pair in `dir` and an account `login` holding its public key; returns the private key's path. */
export async function keyAccount(
  store: Store,
  dir: string,
  login: string,
  role: Role,
  finess: string,
): Promise<string> {
  const key = path.join(dir, `${login}-key`);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', '', '-f', key]);
  const parsed = ssh2.utils.parseKey(fs.readFileSync(`${key}.pub`, 'utf8'));
  if (parsed instanceof Error) throw parsed;
  await addAccount(store, {
    login,
    role,
    finess,
    publicKeys: [{ algorithm: parsed.type, key: parsed.getPublicSSH() }],
  });
  return key;
}
