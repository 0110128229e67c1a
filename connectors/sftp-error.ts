// The SFTP server's own failures (listening, host key, configuration), as values a user can act on.
export class SftpServerError extends Error {
  readonly code: string;
  readonly hint: string;
  constructor(code: string, message: string, options: { hint: string; cause?: unknown }) {
    super(`${message} (${options.hint})`, { cause: options.cause });
    this.name = 'SftpServerError';
    this.code = code;
    this.hint = options.hint;
  }
}
