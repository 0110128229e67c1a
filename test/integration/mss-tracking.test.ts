// Delivery tracking: a mail sent by the mssante destination, then its DSN and MDN sent back by swaks
// into the replies mailbox; both are recognised, matched by Original-Message-ID and shown on the
// outbound delivery in the API (read with curl) and the message page.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { listenDashboard } from '../support/dashboard-listen.ts';
import { readMailReport } from '../../transformers/mail-report.ts';
import { addAccount, tempDir, until, type Harness } from '../support/engine-harness.ts';
import { startMssOut } from '../support/mss-out.ts';

const ADMIN = { login: 'admin1', password: 'admin-pass-1', role: 'admin' } as const;

function run(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 30_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr }),
    );
  });
}

function dsn(original: string, action: string, diagnostic: string): string {
  return [
    'From: MAILER-DAEMON@relay.mssante.test',
    'To: replies@dcc.test',
    'Subject: Undelivered Mail Returned to Sender',
    `Message-ID: <dsn-${action}@relay.mssante.test>`,
    'MIME-Version: 1.0',
    'Content-Type: multipart/report; report-type=delivery-status; boundary="R1"',
    '',
    '--R1',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    'Your message could not be delivered.',
    '--R1',
    'Content-Type: message/delivery-status',
    '',
    'Reporting-MTA: dns; relay.mssante.test',
    '',
    'Final-Recipient: rfc822; dr.martin@pro.mssante.test',
    `Action: ${action}`,
    'Status: 5.1.1',
    `Diagnostic-Code: smtp; ${diagnostic}`,
    '',
    '--R1',
    'Content-Type: text/rfc822-headers',
    '',
    'From: dcc@dcc.test',
    'To: dr.martin@pro.mssante.test',
    `Message-ID: <${original}>`,
    '',
    '--R1--',
    '',
  ].join('\r\n');
}

function mdn(original: string, disposition: string, error?: string): string {
  return [
    'From: dr.martin@pro.mssante.test',
    'To: replies@dcc.test',
    'Subject: =?UTF-8?Q?Accus=C3=A9_de_lecture?=',
    `Message-ID: <mdn-${disposition.length}@pro.mssante.test>`,
    'MIME-Version: 1.0',
    'Content-Type: multipart/report; report-type=disposition-notification; boundary="R2"',
    '',
    '--R2',
    'Content-Type: text/plain; charset=utf-8',
    '',
    'Le message a été traité.',
    '--R2',
    'Content-Type: message/disposition-notification',
    '',
    'Reporting-UA: logiciel-de-cabinet',
    'Final-Recipient: rfc822; dr.martin@pro.mssante.test',
    `Original-Message-ID: <${original}>`,
    `Disposition: automatic-action/MDN-sent-automatically; ${disposition}`,
    ...(error ? [`Error: ${error}`] : []),
    '',
    '--R2--',
    '',
  ].join('\r\n');
}

