// What a mail sender relies on: a 250 means "stored". nodemailer streams mail into a child engine
// killed with SIGKILL at random moments, some between the journal commit and the 250; after each
// restart the sender retries every mail it holds no 250 for, byte for byte (as an MTA's queue does).
// At the end each mail is filed exactly once, every retry of a stored mail is recorded as a DUPLICATE,
// and the destination wrote one file per filed mail.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import YAML from 'yaml';
import { startChildEngine } from '../support/child-engine.ts';
import { tempDir, until } from '../support/engine-harness.ts';
import { freePort } from '../support/ports.ts';
import { plainTransport, sendMail } from '../support/smtp-send.ts';

const KILLS = 3;
const MAX_KILLS = 10;
const SENDERS = 6;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function raw(id: string): string {
  return [
    'From: Labo <anapath@labo-demo.mssante.fr>',
    'To: pathology@dcc.test',
    `Message-ID: <${id}@labo-demo.mssante.fr>`,
    'Subject: CR',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    `Compte rendu ${id} `.repeat(200),
    '',
  ].join('\r\n');
}

/** An MTA's queue: mails not answered 250 are sent again, identical, until they are. */
class RetryingSender {
  readonly sends = new Map<string, number>();
  readonly accepted = new Set<string>();
  produced = 0;
  producing = true;

  session(port: number): () => Promise<void> {
    let alive = true;
    const queue = this.unaccepted();
    const transport = plainTransport(port, {
      connectionTimeout: 2000,
      greetingTimeout: 2000,
      socketTimeout: 5000,
    });
    const worker = async (): Promise<void> => {
      while (alive) {
        const id =
          queue.shift() ?? (this.producing ? `M${String(this.produced++).padStart(5, '0')}` : undefined);
        if (!id) return;
        this.sends.set(id, (this.sends.get(id) ?? 0) + 1);
        try {
          await sendMail(transport, 'pathology@dcc.test', raw(id), 'anapath@labo-demo.mssante.fr');
          this.accepted.add(id);
        } catch {
          alive = false; // the engine died under us: the next session retries
        }
      }
    };
    const running = Promise.all(Array.from({ length: SENDERS }, worker));
    return async () => {
      alive = false;
      await running;
      transport.close();
    };
  }

  unaccepted(): string[] {
    return [...this.sends.keys()].filter((id) => !this.accepted.has(id));
  }
}

describe('SMTP inbox crash safety (kill -9 between DATA and 250)', function () {
  this.timeout(300_000);
  const children = new Set<ChildProcess>();
  after(() => {
    for (const c of children) c.kill('SIGKILL');
  });

  it(`files every mail exactly once across ${KILLS} or more kills, retries recorded as duplicates`, async () => {
    const configDir = tempDir('onco-smtp-crash-config-');
    const dataDir = tempDir('onco-smtp-crash-data-');
    const port = await freePort();
    fs.mkdirSync(path.join(configDir, 'channels'), { recursive: true });
    fs.writeFileSync(path.join(configDir, 'engine.yaml'), YAML.stringify({ http: { port: 0 } }));
    fs.writeFileSync(
      path.join(configDir, 'channels', 'mss-in.yaml'),
      YAML.stringify({
        id: 'mss-in',
        source: { type: 'smtp-inbox', mailbox: 'pathology@dcc.test', port },
        destinations: [{ name: 'out', type: 'file-writer', path: 'out', fileName: '{key}' }],
      }),
    );
    const sender = new RetryingSender();
    const start = async () => {
      const child = await startChildEngine(['--config', configDir, '--data', dataDir]);
      children.add(child);
      child.once('exit', () => children.delete(child));
      return child;
    };
    const db = () => new Database(path.join(dataDir, 'onco-relay.db'), { readonly: true });
    const duplicatesSoFar = () => {
      const d = db();
      const n = d.prepare(`SELECT count(*) FROM messages WHERE status = 'DUPLICATE'`).pluck().get();
      d.close();
      return n as number;
    };

    let child = await start();
    let endSession = sender.session(port);
    // A kill lands between a commit and its 250 only now and then: go on past KILLS until one has.
    let kills = 0;
    while (kills < KILLS || (kills < MAX_KILLS && duplicatesSoFar() === 0)) {
      kills++;
      // Long enough for a loaded machine's fresh engine to take a few mails before it dies.
      await sleep(1500 + Math.random() * 1500);
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      await endSession();
      child = await start();
      endSession = sender.session(port);
    }
    sender.producing = false;
    await until(() => sender.unaccepted().length === 0, 'the last 250s', 30_000);
    await endSession();
    await until(
      () => {
        const d = db();
        const open = d
          .prepare(
            `SELECT (SELECT count(*) FROM deliveries WHERE status IN ('WAITING','QUEUED'))
                  + (SELECT count(*) FROM messages WHERE status = 'RECEIVED')`,
          )
          .pluck()
          .get() as number;
        d.close();
        return open === 0;
      },
      'the destination to drain',
      20_000,
    );
    child.kill('SIGTERM');
    assert.equal(await new Promise((r) => child.once('exit', r)), 0, 'SIGTERM stops the engine with 0');

    const d = db();
    const rows = d
      .prepare(
        `SELECT id, status, json_extract(meta, '$.messageIdHeader') AS mid FROM messages
         WHERE channel = 'mss-in' ORDER BY id`,
      )
      .all() as Array<{ id: number; status: string; mid: string }>;
    d.close();
    const byMail = new Map<string, typeof rows>();
    for (const r of rows) byMail.set(r.mid, [...(byMail.get(r.mid) ?? []), r]);
    const acceptedIds = [...sender.accepted].map((id) => `${id}@labo-demo.mssante.fr`).sort();
    assert.deepEqual([...byMail.keys()].sort(), acceptedIds, 'every mail answered 250 is journaled');
    let duplicates = 0;
    for (const [mid, copies] of byMail) {
      assert.notEqual(copies[0]!.status, 'DUPLICATE', `${mid}: its first copy is filed`);
      assert.deepEqual(
        copies.slice(1).map((r) => r.status),
        copies.slice(1).map(() => 'DUPLICATE'),
        `${mid}: every later copy is recorded as a duplicate, not filed again`,
      );
      duplicates += copies.length - 1;
    }
    const filed = rows.filter((r) => r.status !== 'DUPLICATE');
    const out = fs.readdirSync(path.join(dataDir, 'out')).filter((n) => !n.startsWith('.'));
    assert.equal(out.length, filed.length, 'one written file per filed mail');
    assert.ok(duplicates > 0, 'some kill fell between a commit and its 250: the scenario was exercised');
    console.log(
      `      ${sender.produced} mails, ${kills} kills, ${[...sender.sends.values()].filter((n) => n > 1).length} retried, ${duplicates} recorded as duplicates`,
    );
    fs.rmSync(configDir, { recursive: true, force: true });
    fs.rmSync(dataDir, { recursive: true, force: true });
  });
});
