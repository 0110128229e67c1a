// What a new password must be: at least 12 characters, not one of the most common passwords (the
// list shipped beside this file), not the login itself. Checked wherever a person chooses one.
import fs from 'node:fs';
import { AccountError } from './accounts.ts';

export const MIN_PASSWORD_LENGTH = 12;

let common: Set<string> | undefined;
const commonPasswords = (): Set<string> =>
  (common ??= new Set(
    fs
      .readFileSync(new URL('./auth-common-passwords.txt', import.meta.url), 'utf8')
      .split('\n')
      .filter((line) => line !== '' && !line.startsWith('#'))
      .map((line) => line.toLowerCase()),
  ));

/** Throws PASSWORD_REFUSED naming what is wrong; the password itself is never in the message. */
export function checkNewPassword(password: string, login: string): void {
  if ([...password].length < MIN_PASSWORD_LENGTH) {
    throw new AccountError(
      'PASSWORD_REFUSED',
      `the password has ${[...password].length} characters; at least ${MIN_PASSWORD_LENGTH} are needed`,
    );
  }
  const lower = password.toLowerCase();
  if (commonPasswords().has(lower)) {
    throw new AccountError('PASSWORD_REFUSED', 'the password is one of the most common passwords');
  }
  if (lower.includes(login.toLowerCase())) {
    throw new AccountError('PASSWORD_REFUSED', 'the password contains the login');
  }
}
