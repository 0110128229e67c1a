// The shipped documents-out channels with test peers: two hospitals (CHU Sud picks its documents up
// in its SFTP /out/, CHU Nord takes them on its own SFTP server — a real sshd), two professionals
// with MSSanté mailboxes, and a patient known to both hospitals.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { acceptedInsOids } from '../../connectors/identity-writer.ts';
import { Store } from '../../store/store.ts';
import type { DirectoryConfig } from '../../config/config.ts';
import { formInput, meetingInput } from '../../channels/rcp-input.ts';
import { rcpCdaSchema, rcpCdaStep } from '../../transformers/rcp-document.ts';
import { readOptions } from '../../transformers/contract.ts';
import { formContent, meetingData, ppsContent, uncodedFormContent } from '../fixtures/documents/rcp-store.ts';
import type { Sshd } from './sshd.ts';

export const SUD = '310000001';
export const NORD = '310000004';
export const REFERRING_MAIL = 'jean.adresseur@demo.mssante.fr';
export const GP_MAIL = 'louise.generale@demo.mssante.fr';
export const INS = '279035121518989';

const shipped = (id: string): Record<string, unknown> =>
  YAML.parse(fs.readFileSync(path.join(import.meta.dirname, '../../config/channels', `${id}.yaml`), 'utf8'));

/**
 * documents-out, -pickup and -mail as shipped (the mail through the SMTP relay on `smtpPort` when
 * given, else as .eml files), and CHU Nord's copy of documents-sftp on `sshd`.
 */
