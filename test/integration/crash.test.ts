// The promise the whole engine rests on: kill -9 at random moments under a steady stream of input,
// restart, and every acknowledged message is processed, none filed twice, every destination served.
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { startChildEngine } from '../support/child-engine.ts';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import YAML from 'yaml';
import { freePort } from '../support/ports.ts';
import { openssh } from '../support/openssh-sftp.ts';
import { a28, type PamPatient } from '../support/pam.ts';
import { parseAck } from '../../transformers/hl7v2-ack.ts';

const crashPerson: PamPatient = {
  birthName: 'CRASH',
  given: 'CAMILLE',
  birthDate: '19720415',
  sex: 'F',
  ipp: '',
  finess: '310000001',
};
import { writeCrashConfig } from '../support/crash-loop.ts';
import { tempDir, until } from '../support/engine-harness.ts';

const KILLS = 12;

function writeConfig(dir: string): void {
  writeCrashConfig(dir, KILLS, {
    'channels/intake.yaml': {
      id: 'intake',
      source: { type: 'folder', path: 'inbox', archive: 'archive', stableMs: 30, pollMs: 100 },
      destinations: [
        { name: 'out-a', type: 'file-writer', path: 'out-a', fileName: '{key}' },
        { name: 'relay', type: 'channel-writer', channel: 'second', queue: 'parallel' },
      ],
    },
    'channels/second.yaml': {
      id: 'second',
      source: { type: 'folder', path: 'unused-inbox' },
      destinations: [
        { name: 'out-b', type: 'file-writer', path: 'out-b', fileName: '{key}', queue: 'parallel' },
      ],
    },
  });
}

const startChild = (configDir: string, dataDir: string) =>
  startChildEngine(['--config', configDir, '--data', dataDir]);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const listFiles = (dir: string) =>
  fs.existsSync(dir) ? fs.readdirSync(dir).filter((n) => !n.startsWith('.')) : [];

describe('crash safety (kill -9 under load)', function () {
  this.timeout(180_000);
  let child: ChildProcess | undefined;
  // A failed assertion must not leave an engine running on the machine.
  after(() => child?.kill('SIGKILL'));

  it(`loses nothing acknowledged and files nothing twice across ${KILLS} kills`, async () => {
    const configDir = tempDir('onco-crash-config-');
    const dataDir = tempDir('onco-crash-data-');
    writeConfig(configDir);
    const inbox = path.join(dataDir, 'inbox');
    fs.mkdirSync(inbox, { recursive: true });

    // A steady producer: each file written under a temporary name, then renamed, as clients do.
    let produced = 0;
    let producing = true;
    const producer = (async () => {
      while (producing) {
        const name = `msg-${String(produced).padStart(6, '0')}.txt`;
        fs.writeFileSync(path.join(inbox, `${name}.part`), `payload ${produced} ${'x'.repeat(200)}`);
        fs.renameSync(path.join(inbox, `${name}.part`), path.join(inbox, name));
        produced++;
        await sleep(10);
      }
    })();

    child = await startChild(configDir, dataDir);
    for (let k = 0; k < KILLS; k++) {
      await sleep(150 + Math.random() * 600);
      const killed = child;
      killed.kill('SIGKILL');
      await new Promise((r) => killed.once('exit', r));
      child = await startChild(configDir, dataDir);
    }
    producing = false;
    await producer;

    // Let the last engine drain everything, then stop it the orderly way. The bound is on progress,
    // not on speed: a loaded CI machine may be slow, but a stuck queue makes no progress at all.
    let lastProgress = Date.now();
    let lastLeft = Infinity;
    const db = () => new Database(path.join(dataDir, 'onco-relay.db'), { readonly: true });
    for (;;) {
      const d = db();
      const open = d
        .prepare(`SELECT count(*) FROM deliveries WHERE status IN ('WAITING','QUEUED')`)
        .pluck()
        .get() as number;
      const backlog = d
        .prepare(`SELECT count(*) FROM messages WHERE status = 'RECEIVED'`)
        .pluck()
        .get() as number;
      d.close();
      const left = listFiles(inbox).length + open + backlog;
      if (left === 0) break;
      if (left < lastLeft) [lastLeft, lastProgress] = [left, Date.now()];
      assert.ok(
        Date.now() - lastProgress < 30_000,
        `the engine made no progress for 30 s with ${left} items left`,
      );
      await sleep(200);
    }
    const last = child;
    last.kill('SIGTERM');
    const code = await new Promise((r) => last.once('exit', r));
    child = undefined;
    assert.equal(code, 0, 'SIGTERM must stop the engine cleanly with exit code 0');

    const d = db();
    const archived = listFiles(path.join(dataDir, 'archive')).filter((n) => /^msg-\d+\.txt$/.test(n));
    const rows = d
      .prepare(`SELECT id, channel, status, json_extract(meta, '$.fileName') AS file FROM messages`)
      .all() as Array<{ id: number; channel: string; status: string; file: string }>;
    const filed = rows.filter((r) => r.channel === 'intake' && r.status !== 'DUPLICATE');
    const byFile = new Map<string, number>();
    for (const r of filed) byFile.set(r.file, (byFile.get(r.file) ?? 0) + 1);

    assert.equal(
      produced,
      archived.length,
      'every produced file was acknowledged (moved to archive) by the end',
    );
    for (const name of archived) assert.equal(byFile.get(name), 1, `${name} must be filed exactly once`);
    assert.equal(filed.length, produced);

    const outA = new Set(listFiles(path.join(dataDir, 'out-a')));
    const outB = new Set(listFiles(path.join(dataDir, 'out-b')));
    const second = rows.filter((r) => r.channel === 'second' && r.status !== 'DUPLICATE');
    assert.equal(second.length, produced, 'the relayed channel filed each message exactly once');
    for (const r of filed) {
      const content = fs.readFileSync(path.join(dataDir, 'archive', r.file), 'utf8');
      assert.ok(outA.has(`intake-${r.id}-out-a`), `destination out-a missed message ${r.id}`);
      assert.equal(fs.readFileSync(path.join(dataDir, 'out-a', `intake-${r.id}-out-a`), 'utf8'), content);
    }
    for (const r of second)
      assert.ok(outB.has(`second-${r.id}-out-b`), `destination out-b missed message ${r.id}`);
    const duplicates = rows.filter((r) => r.status === 'DUPLICATE').length;
    d.close();
    console.log(
      `      ${produced} files, ${KILLS} kills, ${duplicates} re-deliveries recorded as duplicates`,
    );
  });
});

