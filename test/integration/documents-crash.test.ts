// kill -9 between validation and sending: validated forms wait in the outbox, the engine (the shipped
// documents-out, -pickup and -mail channels, in a child process) is killed while it takes, writes and
// routes them, and started again. In the end every form reached each recipient once: no outbox row
// left or journaled twice, one message per form and recipient, every delivery SENT.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import Database from 'better-sqlite3';
import YAML from 'yaml';
import { startChildEngine } from '../support/child-engine.ts';
import { crashEngineYaml } from '../support/crash-loop.ts';
import { addAccount, tempDir, until } from '../support/engine-harness.ts';
import { documentDirectory, knownPatient, SUD } from '../support/documents-out.ts';
import { formContent, meetingData } from '../fixtures/documents/rcp-store.ts';
import { Store } from '../../store/store.ts';

const FORMS = 60;
const KILLS = 3;
/** CHU Sud picks up, CHU Nord picks up (no account: its deliveries fail alone), two professionals, Mon espace santé. */
const MAILS_PER_FORM = 3;

describe('documents out across kill -9', function () {
  this.timeout(480_000);
  let child: ChildProcess | undefined;
  after(() => child?.kill('SIGKILL'));

  it(`sends each of ${FORMS} validated forms once to each recipient across ${KILLS} kills`, async () => {
    const configDir = tempDir('onco-doccrash-config-');
    const dataDir = tempDir('onco-doccrash-data-');
    fs.mkdirSync(path.join(configDir, 'channels'));
    fs.writeFileSync(path.join(configDir, 'engine.yaml'), crashEngineYaml(KILLS));
    const directory = {
      ...documentDirectory,
      establishments: documentDirectory.establishments.filter((e) => e.finess === SUD),
    };
    fs.writeFileSync(path.join(configDir, 'directory.yaml'), YAML.stringify(directory));
    for (const id of ['documents-out', 'documents-pickup', 'documents-mail'])
      fs.copyFileSync(
        path.resolve('config/channels', `${id}.yaml`),
        path.join(configDir, 'channels', `${id}.yaml`),
      );

    // Validated while no engine runs: the rows wait in the outbox, as after a crash right after validation.
    const store = new Store({ dataDir });
    await addAccount(store, {
      login: 'chu-sud',
      role: 'establishment',
      finess: SUD,
      password: 'pw-chu-sud-crash',
    });
    const patientId = await knownPatient(store, true);
    const actor = { login: 'dr-rcp' };
    const meeting = await store.write.rcp.createMeeting(meetingData, actor, Date.now());
    for (let i = 0; i < FORMS; i++) {
      const f = await store.write.rcp.create(
        'frcp',
        { patientId, meetingId: meeting.id, content: formContent },
        actor,
        Date.now(),
      );
      await store.write.rcp.validate('frcp', f.id, actor, Date.now());
    }
    await store.close();

    // Mail without a relay is written as data/outbox/<key>.eml; the pickup writes NAME.xml and NAME.pdf.
    const mailDir = path.join(dataDir, 'outbox');
    const pickupDir = path.join(dataDir, 'sftp', 'chu-sud', 'out');
    const count = (dir: string) =>
      fs.existsSync(dir) ? fs.readdirSync(dir).filter((n) => /^[^.].*\.(eml|xml|pdf)$/.test(n)).length : 0;
    const args = ['--config', configDir, '--data', dataDir];
    for (let k = 0; k < KILLS; k++) {
      const before = count(mailDir) + count(pickupDir);
      const running = await startChildEngine(args);
      child = running;
      // Killed as soon as it made progress: mid-way through taking, writing and routing the forms.
      await until(() => count(mailDir) + count(pickupDir) > before, 'progress before the kill', 60_000);
      running.kill('SIGKILL');
      await running.exited;
    }
    const last = await startChildEngine(args);
    child = last;
    await until(
      () => count(pickupDir) === FORMS * 2 && count(mailDir) === FORMS * MAILS_PER_FORM,
      'every document delivered',
      // Each form's PDF and XDM zips are drawn by the way channels: allow for a loaded machine.
      300_000,
    );
    const db = new Database(path.join(dataDir, 'onco-relay.db'), { readonly: true });
    try {
      await until(
        () => db.prepare(`SELECT count(*) FROM deliveries WHERE status != 'SENT'`).pluck().get() === 0,
        'every delivery SENT',
        60_000,
      ).catch((e: Error) => {
        const open = db
          .prepare(
            `SELECT d.channel, d.destination, d.status, d.attempts, d.last_error FROM deliveries d WHERE d.status != 'SENT' LIMIT 5`,
          )
          .all();
        throw new Error(`${e.message}: ${JSON.stringify(open)}`);
      });
      const one = (sql: string) => db.prepare(sql).pluck().get();
      assert.equal(
        one('SELECT count(*) FROM outbox WHERE message_id IS NULL'),
        0,
        'no row left in the outbox',
      );
      assert.equal(
        one(`SELECT count(*) FROM messages WHERE channel = 'documents-out'`),
        FORMS,
        'each outbox row journaled once',
      );
      assert.equal(
        one(
          `SELECT count(DISTINCT json_extract(meta, '$.outboxId')) FROM messages WHERE channel = 'documents-out'`,
        ),
        FORMS,
      );
      const handed = db
        .prepare<[], { n: number }>(
          `SELECT count(*) AS n FROM messages WHERE channel IN ('documents-pickup', 'documents-mail') AND status != 'DUPLICATE'
           GROUP BY json_extract(meta, '$.documentId'), json_extract(meta, '$.recipient')`,
        )
        .all();
      assert.equal(handed.length, FORMS * (1 + MAILS_PER_FORM), 'one message per form and recipient');
      assert.ok(
        handed.every((r) => r.n === 1),
        'no recipient handed a form twice',
      );
      assert.equal(one(`SELECT count(*) FROM rcp_forms WHERE status = 'sent'`), FORMS);
    } finally {
      db.close();
    }
    last.kill('SIGTERM');
    assert.equal(await last.exited, 0, last.output());
    child = undefined;
  });
});
