// A validated RCP form, end to end: store outbox → documents-out (CDA) → one message per recipient
// → a real OpenSSH server (CHU Nord), the pickup folder of CHU Sud's SFTP account, the MSSanté
// mailboxes of two professionals and the patient's Mon espace santé (as files until the MSSanté
// sender is on main).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { addAccount, startEngine, until, type Harness } from '../support/engine-harness.ts';
import { startSshd, type Sshd } from '../support/sshd.ts';
import {
  documentChannels,
  documentDirectory,
  GP_MAIL,
  INS,
  knownPatient,
  NORD,
  REFERRING_MAIL,
  SUD,
} from '../support/documents-out.ts';
import { formContent, meetingData } from '../fixtures/documents/rcp-store.ts';

const actor = { login: 'dr-rcp', role: 'operator' };

describe('documents out: a validated RCP form reaches each of its recipients', function () {
  this.timeout(60_000);
  let sshd: Sshd;
  let h: Harness;
  let remote: string;
  let meetingId: number;

  before(async () => {
    sshd = await startSshd();
    remote = path.join(sshd.files, 'nord-in');
    fs.mkdirSync(remote);
    h = await startEngine({ channels: documentChannels(sshd, remote), directory: documentDirectory });
    await addAccount(h.engine.store, {
      login: 'chu-sud',
      role: 'establishment',
      finess: SUD,
      password: 'a long test password',
    });
    meetingId = (await h.engine.store.write.rcp.createMeeting(meetingData, actor, Date.now())).id;
  });
  after(async () => {
    await h?.stop();
    await sshd?.stop();
  });

  const validated = async (patientId: number) => {
    const { rcp } = h.engine.store.write;
    const form = await rcp.create('frcp', { patientId, meetingId, content: formContent }, actor, Date.now());
    await rcp.validate('frcp', form.id, actor, Date.now());
    return { id: form.id, name: `FRCP-${form.id}-1` };
  };
  const mails = (name: string): string[] =>
    fs.existsSync(path.join(h.dataDir, 'outbox/mail'))
      ? fs
          .readdirSync(path.join(h.dataDir, 'outbox/mail'))
          .filter((f) => f.startsWith(`${name}-`))
          .sort()
      : [];

  /** The messages handed to the recipients' channels for one form, with their delivery status. */
  const deliveries = (formId: number) => {
    const { journal, db } = h.engine.store;
    const ids = db
      .prepare<[number], number>(
        `SELECT id FROM messages WHERE channel != 'documents-out' AND status != 'DUPLICATE'
         AND json_extract(meta, '$.documentId') = ? AND json_extract(meta, '$.documentKind') = 'frcp' ORDER BY id`,
      )
      .pluck()
      .all(formId);
    return ids.map((id) => {
      const m = journal.message(id)!;
      return {
        recipient: String(m.meta.recipient),
        channel: m.channel,
        status: journal.deliveries(id)[0]!.status,
      };
    });
  };

  it('qualified INS: both hospitals (SFTP push, pickup), two professionals and Mon espace santé', async () => {
    const patientId = await knownPatient(h.engine.store, true);
    const { id, name } = await validated(patientId);
    const pushed = path.join(remote, `${name}.xml`);
    const picked = path.join(h.dataDir, 'sftp', 'chu-sud', 'out', `${name}.xml`);
    await until(
      () => fs.existsSync(pushed) && fs.existsSync(picked) && mails(name).length === 3,
      'every recipient',
    );
    const cda = fs.readFileSync(pushed, 'utf8');
    assert.match(cda, /<ClinicalDocument/);
    assert.match(cda, new RegExp(`extension="${name}"`));
    assert.match(cda, new RegExp(`extension="${INS}"`));
    assert.equal(fs.readFileSync(picked, 'utf8'), cda, 'the same document for each recipient');
    assert.deepEqual(mails(name), [
      `${name}-mes.xml`,
      `${name}-rpps_10000000004.xml`,
      `${name}-rpps_10000000005.xml`,
    ]);
    await until(
      () => deliveries(id).every((d) => d.status === 'SENT') && deliveries(id).length === 5,
      'SENT',
    );
    assert.deepEqual(
      deliveries(id)
        .map((d) => `${d.recipient} ${d.channel}`)
        .sort(),
      [
        `finess:${SUD} documents-pickup`,
        `finess:${NORD} documents-sftp-nord`,
        'mes documents-mail',
        'rpps:10000000004 documents-mail',
        'rpps:10000000005 documents-mail',
      ],
    );
    const to = h.engine.store.db
      .prepare<[number], string>(
        `SELECT json_extract(meta, '$.to') FROM messages WHERE channel = 'documents-mail'
         AND json_extract(meta, '$.documentId') = ? ORDER BY json_extract(meta, '$.to')`,
      )
      .pluck()
      .all(id);
    assert.deepEqual(to, [`${INS}@patient.mssante.fr`, REFERRING_MAIL, GP_MAIL].sort());
    await until(() => h.engine.store.rcp.document('frcp', id)?.status === 'sent', 'status sent');
  });

  it('no Mon espace santé without a qualified INS, nor with an opposition recorded', async () => {
    const unqualified = await validated(await knownPatient(h.engine.store, false, 'IPP-UNQ'));
    const opposedId = await knownPatient(h.engine.store, true, 'IPP-OPP');
    await h.engine.store.write.rcp.setOpposition(opposedId, 'mes', true, actor, Date.now());
    const opposed = await validated(opposedId);
    for (const f of [unqualified, opposed]) {
      await until(
        () => deliveries(f.id).length === 4 && deliveries(f.id).every((d) => d.status === 'SENT'),
        'sent',
      );
      assert.deepEqual(mails(f.name), [`${f.name}-rpps_10000000004.xml`, `${f.name}-rpps_10000000005.xml`]);
    }
    const cda = fs.readFileSync(path.join(remote, `${unqualified.name}.xml`), 'utf8');
    assert.doesNotMatch(cda, new RegExp(INS), 'an unqualified INS is not written');
  });
});
