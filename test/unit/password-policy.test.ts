import assert from 'node:assert/strict';
import { checkNewPassword } from '../../store/auth-password.ts';

describe('password policy', () => {
  const refused = (password: string, login = 'chu-demo'): string => {
    try {
      checkNewPassword(password, login);
    } catch (error) {
      return (error as Error & { code: string }).code + ': ' + (error as Error).message;
    }
    return 'accepted';
  };

  it('refuses fewer than 12 characters, counted as characters, not bytes', () => {
    assert.match(refused('éééééééééé1'), /PASSWORD_REFUSED: the password has 11 characters/);
    assert.equal(refused('éééééé ééééé'), 'accepted');
  });

  it('refuses the most common passwords whatever their case', () => {
    assert.match(refused('1qaz2wsx3edc'), /most common/);
    assert.match(refused('QWERTYUIOPASDFGH'), /most common/);
  });

  it('refuses a password that is mostly the login, not one that merely contains it', () => {
    assert.match(refused('chu-demo-2024!'), /mostly the login/);
    assert.equal(refused('a long operator passphrase 42', 'oper'), 'accepted');
  });
});
