// A throwaway certificate for 127.0.0.1 in a temp directory (needs the openssl command).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface TestCert {
  dir: string;
  /** File names inside `dir`: the certificate doubles as its own CA. */
  cert: 'cert.pem';
  key: 'key.pem';
  remove(): void;
}

export function selfSignedCert(): TestCert {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onco-tls-'));
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout',
      path.join(dir, 'key.pem'),
      '-out',
      path.join(dir, 'cert.pem'),
    ],
    { stdio: 'ignore' },
  );
  return {
    dir,
    cert: 'cert.pem',
    key: 'key.pem',
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}
