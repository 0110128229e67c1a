// The IMAP source against Debian's Dovecot (started by the test with its own configuration, STARTTLS
// required): mail journaled then moved (or flagged), a UIDVALIDITY change re-reads the mailbox without
// filing anything twice, a large mail is kept as a file, a journal failure leaves the mail in place, a
// lost server is reconnected.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ImapFlow } from 'imapflow';
import type { Source } from '../../connectors/contract.ts';
import { imapPollSpec } from '../../connectors/imap.ts';
import { channelContext, type ChannelContext } from '../support/channel-context.ts';
import { startDovecot, type Dovecot } from '../support/dovecot.ts';
import { tempDir, until } from '../support/engine-harness.ts';
import { selfSignedCert, type TestCert } from '../support/self-signed-cert.ts';

const mail = (id: string, body = `Compte rendu ${id}\r\n`): Buffer =>
  Buffer.from(
    [
      'From: Labo <labo@labo.mssante.test>',
      'To: dcc@operateur.mssante.test',
      `Message-ID: <${id}>`,
      'Subject: CR',
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      '',
      body,
    ].join('\r\n'),
  );

describe('imap-poll: the MSSanté operator mailbox (Dovecot)', function () {
  this.timeout(60_000);
  let dir: string;
  let cert: TestCert;
  let dovecot: Dovecot;
  let ctx: ChannelContext;
  let admin: ImapFlow;
  const sources: Source[] = [];

  const client = () =>
    new ImapFlow({
      host: '127.0.0.1',
      port: dovecot.port,
      secure: false,
      doSTARTTLS: true,
      auth: { user: dovecot.user, pass: dovecot.password },
      tls: { ca: fs.readFileSync(path.join(cert.dir, cert.cert)) },
      logger: false,
    });

  const poller = (options: Record<string, unknown>): Source => {
    const s = imapPollSpec.create(
      {
        host: '127.0.0.1',
        port: dovecot.port,
        secure: false,
        tls: { ca: path.join(cert.dir, cert.cert) },
        user: dovecot.user,
        password: dovecot.password,
        pollMs: 100,
        reconnectMinMs: 50,
        reconnectMaxMs: 200,
        ...options,
      } as never,
      ctx,
    );
    sources.push(s);
    return s;
  };

  const uidsIn = async (mailbox: string): Promise<number> => {
    const status = await admin.status(mailbox, { messages: true });
    return status ? (status.messages ?? 0) : 0;
  };

  before(async function () {
    dir = tempDir('imap-');
    cert = selfSignedCert();
    dovecot = await startDovecot({
      tls: { cert: path.join(cert.dir, cert.cert), key: path.join(cert.dir, cert.key) },
    });
    ctx = await channelContext({ dataDir: path.join(dir, 'data') });
    admin = client();
    await admin.connect();
  });

  after(async function () {
    for (const s of sources) await s.stop();
    await admin?.logout().catch(() => undefined);
    await ctx?.stop();
    await dovecot?.stop();
    if (dovecot) fs.rmSync(dovecot.dir, { recursive: true, force: true });
    cert?.remove();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('journals each mail over STARTTLS, then moves it to the processed folder; a re-created mailbox (new UIDVALIDITY) re-files nothing', async function () {
    await admin.mailboxCreate('MSS');
    await admin.append('MSS', mail('m1@labo'));
    await admin.append('MSS', mail('m2@labo'));
    const source = poller({ mailbox: 'MSS', afterRead: 'move', moveTo: 'Processed' });
    await source.start();
    await until(() => ctx.journal.length >= 2, 'both mails journaled');
    assert.deepEqual(
      ctx.journal.map((m) => m.meta?.messageIdHeader),
      ['m1@labo', 'm2@labo'],
    );
    assert.equal(ctx.journal[0]!.contentType, 'message/rfc822');
    assert.equal(ctx.journal[0]!.sender, `imap://${dovecot.user}@127.0.0.1`);
    await until(async () => (await uidsIn('MSS')) === 0 && (await uidsIn('Processed')) === 2, 'mails moved');
    const first = ctx.journal[0]!;
    const validity = first.meta?.uidValidity;

    // The mailbox is rebuilt (restored from a backup): new UIDVALIDITY, the same mail again.
    await admin.mailboxDelete('MSS');
    await admin.mailboxCreate('MSS');
    await admin.append('MSS', mail('m1@labo'));
    await until(() => ctx.journal.length >= 3, 'the restored mail read');
    const again = ctx.journal[2]!;
    assert.notEqual(again.meta?.uidValidity, validity);
    assert.equal(again.duplicateOf, first.messageId);
    await until(async () => (await uidsIn('MSS')) === 0, 'the duplicate moved too');
    await source.stop();
  });

  it('afterRead flag: the mail stays, marked, and is not taken again', async function () {
    const before = ctx.journal.length;
    await admin.mailboxCreate('FLAGGED');
    await admin.append('FLAGGED', mail('f1@labo'));
    const source = poller({ mailbox: 'FLAGGED', afterRead: 'flag' });
    await source.start();
    await until(() => ctx.journal.length === before + 1, 'the flagged mail journaled');
    await admin.mailboxOpen('FLAGGED');
    await until(async () => {
      const msg = await admin.fetchOne('1', { flags: true });
      return msg && msg.flags?.has('$OncoRelayTaken');
    }, 'the keyword set');
    // Polls run in UID order: once the second mail is journaled, the first was seen and skipped.
    await admin.append('FLAGGED', mail('f2@labo'));
    await until(() => ctx.journal.length === before + 2, 'the second mail');
    assert.deepEqual(
      ctx.journal.slice(before).map((m) => m.meta?.messageIdHeader),
      ['f1@labo', 'f2@labo'],
    );
    await source.stop();
  });

  it('a 12 MiB mail is journaled byte-identical, kept as a file beside the database', async function () {
    const big = mail('big@labo', 'A'.repeat(76).concat('\r\n').repeat(160_000));
    await admin.mailboxCreate('BIG');
    await admin.append('BIG', big);
    const source = poller({ mailbox: 'BIG', afterRead: 'move', moveTo: 'Processed' });
    await source.start();
    const taken = await until(
      () => ctx.journal.find((m) => m.meta?.messageIdHeader === 'big@labo'),
      'the large mail journaled',
    );
    const raw = ctx.engine.store.journal.content(taken.messageId, 'raw')!;
    assert.deepEqual(raw.blob, { digest: createHash('sha256').update(big).digest('hex'), size: big.length });
    await until(async () => (await uidsIn('BIG')) === 0, 'the large mail moved');
    await source.stop();
  });

  it('a journal that fails leaves the mail in the mailbox; a server that goes away is reconnected', async function () {
    await admin.mailboxCreate('FAIL');
    await admin.append('FAIL', mail('j1@labo'));
    ctx.failure = new Error('disk full');
    const source = poller({ mailbox: 'FAIL', afterRead: 'move', moveTo: 'Processed' });
    await source.start();
    await until(() => ctx.states.some((s) => /disk full/.test(s.lastError ?? '')), 'the failure reported');
    assert.equal(await uidsIn('FAIL'), 1);
    ctx.failure = null;
    await until(
      () => ctx.journal.some((m) => m.meta?.messageIdHeader === 'j1@labo'),
      'taken once the journal is back',
    );

    await admin.logout();
    await dovecot.stop();
    await until(() => ctx.states.at(-1)?.connected === false, 'the lost server reported');
    dovecot = await startDovecot({
      tls: { cert: path.join(cert.dir, cert.cert), key: path.join(cert.dir, cert.key) },
      dir: dovecot.dir,
      port: dovecot.port,
    });
    admin = client();
    await admin.connect();
    await admin.append('FAIL', mail('j2@labo'));
    await until(
      () => ctx.journal.some((m) => m.meta?.messageIdHeader === 'j2@labo'),
      'taken after reconnecting',
    );
    await source.stop();
  });
});
