// A 50 MB attachment through the MSSanté inbox: nodemailer sends it to the built-in SMTP server of a
// real engine (FULL sync), which journals the mail before its 250; then the mail-attachments step
// reads it. Figures: time to the 250, the engine process's peak RSS growth during the send and during
// the step, against the size of the mail. Until the journal takes a finished file instead of a
// Buffer (the streams work), a mail is held whole in memory once: the size limit (maxMessageBytes)
// is what bounds it; the SMTP server stops buffering past the limit while the DATA stream flows.
//   ONCO_BENCH_MAIL_MB (default 50) sets the attachment size.
import path from 'node:path';
import nodemailer from 'nodemailer';
import { mailParts } from '../../transformers/mime-attachments.ts';
import { DEFAULT_ZIP_LIMITS } from '../../transformers/xdm-read.ts';
import { startEngine, tempDir } from '../support/engine-harness.ts';

const MB = Number(process.env.ONCO_BENCH_MAIL_MB ?? 50);

/** Peak RSS above the starting point while `work` runs, sampled every 20 ms. */
async function peakRss<T>(work: () => Promise<T>): Promise<{ result: T; peakMiB: number; seconds: number }> {
  global.gc?.();
  const base = process.memoryUsage().rss;
  let peak = base;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  const t0 = process.hrtime.bigint();
  try {
    const result = await work();
    peak = Math.max(peak, process.memoryUsage().rss);
    return {
      result,
      peakMiB: Math.round((peak - base) / 2 ** 20),
      seconds: Number((Number(process.hrtime.bigint() - t0) / 1e9).toFixed(2)),
    };
  } finally {
    clearInterval(timer);
  }
}

export async function benchMailIngest(): Promise<unknown> {
  const dataDir = tempDir('onco-bench-mail-');
  const h = await startEngine({
    dataDir,
    channels: [
      {
        id: 'mss-bench',
        source: {
          type: 'smtp-inbox',
          mailbox: 'pathology@dcc.test',
          port: 0,
          maxMessageBytes: Math.ceil(MB * 1.5 * 2 ** 20),
        },
        destinations: [{ name: 'out', type: 'file-writer', path: path.join(dataDir, 'out') }],
      },
    ],
  });
  try {
    const detail = h.engine.status().find((c) => c.id === 'mss-bench')?.source.detail ?? '';
    const port = Number(/:(\d+) /.exec(detail)?.[1]);
    const attachment = Buffer.alloc(MB * 2 ** 20);
    for (let i = 0; i < attachment.length; i += 4) attachment.writeUInt32LE((i * 2654435761) >>> 0, i);
    attachment.write('%PDF-1.4\n');
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
    const message = await new Promise<Buffer>((resolve, reject) =>
      nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'windows' }).sendMail(
        {
          from: 'anapath@labo.test',
          to: 'pathology@dcc.test',
          messageId: '<bench@labo.test>',
          attachments: [{ filename: 'big.pdf', content: attachment, contentType: 'application/pdf' }],
        },
        (err, info) => (err ? reject(err) : resolve((info as { message: Buffer }).message)),
      ),
    );
    const send = await peakRss(() =>
      transport.sendMail({ envelope: { from: 'anapath@labo.test', to: 'pathology@dcc.test' }, raw: message }),
    );
    transport.close();
    const step = await peakRss(() => mailParts(message, { defaultKind: 'pathology', ...DEFAULT_ZIP_LIMITS }));
    return {
      attachmentMiB: MB,
      mailMiB: Number((message.length / 2 ** 20).toFixed(1)),
      smtp: { secondsTo250: send.seconds, peakRssGrowthMiB: send.peakMiB },
      mailAttachmentsStep: { seconds: step.seconds, peakRssGrowthMiB: step.peakMiB },
      note: 'sender, server and journal share this process: the RSS growth holds the encoded mail the sender keeps too',
    };
  } finally {
    await h.stop();
  }
}
