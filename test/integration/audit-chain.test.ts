// The keyed audit chain, attacked as someone holding the database file but not the key would:
// `audit verify` names an edited row, deleted newest rows, a chain rewritten without the key and a
// forged head file; an existing SHA-256 chain is re-keyed once.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { main } from '../../bin/cli.ts';
import { Audit, legacyHash } from '../../store/audit.ts';
import { migrate, openDatabase } from '../../store/db.ts';
import { allMigrations } from '../../store/store.ts';
import { Store } from '../../store/store.ts';
import { tempDir } from '../support/engine-harness.ts';

/** Runs the CLI in process and returns its exit code and what it wrote on stderr. */
async function verifyCli(dir: string): Promise<{ code: number; stderr: string }> {
  let stderr = '';
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    return { code: await main(['audit', 'verify', '--data', dir]), stderr };
  } finally {
    process.stderr.write = write;
  }
}

/** Opens the database behind the store's back, without the append-only triggers. */
function tamper(dir: string, sql: (db: Database.Database) => void): void {
  const db = new Database(path.join(dir, 'onco-relay.db'));
  db.exec('DROP TRIGGER IF EXISTS audit_no_update; DROP TRIGGER IF EXISTS audit_no_delete');
  sql(db);
  db.close();
}

/** Recomputes the whole chain as an attacker without the key can: plain SHA-256. */
function rewriteWithoutKey(db: Database.Database): void {
  const rows = db.prepare('SELECT * FROM audit ORDER BY id').all() as Parameters<typeof legacyHash>[1][];
  let prev = '0'.repeat(64);
  for (const r of rows) {
    const hash = legacyHash(prev, r);
    db.prepare('UPDATE audit SET prev_hash = ?, hash = ? WHERE id = ?').run(prev, hash, r.id);
    prev = hash;
  }
}

function trail(rows: number): string {
  const dir = tempDir();
  const store = new Store({ dataDir: dir, writer: 'inline' });
  for (let i = 0; i < rows; i++) store.audit.record({ actor: 'alice', action: 'patient-read', patientId: i });
  store.close();
  return dir;
}

const breaksOf = (dir: string) => {
  const store = new Store({ dataDir: dir, writer: 'inline' });
  try {
    const v = store.audit.verify();
    return v.ok ? [] : v.breaks;
  } finally {
    store.close();
  }
};