describe('poison-message guard (a message that kills the engine)', function () {
  this.timeout(120_000);
  let child: (ChildProcess & { output: () => string }) | undefined;
  after(() => child?.kill('SIGKILL'));

  /** Resolves with the exit code once the process has ended (at once if it already has). */
  const exitOf = (p: ChildProcess): Promise<number | null> =>
    p.exitCode !== null || p.signalCode !== null
      ? Promise.resolve(p.exitCode)
      : new Promise((r) => p.once('exit', (code) => r(code)));

  const poisonEngine = (configDir: string, dataDir: string) =>
    startChildEngine([configDir, dataDir], process.env, {
      entry: ['--import', 'tsx', path.resolve('test/support/poison-engine.ts')],
    });

  /**
   * Starts the engine again each time the poison kills it, until it stays up with the poison
   * quarantined; returns how many times it died.
   */
  async function restartUntilQuarantined(
    configDir: string,
    dataDir: string,
    poison: string,
  ): Promise<number> {
    const dbFile = path.join(dataDir, 'onco-relay.db');
    const quarantined = (): boolean => {
      if (!fs.existsSync(dbFile)) return false;
      const d = new Database(dbFile, { readonly: true });
      try {
        const n = d
          .prepare(
            `SELECT count(*) FROM messages m JOIN contents c ON c.message_id = m.id AND c.stage = 'raw'
             WHERE m.status = 'QUARANTINED' AND CAST(c.content AS TEXT) = ?`,
          )
          .pluck()
          .get(poison) as number;
        return n > 0;
      } catch {
        return false; // the schema is not there yet
      } finally {
        d.close();
      }
    };
    let deaths = 0;
    for (;;) {
      assert.ok(deaths <= 6, `the engine died ${deaths} times: the poison was never quarantined`);
      try {
        child = await poisonEngine(configDir, dataDir);
      } catch {
        deaths++; // killed during recovery, before it said it started
        continue;
      }
      const exited = exitOf(child).then(() => 'died' as const);
      const settled = await Promise.race([
        exited,
        until(quarantined, 'quarantine', 60_000).then(() => 'up' as const),
      ]);
      if (settled === 'up') return deaths;
      deaths++;
    }
  }

  function config(dir: string, channel: object): void {
    fs.mkdirSync(path.join(dir, 'channels'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'engine.yaml'), YAML.stringify({ http: { port: 0 } }));
    fs.writeFileSync(
      path.join(dir, 'channels', 'intake.yaml'),
      YAML.stringify({
        id: 'intake',
        source: { type: 'folder', path: 'inbox', archive: 'archive', stableMs: 30, pollMs: 50 },
        ...channel,
      }),
    );
  }

  for (const [where, poison, channel] of [
    [
      'a processing step',
      'POISON-STEP',
      {
        steps: [{ type: 'test-crash' }],
        destinations: [{ name: 'out', type: 'file-writer', path: 'out', fileName: '{meta.fileName}' }],
      },
    ],
    [
      'a store writer',
      'POISON-APPLY',
      { destinations: [{ name: 'store', type: 'test-crash-store', queue: 'ordered' }] },
    ],
  ] as const) {
    it(`quarantines a message that kills the engine in ${where} after 3 deaths; the messages behind it flow`, async () => {
      const configDir = tempDir('onco-poison-config-');
      const dataDir = tempDir('onco-poison-data-');
      config(configDir, channel);
      const inbox = path.join(dataDir, 'inbox');
      fs.mkdirSync(inbox, { recursive: true });
      fs.writeFileSync(path.join(inbox, 'a-before.txt'), 'before');
      child = await poisonEngine(configDir, dataDir);
      const firstDeath = exitOf(child);
      await until(() => listFiles(path.join(dataDir, 'archive')).length === 1, 'the first file taken');
      // The poison, then a message behind it: the poison must not hold it back for ever.
      fs.writeFileSync(path.join(inbox, 'b-poison.txt'), poison);
      await firstDeath;
      fs.writeFileSync(path.join(inbox, 'c-after.txt'), 'after');
      const deaths = 1 + (await restartUntilQuarantined(configDir, dataDir, poison));
      assert.equal(deaths, 3, 'quarantined after exactly three deaths, not before, not later');

      const delivered = (): string[] =>
        channel.destinations[0]!.type === 'file-writer'
          ? listFiles(path.join(dataDir, 'out')).sort()
          : (fs.readFileSync(path.join(dataDir, 'filed.txt'), 'utf8').trim().split('\n') ?? []).sort();
      const expected =
        channel.destinations[0]!.type === 'file-writer'
          ? ['a-before.txt', 'c-after.txt']
          : ['after', 'before'];
      await until(() => delivered().length === 2, 'the message behind the poison delivered', 30_000);
      assert.deepEqual(delivered(), expected);

      const d = new Database(path.join(dataDir, 'onco-relay.db'), { readonly: true });
      const row = d
        .prepare(
          `SELECT m.status, m.error, (SELECT group_concat(status || ':' || coalesce(last_error, ''))
             FROM deliveries WHERE message_id = m.id) AS deliveries
           FROM messages m WHERE json_extract(m.meta, '$.fileName') = 'b-poison.txt'`,
        )
        .get() as { status: string; error: string; deliveries: string };
      d.close();
      assert.equal(row.status, 'QUARANTINED');
      assert.match(row.error, poison === 'POISON-STEP' ? /^POISON_MESSAGE/ : /DELIVERY_QUARANTINED/);
      if (poison === 'POISON-APPLY') assert.match(row.deliveries, /^QUARANTINED:DELIVERY_QUARANTINED/);

      const last = child!;
      last.kill('SIGTERM');
      assert.equal(await exitOf(last), 0);
      child = undefined;
    });
  }
});