export function documentChannels(sshd: Sshd, remoteDir: string, smtpPort?: number): object[] {
  const sftp = shipped('documents-sftp') as { destinations: Array<Record<string, unknown>> };
  const mail = shipped('documents-mail') as { destinations: Array<Record<string, unknown>> };
  return [
    shipped('documents-out'),
    shipped('documents-pickup'),
    smtpPort === undefined
      ? mail
      : {
          ...mail,
          destinations: mail.destinations.map((d) => ({
            ...d,
            relay: { host: '127.0.0.1', port: smtpPort, requireTls: false },
          })),
        },
    {
      ...sftp,
      id: 'documents-sftp-nord',
      enabled: true,
      destinations: sftp.destinations.map((d) => ({
        ...d,
        host: '127.0.0.1',
        port: sshd.port,
        username: sshd.user,
        privateKey: sshd.clientPrivateKey,
        privateKeyFile: undefined,
        knownHostsFile: undefined,
        hostKeySha256: sshd.hostKeySha256,
        path: remoteDir,
        retry: { maxAttempts: 20, initialDelayMs: 50, maxDelayMs: 200, multiplier: 2, jitter: 0 },
      })),
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
export async function knownPatient(
  store: Store,
  qualified: boolean,
  ipp = 'IPP-000123',
  /** Known to these establishments instead of CHU Sud and CHU Nord. */
  establishments = [SUD, NORD],
): Promise<number> {
  const decision = await store.write.vigilance.applyIdentity(
    {
      birthName: 'PAT-TEST',
      givenNames: ['CAMILLE', 'MARIE'],
      firstGivenName: 'CAMILLE',
      birthDate: '19790328',
      sex: 'F',
      birthPlace: '51215',
      reliability: qualified ? 'QUAL' : 'VALI',
      ins: { matricule: INS, oid: '1.2.250.1.213.1.4.10', status: qualified ? 'QUAL' : 'VALI' },
      identifiers: establishments.map((finess, i) => ({ finess, ipp: i === 0 ? ipp : `N-${ipp}` })),
    },
    { messageId: null, insOids: acceptedInsOids({ acceptTestIns: true }) },
  );
  return decision.patientId!;
}

/** A breast committee's session at CHU Sud, in the contract's flat JSON (CONTRACT.md). */
export const flatMeeting = {
  date: '2026-01-12',
  committee: 'Sein',
  organ: 'sein',
  site: SUD,
  organiserRpps: '10000000004',
};

/** A form of that session in the contract's flat JSON: a referring doctor and a GP as recipients. */
export const flatForm = (patientId: number, meetingId: number) => ({
  patientId,
  meetingId,
  question: 'Traitement adjuvant ?',
  summary: 'Patiente de 46 ans.',
  diagnosis: { icd10: 'C50.2', icdo3Morphology: '8500/3', tnm: 'T1cN0M0', date: '20251210' },
  proposal: 'Radiothérapie adjuvante.',
  participants: [{ rpps: '10000000004' }, { name: 'Dr Invitée' }],
  referringRpps: '10000000004',
  gpRpps: '10000000005',
});

/**
 * The CDA documents the appliance itself produces from the store: a form made through the API's
 * JSON (the contract's flat input, completed from the directory), its correction (version 2), a
 * form and a PPS in the model's own shape — each validated in a real store, taken from its outbox
 * row and written by the `rcp-cda` step with its shipped options.
 */
export async function storeProducedDocuments(): Promise<
  Array<{ name: string; kind: 'FRCP' | 'PPS'; xml: string }>
> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onco-store-cda-'));
  const store = new Store({ dataDir: dir, synchronous: 'OFF' });
  try {
    const directory = documentDirectory as DirectoryConfig;
    const actor = { login: 'conformance' };
    const now = Date.UTC(2026, 0, 12, 15);
    const patientId = await knownPatient(store, true);
    const unqualified = await knownPatient(store, false, 'IPP-UNQ');
    const { rcp } = store.write;
    const meeting = await rcp.createMeeting(meetingInput(flatMeeting, directory), actor, now);
    const form = formInput(flatForm(patientId, meeting.id), directory);
    const modelMeeting = await rcp.createMeeting(meetingData, actor, now);
    const step = rcpCdaStep.create(readOptions(rcpCdaSchema, shippedStepOptions()));
    const written = async (kind: 'frcp' | 'pps', id: number): Promise<string> => {
      const { outboxId } = await rcp.validate(kind, id, actor, now);
      const row = store.outbox.row(outboxId)!;
      const out = await step({ content: row.content, contentType: row.contentType, meta: row.meta });
      return out!.content.toString('utf8');
    };
    const v1 = await rcp.create('frcp', form, actor, now);
    const api = await written('frcp', v1.id);
    const v2 = await rcp.update(
      'frcp',
      v1.id,
      { ...form, content: { ...form.content, question: 'Corrigée ?' } },
      actor,
      now,
    );
    const corrected = await written('frcp', v2.id);
    const model = await rcp.create(
      'frcp',
      { patientId, meetingId: modelMeeting.id, content: formContent },
      actor,
      now,
    );
    const uncoded = await rcp.create(
      'frcp',
      { patientId: unqualified, meetingId: modelMeeting.id, content: uncodedFormContent },
      actor,
      now,
    );
    const pps = await rcp.create(
      'pps',
      { patientId, meetingId: modelMeeting.id, content: ppsContent },
      actor,
      now,
    );
    return [
      { name: 'store-frcp-api-input.xml', kind: 'FRCP', xml: api },
      { name: 'store-frcp-api-v2.xml', kind: 'FRCP', xml: corrected },
      { name: 'store-frcp-model.xml', kind: 'FRCP', xml: await written('frcp', model.id) },
      { name: 'store-frcp-uncoded-unqualified.xml', kind: 'FRCP', xml: await written('frcp', uncoded.id) },
      { name: 'store-pps-model.xml', kind: 'PPS', xml: await written('pps', pps.id) },
    ];
  } finally {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The `rcp-cda` options of the shipped documents-out channel, with its defaults. */
function shippedStepOptions(): Parameters<typeof readOptions<typeof rcpCdaSchema>>[1] {
  const step = (shipped('documents-out') as { steps: Array<Record<string, unknown>> }).steps[0]!;
  const { type: _type, documentRoot: _root, ...options } = step;
  return options as Parameters<typeof readOptions<typeof rcpCdaSchema>>[1];
}
