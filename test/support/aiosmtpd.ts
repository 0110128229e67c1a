// Debian's aiosmtpd as an independent SMTP receiver: every mail it takes lands in a Maildir, which the
// test reads back byte for byte. Started on a free loopback port, optionally with STARTTLS required.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { simpleParser, type ParsedMail } from 'mailparser';
import { until } from './engine-harness.ts';
import { freePort } from './ports.ts';

export interface SmtpReceiver {
  port: number;
  /** The mails received so far, oldest first. */
  mails(): Buffer[];
  /** The `index`-th mail received (0: the first), once it is there, parsed back by mailparser. */
  parsed(index: number): Promise<ParsedMail>;
  stop(): Promise<void>;
}

/** Debian's python3, where python3-aiosmtpd is installed (not a virtualenv's). */
const PYTHON = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

export async function aiosmtpd(
  dir: string,
  tls?: { cert: string; key: string },
  /** A port chosen before (a relay that was down comes up there); default a free one. */
  chosenPort?: number,
): Promise<SmtpReceiver> {
  const port = chosenPort ?? (await freePort());
  const maildir = path.join(dir, `maildir-${port}`);
  const args = ['-m', 'aiosmtpd', '-n', '-l', `127.0.0.1:${port}`, '-c', 'aiosmtpd.handlers.Mailbox'];
  if (tls) args.push('--tlscert', tls.cert, '--tlskey', tls.key);
  const child: ChildProcess = spawn(PYTHON, [...args, maildir], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const deadline = Date.now() + 15_000;
  while (!(await accepts(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`aiosmtpd did not start on ${port}: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const receiver: SmtpReceiver = {
    port,
    parsed: async (index) =>
      simpleParser(await until(() => receiver.mails()[index], `mail ${index + 1} at the receiver`)),
    mails: () => {
      const fresh = path.join(maildir, 'new');
      if (!fs.existsSync(fresh)) return [];
      return fs
        .readdirSync(fresh)
        .map((name) => ({ name, at: fs.statSync(path.join(fresh, name)).mtimeMs }))
        .sort((a, b) => a.at - b.at || a.name.localeCompare(b.name))
        .map(({ name }) => fs.readFileSync(path.join(fresh, name)));
    },
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
  return receiver;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}