describe('SFTP ACK files after kill -9', function () {
  this.timeout(240_000);
  let child: ChildProcess | undefined;
  after(() => child?.kill('SIGKILL'));

  it('writes every ACK file still due when the engine died, once it is back: one per acknowledged file', async () => {
    const configDir = tempDir('onco-ackcrash-config-');
    const dataDir = tempDir('onco-ackcrash-data-');
    const port = await freePort();
    fs.mkdirSync(path.join(configDir, 'channels'), { recursive: true });
    fs.writeFileSync(path.join(configDir, 'engine.yaml'), YAML.stringify({ http: { port: 0 } }));
    fs.writeFileSync(
      path.join(configDir, 'directory.yaml'),
      YAML.stringify({ establishments: [{ finess: '310000001', name: 'CHU A' }] }),
    );
    fs.writeFileSync(
      path.join(configDir, 'channels', 'ids.yaml'),
      YAML.stringify({
        id: 'ids',
        source: { type: 'sftp-drop', folder: 'identity', port },
        steps: [{ type: 'pam-fr', acceptTestIns: true }],
        destinations: [{ name: 'identities', type: 'identity-store', queue: 'ordered' }],
      }),
    );
    const keyFile = path.join(configDir, 'id');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', '', '-f', keyFile]);
    execFileSync(process.execPath, [
      'bin/onco-relay.mjs',
      'user',
      'add',
      'chu',
      '--role',
      'establishment',
      '--finess',
      '310000001',
      '--ssh-key',
      `${keyFile}.pub`,
      '--data',
      dataDir,
    ]);
    const staging = tempDir('onco-ackcrash-files-');

    // OpenSSH's sftp uploading file after file and, like a real client, sending a file again until
    // its upload is acknowledged (the batch's put succeeded: its CLOSE was answered OK).
    const acknowledged = new Set<string>();
    let producing = true;
    const producer = (async () => {
      for (let n = 0; producing;) {
        const name = `f-${String(n).padStart(5, '0')}.hl7`;
        const local = path.join(staging, name);
        // A file of many identities: its filing, which its ACK waits for, takes a while.
        const identities = Array.from({ length: 100 }, (_, i) =>
          a28({ ...crashPerson, ipp: `K-${n}-${i}` }, `K${n}`),
        );
        fs.writeFileSync(local, identities.join(''));
        const run = await openssh(port, 'chu', keyFile, [`put ${local} /in/identity/${name}`]);
        if (run.code === 0) {
          acknowledged.add(name);
          n++;
        } else await sleep(50); // the engine is down: send it again
      }
    })();

    const db = () => new Database(path.join(dataDir, 'onco-relay.db'), { readonly: true });
    const dueNow = (): number => {
      const d = db();
      try {
        return d.prepare('SELECT count(*) FROM answers WHERE due = 1').pluck().get() as number;
      } finally {
        d.close();
      }
    };
    let dueAtKills = 0;
    child = await startChildEngine(['--config', configDir, '--data', dataDir]);
    for (let k = 0; k < 3; k++) {
      // At a moment when the journal says an ACK file is due (a file taken, its answer not written).
      await until(() => dueNow() > 0, 'an ACK file due', 60_000);
      const killed = child;
      killed.kill('SIGKILL');
      await new Promise((r) => killed.once('exit', r));
      dueAtKills += dueNow();
      child = await startChildEngine(['--config', configDir, '--data', dataDir]);
    }
    producing = false;
    await producer;
    assert.ok(dueAtKills > 0, 'some kill left an ACK file due: otherwise this test proves nothing');

    const ackDir = path.join(dataDir, 'sftp', 'chu', 'out', 'ack');
    await until(() => dueNow() === 0, 'every due answer written', 60_000);
    const last = child;
    last.kill('SIGTERM');
    assert.equal(await new Promise((r) => last.once('exit', (code) => r(code))), 0);
    child = undefined;
    for (const name of acknowledged) {
      const file = path.join(ackDir, `${name}.ack.hl7`);
      assert.ok(fs.existsSync(file), `no ACK file for the acknowledged ${name}`);
      const ack = parseAck(fs.readFileSync(file));
      assert.equal(ack.code, 'AA', `${name}: ${ack.text}`);
      assert.equal(ack.controlId, `K${Number(name.slice(2, 7))}`);
    }
    const stray = listFiles(ackDir).filter((f) => !acknowledged.has(f.replace(/\.ack\.hl7$/, '')));
    // A file whose upload was cut by a kill after its commit is journaled and answered, though the
    // client never heard its CLOSE answered: it sends it again, and the copy has the same ACK file.
    assert.ok(stray.length <= 15, `ACK files for files never sent: ${stray.join(', ')}`);
    console.log(`      ${acknowledged.size} files, ${dueAtKills} ACK files due at the kills, all written`);
  });
});
