// The MSSanté inbox (built-in SMTP server, `smtp-inbox` sources) against real senders: nodemailer and
// Debian's swaks, in clear and with STARTTLS, with AUTH and client certificates.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import nodemailer from 'nodemailer';
import type { Source, SourceContext } from '../../connectors/contract.ts';
import { smtpInboxSpec } from '../../connectors/smtp-inbox.ts';
import {
  startConnectorEngine,
  type ChannelContext,
  type ConnectorEngine,
} from '../support/channel-context.ts';
import { tempDir } from '../support/engine-harness.ts';
import { selfSignedCert, type TestCert } from '../support/self-signed-cert.ts';
import { labMail, plainTransport, sendMail, type SmtpTransporter } from '../support/smtp-send.ts';

const DOMAIN = 'dcc.test';

/** swaks to the inbox at `port`: the envelope, then the options of the case. */
function swaks(
  port: number,
  to: string,
  from: string,
  ...more: string[]
): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(
      'swaks',
      [
        '--hide-informational',
        '--suppress-data',
        '--server',
        `127.0.0.1:${port}`,
        '--to',
        to,
        '--from',
        from,
        ...more,
      ],
      { timeout: 30_000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr }),
    );
  });
}

interface Inbox {
  engine: ConnectorEngine;
  pathology: ChannelContext;
  molecular: ChannelContext;
  sources: Source[];
  port: number;
}

async function inbox(
  dataDir: string,
  server: Record<string, unknown>,
  accounts: Parameters<typeof startConnectorEngine>[0]['accounts'] = [],
): Promise<Inbox> {
  const engine = await startConnectorEngine({
    dataDir,
    accounts,
    channels: [{ id: 'mss-pathology' }, { id: 'mss-molecular' }],
  });
  const pathology = engine.context('mss-pathology');
  const molecular = engine.context('mss-molecular');
  const sources = [
    smtpInboxSpec.create({ mailbox: `pathology@${DOMAIN}`, port: 0, ...server }, pathology),
    smtpInboxSpec.create(
      { mailbox: `Molecular@${DOMAIN}`, port: 0, allowFrom: ['plateforme@mol.mssante.test'], ...server },
      molecular,
    ),
  ];
  for (const s of sources) await s.start();
  const port = Number(/:(\d+) /.exec(pathology.states.at(-1)?.detail ?? '')?.[1]);
  assert.ok(port > 0);
  return { engine, pathology, molecular, sources, port };
}

/** The mail a mailbox journaled last. */
const last = (mailbox: ChannelContext) => mailbox.journal.at(-1);

/** Runs `act`, a refused send, and checks that neither mailbox journaled anything meanwhile. */
async function journalsNothing(box: Inbox, act: () => Promise<void>): Promise<void> {
  const before = box.pathology.journal.length + box.molecular.journal.length;
  await act();
  assert.equal(box.pathology.journal.length + box.molecular.journal.length, before);
}

async function close(box: Inbox | undefined): Promise<void> {
  for (const s of box?.sources ?? []) await s.stop();
  await box?.engine.stop();
}