describe('keyed audit chain', () => {
  it('keeps its key in a 0600 file and writes a signed head at shutdown', () => {
    const dir = trail(3);
    assert.equal(fs.statSync(path.join(dir, 'audit.key')).mode & 0o777, 0o600);
    const head = JSON.parse(fs.readFileSync(path.join(dir, 'audit-head.json'), 'utf8')) as { id: number };
    assert.equal(head.id, 3);
    assert.deepEqual(breaksOf(dir), []);
  });

  it('names an edited row', async () => {
    const dir = trail(5);
    tamper(dir, (db) => db.exec("UPDATE audit SET actor = 'mallory' WHERE id = 3"));
    const breaks = breaksOf(dir);
    assert.deepEqual(
      breaks.map((b) => [b.kind, b.fromId]),
      [['edited', 3]],
    );
    const cli = await verifyCli(dir);
    assert.equal(cli.code, 1);
    assert.match(cli.stderr, /edited: row 3 was changed/);
  });

  it('names deleted newest rows, which leave a valid shorter chain', async () => {
    const dir = trail(6);
    tamper(dir, (db) => db.exec('DELETE FROM audit WHERE id > 4'));
    const breaks = breaksOf(dir);
    assert.deepEqual(
      breaks.map((b) => [b.kind, b.fromId, b.toId]),
      [['deleted-newest', 5, 6]],
    );
    assert.match((await verifyCli(dir)).stderr, /deleted-newest: rows 5 to 6 were deleted/);
  });

  it('names a chain rewritten without the key', async () => {
    const dir = trail(4);
    tamper(dir, rewriteWithoutKey);
    const kinds = breaksOf(dir).map((b) => [b.kind, b.fromId, b.toId]);
    assert.deepEqual(kinds[0], ['rewritten', 1, 4]);
    assert.match(
      (await verifyCli(dir)).stderr,
      /rewritten: rows 1 to 4 were rewritten without the audit key/,
    );
  });

  it('names a head file that was not written with the key', () => {
    const dir = trail(4);
    tamper(dir, (db) => db.exec('DELETE FROM audit WHERE id > 2'));
    const file = path.join(dir, 'audit-head.json');
    const head = JSON.parse(fs.readFileSync(file, 'utf8')) as { id: number; hash: string };
    const db = new Database(path.join(dir, 'onco-relay.db'));
    const row2 = db.prepare('SELECT hash FROM audit WHERE id = 2').get() as { hash: string };
    db.close();
    // The attacker makes the head agree with the shortened trail, but cannot sign it.
    fs.writeFileSync(file, JSON.stringify({ ...head, id: 2, hash: row2.hash }));
    assert.deepEqual(
      breaksOf(dir).map((b) => b.kind),
      ['head-forged'],
    );
  });

  it('re-keys an existing SHA-256 chain once, saying whether it was intact', () => {
    const dir = trail(3);
    tamper(dir, (db) => {
      rewriteWithoutKey(db);
      db.exec("DELETE FROM audit_meta WHERE name = 'chain'");
    });
    fs.rmSync(path.join(dir, 'audit-head.json'));
    const store = new Store({ dataDir: dir, writer: 'inline' });
    try {
      const rekey = store.audit.search({ action: 'audit-rekey' }).items;
      assert.equal(rekey.length, 1);
      assert.deepEqual(rekey[0]!.detail, { rows: 3, previousChainIntact: true });
      assert.equal(store.audit.verify().ok, true);
    } finally {
      store.close();
    }
    const again = new Store({ dataDir: dir, writer: 'inline' });
    assert.equal(again.audit.search({ action: 'audit-rekey' }).items.length, 1, 'once');
    again.close();
  });

  it('takes its key from ONCO_AUDIT_KEY when set; another key sees a rewritten chain', () => {
    const dir = trail(0);
    const key = 'k'.repeat(40);
    process.env.ONCO_AUDIT_KEY = key;
    try {
      const store = new Store({ dataDir: dir, writer: 'inline' });
      store.audit.record({ actor: 'bob', action: 'login' });
      store.audit.record({ actor: 'bob', action: 'logout' });
      assert.equal(store.audit.verify().ok, true);
      store.close();
      process.env.ONCO_AUDIT_KEY = 'x'.repeat(40);
      assert.equal(breaksOf(dir)[0]?.kind, 'rewritten');
    } finally {
      delete process.env.ONCO_AUDIT_KEY;
    }
  });

  it("links a row to the last one committed when a write whose row it follows was rolled back (rows in a caller's transaction take no savepoint of their own)", () => {
    const db = openDatabase(path.join(tempDir(), 'onco-relay.db'));
    migrate(db, allMigrations);
    const audit = new Audit(db, { key: Buffer.alloc(32, 7), headFile: null });
    // As the group commit runs writes: one transaction, each write in a savepoint of its own.
    const write = db.transaction((op: () => void) => op());
    db.transaction(() => {
      write(() => audit.record({ actor: 'alice', action: 'patient-read', patientId: 1 }));
      assert.throws(
        () =>
          write(() => {
            audit.record({ actor: 'bob', action: 'patient-read', patientId: 2 });
            throw new Error('the write failed after its audit row');
          }),
        /the write failed/,
      );
      write(() => audit.record({ actor: 'carol', action: 'patient-read', patientId: 3 }));
    })();
    const rows = db.prepare('SELECT id, actor FROM audit ORDER BY id').all();
    assert.deepEqual(rows, [
      { id: 1, actor: 'alice' },
      { id: 2, actor: 'carol' },
    ]);
    assert.equal(audit.verify().ok, true);
    audit.close();
    db.close();
  });
});
