// The `mssante` destination against Debian's aiosmtpd (STARTTLS required) as the relay: the mail is
// captured, parsed back with mailparser and its IHE_XDM.ZIP opened; a retry and a replay reuse the
// Message-ID; without a relay the mail is an .eml file in data/outbox/.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { simpleParser } from 'mailparser';
import yauzl from 'yauzl';
import { mailJson, MAIL_JSON } from '../../transformers/mss-mail.ts';
import { tempDir, until, type Harness } from '../support/engine-harness.ts';
import { startMssOut } from '../support/mss-out.ts';
import { aiosmtpd, type SmtpReceiver } from '../support/aiosmtpd.ts';
import { selfSignedCert, type TestCert } from '../support/self-signed-cert.ts';
import { freePort } from '../support/ports.ts';
import { xdmZip } from '../support/xdm-fixture.ts';
import { smtpInboxSpec } from '../../connectors/smtp-inbox.ts';
import { startConnectorEngine } from '../support/channel-context.ts';

const PDF = Buffer.from('%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n');
const SUBJECT = 'XDM/1.0/DDM+FRCP DUPONT Marie 19790328';

function entriesOf(zip: Buffer): Promise<string[]> {
  return new Promise((resolve, reject) => {
    yauzl.fromBuffer(zip, { lazyEntries: true }, (err, file) => {
      if (err || !file) return reject(err);
      const names: string[] = [];
      file.on('entry', (e: yauzl.Entry) => (names.push(e.fileName), file.readEntry()));
      file.on('end', () => resolve(names));
      file.on('error', reject);
      file.readEntry();
    });
  });
}

async function mailOut(to: string[]): Promise<Buffer> {
  const zip = await xdmZip([
    {
      file: 'DOC0001.PDF',
      mimeType: 'application/pdf',
      content: PDF,
      uniqueId: '1.2.250.1.999.1.1',
      typeCode: '75496-0',
      formatCode: 'urn:ihe:iti:xds-sd:pdf:2008',
      title: 'Fiche RCP',
    },
  ]);
  return mailJson({
    to,
    subject: SUBJECT,
    headers: { 'X-MSS-MES': 'FIN' },
    attachments: [
      { fileName: 'IHE_XDM.ZIP', contentType: 'application/zip', content: zip },
      { fileName: 'FRCP.pdf', contentType: 'application/pdf', content: PDF },
    ],
  });
}

const RETRY_FAST = { maxAttempts: 20, initialDelayMs: 50, maxDelayMs: 200, multiplier: 2, jitter: 0 };

function engineWith(dataDir: string, destination: object): Promise<Harness> {
  return startMssOut(dataDir, [{ retry: RETRY_FAST, ...destination }]);
}

