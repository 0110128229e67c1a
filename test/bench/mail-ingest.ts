// A 50 MB attachment through the MSSanté inbox: a separate process sends it with nodemailer to the
// built-in SMTP server of a real engine (FULL sync) in this process, which streams the DATA into a
// staged file and journals it before its 250; then the mail-attachments step stages each attachment
// and its output, and attachment-dispatch hands the PDF to its flow. Figures: seconds to the 250
// and to the hand-over, and this process's peak RSS growth over its own baseline measured just
// before the send (same run), during the send and during the step + dispatch; and the bytes this
// process wrote in each (staging, blobs, journal), which count the copies made of the content.
//   ONCO_BENCH_MAIL_MB (default 50) sets the attachment size.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import nodemailer from 'nodemailer';
import { builtinRegistry } from '../../channels/builtins.ts';
import { startEngine, tempDir, until } from '../support/engine-harness.ts';
import { generate } from '../support/large-file.ts';
import { idleSource, makeSink } from '../support/sink.ts';

const MB = Number(process.env.ONCO_BENCH_MAIL_MB ?? 50);
const MiB = 2 ** 20;

/**
 * What this process has written so far (Linux /proc; zeros elsewhere): bytes handed to write calls,
 * and bytes it sent to the disk (page cache writeback counted for the process that dirtied it).
 */
function written(): { calls: number; disk: number } {
  try {
    const io = fs.readFileSync('/proc/self/io', 'utf8');
    const field = (name: string) => Number(new RegExp(`^${name}: (\\d+)`, 'm').exec(io)?.[1] ?? 0);
    return { calls: field('wchar'), disk: field('write_bytes') };
  } catch {
    return { calls: 0, disk: 0 };
  }
}

/**
 * Peak RSS above `base` while `work` runs, sampled every 20 ms, and the peak of the memory held by
 * Buffers (arrayBuffers): what shows whether a growth is content held or allocator slack.
 */
async function peakRss<T>(
  base: number,
  work: () => Promise<T>,
): Promise<{
  peakMiB: number;
  peakBuffersMiB: number;
  seconds: number;
  writtenMiB: number;
  diskWrittenMiB: number;
}> {
  let peak = base;
  let buffers = 0;
  const sample = (): void => {
    const m = process.memoryUsage();
    peak = Math.max(peak, m.rss);
    buffers = Math.max(buffers, m.arrayBuffers);
  };
  const timer = setInterval(sample, 20);
  const t0 = process.hrtime.bigint();
  const w0 = written();
  try {
    await work();
    sample();
    const w1 = written();
    return {
      peakMiB: Math.round((peak - base) / MiB),
      peakBuffersMiB: Math.round(buffers / MiB),
      seconds: Number((Number(process.hrtime.bigint() - t0) / 1e9).toFixed(2)),
      writtenMiB: Math.round((w1.calls - w0.calls) / MiB),
      diskWrittenMiB: Math.round((w1.disk - w0.disk) / MiB),
    };
  } finally {
    clearInterval(timer);
  }
}

/** Sends a prepared .eml from another process (nodemailer streams it from the file). */
function sendFromChild(port: number, eml: string): Promise<void> {
  const script = `
    import nodemailer from 'nodemailer';
    const t = nodemailer.createTransport({ host: '127.0.0.1', port: ${port}, secure: false, ignoreTLS: true });
    const info = await t.sendMail({ envelope: { from: 'anapath@labo.test', to: 'pathology@dcc.test' }, raw: { path: ${JSON.stringify(eml)} } });
    if (!/^250 /.test(info.response)) throw new Error(info.response);`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'inherit' });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`sender exited ${code}`))));
  });
}

/** The mail as a file, its attachment streamed from disk: neither is ever held here whole. */
async function writeMail(dir: string): Promise<string> {
  const pdf = path.join(dir, 'big.pdf');
  await generate(pdf, MB * MiB);
  const fd = fs.openSync(pdf, 'r+');
  fs.writeSync(fd, Buffer.from('%PDF-1.4\n'), 0, 9, 0);
  fs.closeSync(fd);
  const eml = path.join(dir, 'big.eml');
  const info = await nodemailer
    .createTransport({ streamTransport: true, buffer: false, newline: 'windows' })
    .sendMail({
      from: 'anapath@labo.test',
      to: 'pathology@dcc.test',
      messageId: '<bench@labo.test>',
      attachments: [{ filename: 'big.pdf', path: pdf, contentType: 'application/pdf' }],
    });
  const stream = (info as unknown as { message: NodeJS.ReadableStream }).message;
  await new Promise<void>((resolve, reject) =>
    stream.pipe(fs.createWriteStream(eml)).on('finish', resolve).on('error', reject),
  );
  fs.rmSync(pdf);
  return eml;
}

export async function benchMailIngest(): Promise<unknown> {
  const dir = tempDir('onco-bench-mail-');
  const eml = await writeMail(dir);
  const sink = makeSink();
  const h = await startEngine({
    dataDir: path.join(dir, 'data'),
    registry: builtinRegistry().register(idleSource, sink.spec),
    channels: [
      {
        id: 'mss-bench',
        source: {
          type: 'smtp-inbox',
          mailbox: 'pathology@dcc.test',
          port: 0,
          maxMessageBytes: Math.ceil(MB * 1.5 * MiB),
        },
        steps: [{ type: 'mail-attachments', defaultKind: 'pathology' }],
        destinations: [
          { name: 'documents', type: 'attachment-dispatch', routes: { pathology: 'pathology' } },
        ],
      },
      { id: 'pathology', source: { type: 'test-idle' }, destinations: [{ name: 'out', type: 'test-sink' }] },
    ],
  });
  try {
    const detail = h.engine.status().find((c) => c.id === 'mss-bench')?.source.detail ?? '';
    const port = Number(/:(\d+) /.exec(detail)?.[1]);
    // Nothing may flow before the 250 is measured: the step starts only once the mail is journaled.
    global.gc?.();
    const base = process.memoryUsage().rss;
    const send = await peakRss(base, () => sendFromChild(port, eml));
    const step = await peakRss(base, () =>
      until(() => sink.received.length > 0, 'the attachment handed to its flow', 600_000),
    );
    return {
      attachmentMiB: MB,
      mailMiB: Number((fs.statSync(eml).size / MiB).toFixed(1)),
      baselineRssMiB: Math.round(base / MiB),
      smtp: {
        secondsTo250: send.seconds,
        peakRssGrowthMiB: send.peakMiB,
        peakBuffersMiB: send.peakBuffersMiB,
        // Staging, blobs and the journal: how many times the content was copied on the way.
        writtenMiB: send.writtenMiB,
        diskWrittenMiB: send.diskWrittenMiB,
      },
      stepAndDispatch: {
        seconds: step.seconds,
        peakRssGrowthMiB: step.peakMiB,
        peakBuffersMiB: step.peakBuffersMiB,
        // Staging, blobs and the journal: how many times the content was copied on the way.
        writtenMiB: step.writtenMiB,
        diskWrittenMiB: step.diskWrittenMiB,
      },
      note: 'the sender is another process; growth is over this process RSS just before the send, same run',
    };
  } finally {
    await h.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
