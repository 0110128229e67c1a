// The shipped documents-out channels with test peers: two hospitals (CHU Sud picks its documents up
// in its SFTP /out/, CHU Nord takes them on its own SFTP server — a real sshd), two professionals
// with MSSanté mailboxes, and a patient known to both hospitals.
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { acceptedInsOids } from '../../connectors/identity-writer.ts';
import type { Store } from '../../store/store.ts';
import type { Sshd } from './sshd.ts';

export const SUD = '310000001';
export const NORD = '310000004';
export const REFERRING_MAIL = 'jean.adresseur@demo.mssante.fr';
export const GP_MAIL = 'louise.generale@demo.mssante.fr';
export const INS = '279035121518989';

const shipped = (id: string): Record<string, unknown> =>
  YAML.parse(fs.readFileSync(path.join(import.meta.dirname, '../../config/channels', `${id}.yaml`), 'utf8'));

/** documents-out, -pickup and -mail as shipped, and CHU Nord's copy of documents-sftp on `sshd`. */
export function documentChannels(sshd: Sshd, remoteDir: string): object[] {
  const sftp = shipped('documents-sftp') as { destinations: Array<Record<string, unknown>> };
  return [
    shipped('documents-out'),
    shipped('documents-pickup'),
    shipped('documents-mail'),
    {
      ...sftp,
      id: 'documents-sftp-nord',
      enabled: true,
      destinations: [
        {
          ...sftp.destinations[0],
          host: '127.0.0.1',
          port: sshd.port,
          username: sshd.user,
          privateKey: sshd.clientPrivateKey,
          privateKeyFile: undefined,
          knownHostsFile: undefined,
          hostKeySha256: sshd.hostKeySha256,
          path: remoteDir,
          retry: { maxAttempts: 20, initialDelayMs: 50, maxDelayMs: 200, multiplier: 2, jitter: 0 },
        },
      ],
    },
  ];
}

export const documentDirectory = {
  establishments: [
    { finess: SUD, name: 'CHU Sud', kind: 'hospital' },
    {
      finess: NORD,
      name: 'CHU Nord',
      kind: 'hospital',
      documents: { way: 'sftp-push', channel: 'documents-sftp-nord' },
    },
  ],
  professionals: [
    { rpps: '10000000004', family: 'ADRESSEUR', given: 'Jean', mssante: REFERRING_MAIL },
    { rpps: '10000000005', family: 'GENERALE', given: 'Louise', mssante: GP_MAIL },
  ],
};

/** A patient known to both hospitals; `qualified`: its INS is qualified. */
export function knownPatient(store: Store, qualified: boolean, ipp = 'IPP-000123'): number {
  return store.vigilance.applyIdentity(
    {
      birthName: 'PAT-TEST',
      givenNames: ['CAMILLE', 'MARIE'],
      firstGivenName: 'CAMILLE',
      birthDate: '19790328',
      sex: 'F',
      birthPlace: '51215',
      reliability: qualified ? 'QUAL' : 'VALI',
      ins: { matricule: INS, oid: '1.2.250.1.213.1.4.10', status: qualified ? 'QUAL' : 'VALI' },
      identifiers: [
        { finess: SUD, ipp },
        { finess: NORD, ipp: `N-${ipp}` },
      ],
    },
    { messageId: null, insOids: acceptedInsOids({ acceptTestIns: true }) },
  ).patientId;
}
