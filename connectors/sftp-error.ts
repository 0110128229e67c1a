// The SFTP server's own failures (listening, host key, configuration), as values a user can act on.
import { OncoError } from '../config/errors.ts';

export class SftpServerError extends OncoError {
  declare readonly hint: string;
  constructor(code: string, message: string, options: { hint: string; cause?: unknown }) {
    super(code, { message, ...options });
  }
}