describe('smtp-inbox: the MSSanté inbox', function () {
  this.timeout(60_000);

  describe('in clear, STARTTLS offered', function () {
    let dir: string;
    let cert: TestCert;
    let box: Inbox;

    before(async function () {
      dir = tempDir('smtp-inbox-');
      cert = selfSignedCert();
      box = await inbox(dir, {
        maxMessageBytes: 64 * 1024,
        tls: { cert: path.join(cert.dir, cert.cert), key: path.join(cert.dir, cert.key) },
      });
    });

    after(async function () {
      await close(box);
      cert?.remove();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    const transport = () => plainTransport(box.port);

    it('nodemailer: journaled before the 250, keyed on Message-ID, envelope in meta', async function () {
      const info = await sendMail(
        transport(),
        `pathology@${DOMAIN}`,
        labMail(`pathology@${DOMAIN}`, 'cr-1@labo.mssante.test'),
      );
      assert.match(info.response, /^250 /);
      // sendMail resolved on the 250: the journal must hold the mail already.
      const got = last(box.pathology);
      assert.ok(got);
      assert.equal(got.contentType, 'message/rfc822');
      assert.match(got.content.toString(), /Message-ID: <cr-1@labo.mssante.test>/);
      assert.equal(got.meta?.mailFrom, 'labo@labo.mssante.test');
      assert.equal(got.meta?.mailbox, `pathology@${DOMAIN}`);
      assert.equal(got.meta?.messageIdHeader, 'cr-1@labo.mssante.test');
      assert.equal(got.meta?.tls, false);
      assert.equal(got.dedupKey, `mail:pathology@${DOMAIN}:cr-1@labo.mssante.test`);
    });

    it('the same mail sent again is a duplicate, not a second message to file', async function () {
      const raw = labMail(`pathology@${DOMAIN}`, 'cr-twice@labo.mssante.test');
      const send = () => sendMail(transport(), `pathology@${DOMAIN}`, raw);
      await send();
      const first = last(box.pathology)!;
      await send();
      const second = last(box.pathology)!;
      assert.notEqual(second.messageId, first.messageId);
      assert.equal(second.duplicateOf, first.messageId);
    });

    it('refuses an unknown recipient at RCPT TO with 550, and journals nothing', async function () {
      await journalsNothing(box, async () => {
        await assert.rejects(
          sendMail(transport(), `nobody@${DOMAIN}`, labMail(`nobody@${DOMAIN}`, 'x@y')),
          (err: { responseCode?: number; command?: string; response?: string }) => {
            assert.equal(err.responseCode, 550);
            assert.equal(err.command, 'RCPT TO');
            assert.match(err.response ?? '', /no mailbox nobody@dcc\.test/);
            return true;
          },
        );
        const r = await swaks(box.port, `nobody@${DOMAIN}`, 'a@b.test');
        assert.notEqual(r.code, 0);
        assert.match(r.out, /<\*\* 550 /);
      });
    });

    it('enforces the allow-list of a mailbox at RCPT TO; the recipient is matched without case', async function () {
      await assert.rejects(
        sendMail(transport(), `molecular@${DOMAIN}`, labMail(`molecular@${DOMAIN}`, 'm-1@labo')),
        (err: { responseCode?: number; command?: string }) =>
          err.responseCode === 550 && err.command === 'RCPT TO',
      );
      await sendMail(
        transport(),
        `MOLECULAR@${DOMAIN}`,
        labMail(`molecular@${DOMAIN}`, 'm-2@mol'),
        'Plateforme@mol.mssante.test',
      );
      assert.equal(last(box.molecular)?.meta?.messageIdHeader, 'm-2@mol');
    });

    it('swaks in clear, then swaks with STARTTLS: both journaled, the TLS one marked so', async function () {
      const body = path.join(dir, 'swaks.eml');
      fs.writeFileSync(body, labMail(`pathology@${DOMAIN}`, 'swaks-plain@labo'));
      const plain = await swaks(box.port, `pathology@${DOMAIN}`, 'labo@labo.mssante.test', '--data', body);
      assert.equal(plain.code, 0, plain.out);
      assert.equal(last(box.pathology)?.meta?.messageIdHeader, 'swaks-plain@labo');
      assert.equal(last(box.pathology)?.meta?.tls, false);
      fs.writeFileSync(body, labMail(`pathology@${DOMAIN}`, 'swaks-tls@labo'));
      const tls = await swaks(
        box.port,
        `pathology@${DOMAIN}`,
        'labo@labo.mssante.test',
        '--data',
        body,
        '--tls',
      );
      assert.equal(tls.code, 0, tls.out);
      assert.match(tls.out, /<~ {2}250 /);
      assert.equal(last(box.pathology)?.meta?.messageIdHeader, 'swaks-tls@labo');
      assert.equal(last(box.pathology)?.meta?.tls, true);
    });

    it('answers 552 to a mail over the size limit and journals nothing of it', async function () {
      await journalsNothing(box, async () => {
        const big = labMail(`pathology@${DOMAIN}`, 'big@labo', 'A'.repeat(76).concat('\r\n').repeat(4000));
        await assert.rejects(
          sendMail(transport(), `pathology@${DOMAIN}`, big),
          (err: { responseCode?: number; command?: string }) => {
            assert.equal(err.responseCode, 552);
            return true;
          },
        );
        const r = await swaks(
          box.port,
          `pathology@${DOMAIN}`,
          'labo@labo.mssante.test',
          '--body',
          'A'.repeat(70 * 1024),
        );
        assert.notEqual(r.code, 0);
        assert.match(r.out, /<\*\* +552 /);
      });
    });

    it('answers 451 when the journal cannot store the mail; the retry is stored once', async function () {
      const raw = labMail(`pathology@${DOMAIN}`, 'retry@labo');
      const send = () => sendMail(transport(), `pathology@${DOMAIN}`, raw);
      box.pathology.failure = new Error('disk full');
      await assert.rejects(send(), (err: { responseCode?: number }) => err.responseCode === 451);
      box.pathology.failure = null;
      const before = box.pathology.journal.length;
      await send();
      assert.equal(box.pathology.journal.length, before + 1);
      assert.equal(last(box.pathology)?.duplicateOf, undefined);
    });
  });

  describe('a mailbox closed while a mail streams in', function () {
    let dir: string;
    let box: Inbox;

    before(async function () {
      dir = tempDir('smtp-gone-');
      box = await inbox(dir, {});
    });

    after(async function () {
      await close(box);
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('answers 451 SMTP_MAILBOX_GONE and deletes the staged file at once', async function () {
      // Above the blob threshold (1 MiB): the mail streams into a file in the journal's staging.
      const raw = labMail(`pathology@${DOMAIN}`, 'gone@labo', 'A'.repeat(76).concat('\r\n').repeat(20_000));
      const real = Object.getPrototypeOf(box.pathology) as SourceContext;
      let staged: string | undefined;
      // The channel is undeployed once the mail is staged, before it is handed over.
      box.pathology.stage = async (from) => {
        const content = await real.stage(from);
        staged = content.file;
        await box.sources[0]!.stop();
        return content;
      };
      await journalsNothing(box, async () => {
        await assert.rejects(
          sendMail(plainTransport(box.port), `pathology@${DOMAIN}`, raw),
          (err: { responseCode?: number; response?: string }) => {
            assert.equal(err.responseCode, 451);
            assert.match(err.response ?? '', /SMTP_MAILBOX_GONE|closed while the mail was being sent/);
            return true;
          },
        );
      });
      assert.ok(staged, 'the mail was staged as a file');
      assert.equal(path.dirname(staged), path.join(dir, 'blobs', '.staging'));
      assert.deepEqual(fs.readdirSync(path.dirname(staged)), [], 'no staged file left until the next start');
    });
  });

  describe('TLS required, AUTH required, client certificates required', function () {
    let dir: string;
    let server: TestCert;
    let client: TestCert;
    let box: Inbox;

    before(async function () {
      dir = tempDir('smtp-auth-');
      server = selfSignedCert();
      client = selfSignedCert();
      box = await inbox(
        dir,
        {
          auth: 'required',
          requireTls: true,
          clientCertificate: 'require',
          tls: {
            cert: path.join(server.dir, server.cert),
            key: path.join(server.dir, server.key),
            ca: path.join(client.dir, client.cert),
          },
        },
        [
          { login: 'labo', role: 'lab', finess: '310000002', password: 'labo-secret-pass' },
          { login: 'admin', role: 'admin', password: 'admin-secret-pass' },
        ],
      );
    });

    after(async function () {
      await close(box);
      server?.remove();
      client?.remove();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    /** swaks's STARTTLS and AUTH PLAIN as the lab, with its client certificate or without one. */
    const tlsArgs = (certificate: boolean): string[] => [
      '--tls',
      ...(certificate
        ? ['--tls-cert', path.join(client.dir, client.cert), '--tls-key', path.join(client.dir, client.key)]
        : []),
      ...['--auth', 'PLAIN', '--auth-user', 'labo', '--auth-password', 'labo-secret-pass'],
    ];

    const withCert = (auth?: { user: string; pass: string }) =>
      nodemailer.createTransport({
        host: '127.0.0.1',
        port: box.port,
        secure: false,
        requireTLS: true,
        tls: {
          ca: fs.readFileSync(path.join(server.dir, server.cert)),
          cert: fs.readFileSync(path.join(client.dir, client.cert)),
          key: fs.readFileSync(path.join(client.dir, client.key)),
        },
        ...(auth ? { auth } : {}),
      });

    it('a lab account with its certificate sends; the account owns the message', async function () {
      await sendMail(
        withCert({ user: 'labo', pass: 'labo-secret-pass' }),
        `pathology@${DOMAIN}`,
        labMail(`pathology@${DOMAIN}`, 'auth-1@labo'),
      );
      const got = last(box.pathology);
      assert.equal(got?.sender, 'labo');
      assert.equal(got?.owner, '310000002');
      assert.equal(got?.meta?.clientCertificate, 'localhost');
      assert.equal(got?.meta?.tls, true);
    });

    it('refuses a wrong password (535), a staff account (535) and no AUTH at all (530)', async function () {
      const send = (t: SmtpTransporter) =>
        sendMail(t, `pathology@${DOMAIN}`, labMail(`pathology@${DOMAIN}`, 'auth-2@labo'));
      await journalsNothing(box, async () => {
        await assert.rejects(
          send(withCert({ user: 'labo', pass: 'wrong-password' })),
          (e: { responseCode?: number }) => e.responseCode === 535,
        );
        await assert.rejects(
          send(withCert({ user: 'admin', pass: 'admin-secret-pass' })),
          (e: { responseCode?: number }) => e.responseCode === 535,
        );
        await assert.rejects(send(withCert()), (e: { responseCode?: number }) => e.responseCode === 530);
      });
    });

    it('swaks without STARTTLS is refused 530 at MAIL FROM; with STARTTLS but no certificate the handshake fails', async function () {
      await journalsNothing(box, async () => {
        const plain = await swaks(box.port, `pathology@${DOMAIN}`, 'a@b.test');
        assert.notEqual(plain.code, 0);
        assert.match(plain.out, /<\*\* 530 /);
        const noCert = await swaks(box.port, `pathology@${DOMAIN}`, 'a@b.test', ...tlsArgs(false));
        assert.notEqual(noCert.code, 0);
        assert.doesNotMatch(noCert.out, /<~ {2}250 .*stored/);
      });
    });

    it('swaks with STARTTLS, its client certificate and AUTH PLAIN is accepted', async function () {
      const r = await swaks(
        box.port,
        `pathology@${DOMAIN}`,
        'labo@labo.mssante.test',
        ...tlsArgs(true),
        '--header',
        'Message-Id: <swaks-auth@labo>',
      );
      assert.equal(r.code, 0, r.out);
      assert.equal(last(box.pathology)?.meta?.messageIdHeader, 'swaks-auth@labo');
      assert.equal(last(box.pathology)?.sender, 'labo');
    });
  });
});