describe('mssante destination: mail out', function () {
  this.timeout(60_000);
  let dir: string;
  let cert: TestCert;
  let relay: SmtpReceiver | undefined;
  let harness: Harness | undefined;

  beforeEach(function () {
    dir = tempDir('mss-out-');
    cert = selfSignedCert();
  });

  afterEach(async function () {
    await harness?.stop();
    await relay?.stop();
    harness = undefined;
    relay = undefined;
    cert.remove();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('through a STARTTLS relay (aiosmtpd): XDM zip and PDF attached, headers of STANDARDS.md, the zip opens; a replay reuses the Message-ID', async function () {
    relay = await aiosmtpd(dir, { cert: path.join(cert.dir, cert.cert), key: path.join(cert.dir, cert.key) });
    harness = await engineWith(path.join(dir, 'data'), {
      dispositionNotificationTo: 'replies@dcc.test',
      relay: { host: '127.0.0.1', port: relay.port, tls: { ca: path.join(cert.dir, cert.cert) } },
    });
    const { engine } = harness;
    const receipt = await engine.dispatch('mss-out', {
      content: await mailOut(['dr.martin@pro.mssante.test']),
      contentType: MAIL_JSON,
    });
    const delivery = await until(() => {
      const d = engine.store.journal.deliveries(receipt.messageId)[0];
      return d?.status === 'SENT' ? d : undefined;
    }, 'the mail delivery');
    assert.equal(relay.mails().length, 1);
    const mail = await relay.parsed(0);
    assert.equal(mail.messageId, `<mss-out-${receipt.messageId}-mail@dcc.test>`);
    assert.equal(mail.subject, SUBJECT);
    assert.equal(
      (mail.headers.get('disposition-notification-to') as { text: string }).text,
      'replies@dcc.test',
    );
    assert.equal(mail.headers.get('x-mss-mes'), 'FIN');
    assert.deepEqual(
      mail.attachments.map((a) => a.filename),
      ['IHE_XDM.ZIP', 'FRCP.pdf'],
    );
    const names = await entriesOf(mail.attachments[0]!.content);
    assert.ok(names.includes('IHE_XDM/SUBSET01/METADATA.XML'));
    assert.ok(names.includes('INDEX.HTM') && names.includes('README.TXT'));
    assert.deepEqual(mail.attachments[1]!.content, PDF);
    assert.match(delivery.detail ?? '', /Message-ID <mss-out-\d+-mail@dcc\.test>/);
    assert.equal(
      engine.store.mailTracking.mailOf([delivery]).get(delivery.id)?.messageId,
      `mss-out-${receipt.messageId}-mail@dcc.test`,
    );

    await engine.channel('mss-out').replayDelivery(delivery.id);
    const again = await relay.parsed(1);
    assert.equal(again.messageId, mail.messageId);
  });

  it('a relay that is down: the delivery retries and the mail leaves once it is up, under the same Message-ID', async function () {
    const port = await freePort();
    harness = await engineWith(path.join(dir, 'data'), {
      relay: { host: '127.0.0.1', port, requireTls: false, timeoutMs: 2000 },
    });
    const { engine } = harness;
    const receipt = await engine.dispatch('mss-out', {
      content: PDF,
      contentType: 'application/pdf',
      meta: { to: 'dr.martin@pro.mssante.test', fileName: 'FRCP.pdf', subject: SUBJECT },
    });
    await until(
      () => (engine.store.journal.deliveries(receipt.messageId)[0]?.attempts ?? 0) >= 1,
      'a failed attempt',
    );
    const failed = engine.store.journal.deliveries(receipt.messageId)[0]!;
    assert.equal(failed.status, 'QUEUED');
    assert.match(failed.lastError ?? '', /MSS_RELAY_UNAVAILABLE/);
    relay = await aiosmtpd(dir, undefined, port);
    await until(
      () => engine.store.journal.deliveries(receipt.messageId)[0]?.status === 'SENT',
      'the retried mail',
    );
    const mail = await relay.parsed(0);
    assert.equal(mail.messageId, `<mss-out-${receipt.messageId}-mail@dcc.test>`);
    assert.deepEqual(
      mail.attachments.map((a) => a.filename),
      ['FRCP.pdf'],
    );
  });

  it('without a relay: an .eml file named after the delivery in data/outbox/', async function () {
    harness = await engineWith(path.join(dir, 'data'), {});
    const { engine } = harness;
    const receipt = await engine.dispatch('mss-out', {
      content: await mailOut(['1790328123456@patient.mssante.fr']),
      contentType: MAIL_JSON,
    });
    await until(() => engine.store.journal.deliveries(receipt.messageId)[0]?.status === 'SENT', 'the .eml');
    const file = path.join(dir, 'data', 'outbox', `mss-out-${receipt.messageId}-mail.eml`);
    const mail = await simpleParser(fs.readFileSync(file));
    assert.equal(mail.messageId, `<mss-out-${receipt.messageId}-mail@dcc.test>`);
    assert.equal((mail.to as { text: string }).text, '1790328123456@patient.mssante.fr');
    assert.ok((await entriesOf(mail.attachments[0]!.content)).includes('IHE_XDM/SUBSET01/DOC0001.PDF'));
  });

  it('through a relay that requires STARTTLS, a client certificate and AUTH (the inbox of another engine): sent with the account; a wrong password is a refusal, not retried', async function () {
    const client = selfSignedCert();
    const relayEngine = await startConnectorEngine({
      dataDir: path.join(dir, 'relay'),
      accounts: [
        { login: 'dcc-out', role: 'establishment', finess: '310000001', password: 'relay-secret-pass' },
      ],
      channels: [{ id: 'relay-in' }],
    });
    const relayCtx = relayEngine.context('relay-in');
    const inbox = smtpInboxSpec.create(
      {
        mailbox: 'dr.martin@pro.mssante.test',
        port: 0,
        auth: 'required',
        requireTls: true,
        clientCertificate: 'require',
        tls: {
          cert: path.join(cert.dir, cert.cert),
          key: path.join(cert.dir, cert.key),
          ca: path.join(client.dir, client.cert),
        },
      },
      relayCtx,
    );
    try {
      await inbox.start();
      const port = Number(/:(\d+) /.exec(relayCtx.states.at(-1)?.detail ?? '')?.[1]);
      const relayOptions = (password: string) => ({
        host: '127.0.0.1',
        port,
        user: 'dcc-out',
        password,
        tls: {
          ca: path.join(cert.dir, cert.cert),
          cert: path.join(client.dir, client.cert),
          key: path.join(client.dir, client.key),
        },
      });
      harness = await startMssOut(path.join(dir, 'data'), [
        { relay: relayOptions('relay-secret-pass') },
        { name: 'badpass', relay: relayOptions('wrong-password') },
      ]);
      const { engine } = harness;
      const receipt = await engine.dispatch('mss-out', {
        content: await mailOut(['dr.martin@pro.mssante.test']),
        contentType: MAIL_JSON,
      });
      await until(() => relayCtx.journal.length === 1, 'the mail at the relay');
      const got = relayCtx.journal[0]!;
      assert.equal(got.sender, 'dcc-out');
      assert.equal(got.meta?.tls, true);
      assert.equal(got.meta?.clientCertificate, 'localhost');
      assert.equal(got.meta?.messageIdHeader, `mss-out-${receipt.messageId}-mail@dcc.test`);
      const refused = await until(() => {
        const d = engine.store.journal.deliveries(receipt.messageId).find((x) => x.destination === 'badpass');
        return d?.status === 'ERROR' ? d : undefined;
      }, 'the refused delivery');
      assert.equal(refused.attempts, 1);
      assert.match(refused.lastError ?? '', /MSS_REFUSED/);
    } finally {
      await harness?.stop();
      harness = undefined;
      await inbox.stop();
      await relayEngine.stop();
      client.remove();
    }
  });

  it('a mail naming no recipient goes to ERROR at once with MSS_NO_RECIPIENT', async function () {
    harness = await engineWith(path.join(dir, 'data'), {});
    const { engine } = harness;
    const receipt = await engine.dispatch('mss-out', { content: PDF, contentType: 'application/pdf' });
    const d = await until(() => {
      const x = engine.store.journal.deliveries(receipt.messageId)[0];
      return x?.status === 'ERROR' ? x : undefined;
    }, 'the refused delivery');
    assert.equal(d.attempts, 1);
    assert.match(d.lastError ?? '', /MSS_NO_RECIPIENT/);
  });
});