describe('MSSanté delivery tracking: DSN and MDN matched to the outbound mail', function () {
  this.timeout(60_000);
  let dir: string;
  let harness: Harness;
  let app: FastifyInstance;
  let base: string;
  let smtpPort: number;

  before(async function () {
    dir = tempDir('mss-tracking-');
    harness = await startMssOut(
      path.join(dir, 'data'),
      [{ to: ['dr.martin@pro.mssante.test'], dispositionNotificationTo: 'replies@dcc.test' }],
      [
        {
          id: 'mss-replies',
          source: { type: 'smtp-inbox', mailbox: 'replies@dcc.test', port: 0 },
          steps: [{ type: 'mail-report' }],
          destinations: [{ name: 'tracking', type: 'mss-tracking' }],
        },
      ],
    );
    await addAccount(harness.engine.store, ADMIN);
    ({ app, base } = await listenDashboard(harness.engine));
    const detail = harness.engine.status().find((c) => c.id === 'mss-replies')?.source.detail ?? '';
    smtpPort = Number(/:(\d+) /.exec(detail)?.[1]);
    assert.ok(smtpPort > 0, detail);
  });

  after(async function () {
    await app?.close();
    await harness?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function swaksData(body: string): Promise<void> {
    const file = path.join(dir, `report-${Date.now()}.eml`);
    fs.writeFileSync(file, body);
    const r = await run('swaks', [
      '--hide-all',
      '--server',
      `127.0.0.1:${smtpPort}`,
      '--to',
      'replies@dcc.test',
      '--from',
      '<>',
      '--data',
      file,
    ]);
    assert.equal(r.code, 0, r.out);
  }

  it('a failed DSN and an MDN processed/error (902) are shown on the delivery in the API and the page', async function () {
    const { engine } = harness;
    const sent = await engine.dispatch('mss-out', {
      content: Buffer.from('%PDF-1.4\n%%EOF\n'),
      contentType: 'application/pdf',
      meta: { fileName: 'FRCP.pdf' },
    });
    const delivery = await until(() => {
      const d = engine.store.journal.deliveries(sent.messageId)[0];
      return d?.status === 'SENT' ? d : undefined;
    }, 'the outbound mail');
    const messageId = `mss-out-${sent.messageId}-mail@dcc.test`;

    await swaksData(dsn(messageId, 'failed', '550 5.1.1 user unknown'));
    await swaksData(mdn(messageId, 'processed/error', '902^Identifiant de patient inconnu^INS absent'));
    // A DSN about a mail this DCC never sent is kept, matched to nothing.
    await swaksData(dsn('elsewhere@other.test', 'delayed', '451 try later'));
    const reportsOf = () => engine.store.mailTracking.mailOf([delivery]).get(delivery.id)?.reports ?? [];
    await until(() => reportsOf().length === 2, 'both reports recorded');

    const api = await run('curl', [
      '-sf',
      '-u',
      `${ADMIN.login}:${ADMIN.password}`,
      `${base}/api/messages/${sent.messageId}`,
    ]);
    assert.equal(api.code, 0, api.out);
    const body = JSON.parse(api.out) as {
      deliveries: Array<{
        id: number;
        mail?: { messageId: string; reports: Array<{ kind: string; status: string; reason: string | null }> };
      }>;
    };
    const mail = body.deliveries[0]!.mail!;
    assert.equal(mail.messageId, messageId);
    assert.deepEqual(
      mail.reports.map((r) => [r.kind, r.status, r.reason]),
      [
        ['dsn', 'failed', 'smtp; 550 5.1.1 user unknown'],
        ['mdn', 'error', '902^Identifiant de patient inconnu^INS absent'],
      ],
    );

    const page = await run('curl', [
      '-sf',
      '-u',
      `${ADMIN.login}:${ADMIN.password}`,
      `${base}/messages/${sent.messageId}`,
    ]);
    assert.equal(page.code, 0, page.out);
    assert.match(page.out, /DSN failed \(dr\.martin@pro\.mssante\.test\)/);
    assert.match(page.out, /MDN error/);

    // The same report recorded again (an IMAP re-read, a replay) adds nothing.
    const again = await engine.store.write.mailTracking.report([
      {
        reportKey: 'dsn-failed@relay.mssante.test#0:dr.martin@pro.mssante.test',
        originalMessageId: messageId,
        kind: 'dsn',
        status: 'failed',
        recipient: 'dr.martin@pro.mssante.test',
        reason: 'smtp; 550 5.1.1 user unknown',
        reportedByMessage: null,
        now: Date.now(),
      },
    ]);
    assert.deepEqual(again.response, { added: 0, deliveries: [delivery.id] });
    assert.equal(reportsOf().length, 2);
  });

  it('reads DSN and MDN shapes: delivered, displayed, and an ordinary mail is no report', function () {
    const delivered = readMailReport(Buffer.from(dsn('a@b', 'delivered', '250 ok')));
    assert.deepEqual(delivered?.entries, [
      { recipient: 'dr.martin@pro.mssante.test', status: 'delivered', reason: null },
    ]);
    const displayed = readMailReport(Buffer.from(mdn('a@b', 'displayed')));
    assert.equal(displayed?.kind, 'mdn');
    assert.equal(displayed?.originalMessageId, 'a@b');
    assert.deepEqual(
      displayed?.entries.map((e) => e.status),
      ['displayed'],
    );
    assert.equal(readMailReport(Buffer.from('From: a@b\r\nSubject: hello\r\n\r\nhi\r\n')), null);
  });
});
