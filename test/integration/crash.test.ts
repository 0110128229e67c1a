// The promise the whole engine rests on: kill -9 at random moments under a steady stream of input,
// restart, and every acknowledged message is processed, none filed twice, every destination served.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { startChildEngine } from '../support/child-engine.ts';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import YAML from 'yaml';
import { tempDir } from '../support/engine-harness.ts';

const KILLS = 12;

function writeConfig(dir: string): void {
  fs.mkdirSync(path.join(dir, 'channels'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'engine.yaml'), YAML.stringify({ http: { port: 0 } }));
  fs.writeFileSync(
    path.join(dir, 'channels', 'intake.yaml'),
    YAML.stringify({
      id: 'intake',
      source: { type: 'folder', path: 'inbox', archive: 'archive', stableMs: 30, pollMs: 100 },
      destinations: [
        { name: 'out-a', type: 'file-writer', path: 'out-a', fileName: '{key}' },
        { name: 'relay', type: 'channel-writer', channel: 'second', queue: 'parallel' },
      ],
    }),
  );
  fs.writeFileSync(
    path.join(dir, 'channels', 'second.yaml'),
    YAML.stringify({
      id: 'second',
      source: { type: 'folder', path: 'unused-inbox' },
      destinations: [
        { name: 'out-b', type: 'file-writer', path: 'out-b', fileName: '{key}', queue: 'parallel' },
      ],
    }),
  );
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
