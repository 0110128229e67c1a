// The yearly report's patient figures (new patients per month, patients in all at the end of each
// month) from one pass over the patients table, not one count per month and figure.
import assert from 'node:assert/strict';
import { acceptedInsOids } from '../../connectors/identity-writer.ts';
import type { Db } from '../../store/db.ts';
import { Stats } from '../../store/stats.ts';
import type { Store } from '../../store/store.ts';
import { openTestStore, removeTestStore } from '../support/test-store.ts';
import { identity, ipp } from './identity-fixtures.ts';

/** A connection that records the SQL of every statement run through it. */
function recording(db: Db, ran: string[]): Db {
  const statement = <S extends object>(st: S, sql: string): S =>
    new Proxy(st, {
      get(target, key) {
        const value = Reflect.get(target, key) as unknown;
        if (typeof value !== 'function') return value;
        if (key === 'pluck' || key === 'raw')
          return (...args: unknown[]) =>
            statement((value as (...a: unknown[]) => S).apply(target, args), sql);
        if (key === 'get' || key === 'all' || key === 'iterate')
          return (...args: unknown[]) => (
            ran.push(sql),
            (value as (...a: unknown[]) => unknown).apply(target, args)
          );
        return (value as (...a: unknown[]) => unknown).bind(target);
      },
    });
  return new Proxy(db, {
    get(target, key) {
      const value = Reflect.get(target, key) as unknown;
      if (key === 'prepare') return (sql: string) => statement(target.prepare(sql), sql);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

describe('yearly statistics: patients', () => {
  let dir: string;
  let store: Store;
  beforeEach(() => ({ dir, store } = openTestStore()));
  afterEach(() => removeTestStore({ dir, store }));

  it('counts new patients by month and the running total, merged duplicates aside, reading the table once', () => {
    const add = (birthName: string, id: string) =>
      store.vigilance.applyIdentity(identity({ birthName, identifiers: [ipp(id, '310000001')] }), {
        insOids: acceptedInsOids(),
      }).patientId;
    const kept = add('MARTIN', 'P1');
    add('DUBOIS', 'P2');
    store.patients.merge(kept, add('GARCIA', 'P3'), { author: 'iv.nurse' });
    const created = new Date(store.patients.get(kept)!.createdAt);
    const [year, month] = [created.getUTCFullYear(), created.getUTCMonth()];

    const ran: string[] = [];
    const figures = new Stats(recording(store.db, ran)).yearly(year).figures;
    const once = (n: number) => Array.from({ length: 12 }, (_, m) => (m === month ? n : 0));
    assert.deepEqual(figures.newPatients, { total: 2, monthly: once(2), available: true });
    assert.deepEqual(figures.patientsTotal, {
      total: 2,
      monthly: Array.from({ length: 12 }, (_, m) => (m >= month ? 2 : 0)),
      available: true,
    });
    assert.equal(ran.filter((sql) => /\bFROM patients\b/.test(sql)).length, 1, 'one pass over patients');

    const next = store.stats.yearly(year + 1).figures;
    assert.deepEqual(next.newPatients, { total: 0, monthly: once(0), available: true });
    assert.deepEqual(next.patientsTotal, { total: 2, monthly: Array(12).fill(2), available: true });
    assert.deepEqual(store.stats.yearly(year - 1).figures.patientsTotal.monthly, once(0));
  });
});
