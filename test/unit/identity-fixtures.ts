// Shared by the patient and vigilance tests: a real SQLite file in a temp dir, migrated, and an
// identity builder whose defaults are one plausible person.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { migrate, openDatabase, type Db } from '../../store/db.ts';
import { PatientStore, patientMigrations, type IdentityInput } from '../../store/patients.ts';
import { Vigilance } from '../../store/vigilance.ts';

export const TEST_OID = '1.2.250.1.213.1.4.10';
export const NIR_OID = '1.2.250.1.213.1.4.8';

export interface PatientFixture {
  db: Db;
  patients: PatientStore;
  vigilance: Vigilance;
  close(): void;
}

export function openPatients(): PatientFixture {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onco-patients-'));
  const db = openDatabase(path.join(dir, 'test.db'), { synchronous: 'OFF' });
  migrate(db, patientMigrations);
  const patients = new PatientStore(db, { now: () => new Date('2026-01-15T10:00:00Z') });
  return {
    db,
    patients,
    vigilance: new Vigilance(patients),
    close() {
      db.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function identity(overrides: Partial<IdentityInput> = {}): IdentityInput {
  return {
    birthName: 'MARTIN',
    givenNames: ['JEANNE', 'LOUISE'],
    firstGivenName: 'JEANNE',
    birthDate: '1958-03-14',
    sex: 'F',
    birthPlace: '31555',
    reliability: 'PROV',
    identifiers: [],
    ...overrides,
  };
}

export const ipp = (ippValue: string, finess: string) => ({
  ipp: ippValue,
  finess,
  namespace: `NS-${finess}`,
});
