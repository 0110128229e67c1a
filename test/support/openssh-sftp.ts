// OpenSSH's `sftp` client in batch mode, the real peer of the built-in SFTP server's tests.
import { spawn } from 'node:child_process';

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** OpenSSH's sftp in batch mode, commands on stdin; a failing command ends the batch with exit 1. */
export function openssh(
  port: number,
  user: string,
  key: string,
  commands: string[],
  extra: string[] = [],
): Promise<Run> {
  const args = [
    '-b',
    '-',
    '-P',
    String(port),
    '-i',
    key,
    '-o',
    'StrictHostKeyChecking=no',
    '-o',
    'UserKnownHostsFile=/dev/null',
    '-o',
    'BatchMode=yes',
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'LogLevel=ERROR',
    ...extra,
    `${user}@127.0.0.1`,
  ];
  return new Promise((resolve, reject) => {
    const child = spawn('sftp', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    // sftp exits at once when nobody listens: its closed stdin is not the caller's error, its exit code is.
    child.stdin.on('error', () => undefined);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(commands.join('\n') + '\n');
  });
}
