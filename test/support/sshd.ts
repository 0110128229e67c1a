// A real OpenSSH server for integration tests: its own config, host key and client key in a temp dir,
// on a free loopback port, logging in as the user running the tests (root here and in CI) by key.
// kill() is a crash: the listener and every session process it forked die at once, so in-flight
// transfers are cut as they would be by a server reboot.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const SSHD = '/usr/sbin/sshd';

export interface Sshd {
  readonly port: number;
  /** Temp dir holding config, keys and `files/`, a folder tests may use as the remote tree. */
  readonly dir: string;
  readonly files: string;
  readonly user: string;
  /** The server's host key as OpenSSH prints it (`ssh-keygen -lf`): `SHA256:…`. */
  readonly hostKeySha256: string;
  /** The host key's public line without host (`ssh-ed25519 AAAA…`), for known_hosts files. */
  readonly hostPublicKey: string;
  /** OpenSSH-format private key text authorised for `user`. */
  readonly clientPrivateKey: string;
  /** False between kill() and restart(). */
  readonly running: boolean;
  /** Starts sshd again on the same port with the same keys (after kill()). */
  restart(): Promise<void>;
  /** SIGKILL the listener and all its session processes. */
  kill(): Promise<void>;
  /** kill() and remove the temp dir. */
  stop(): Promise<void>;
}

export async function startSshd(): Promise<Sshd> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onco-sshd-'));
  const files = path.join(dir, 'files');
  fs.mkdirSync(files);
  const keygen = (file: string): void => {
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', '', '-f', path.join(dir, file)]);
  };
  keygen('host_key');
  keygen('client_key');
  fs.copyFileSync(path.join(dir, 'client_key.pub'), path.join(dir, 'authorized_keys'));
  const fingerprint = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', path.join(dir, 'host_key.pub')])
    .toString()
    .split(' ')[1]!;
  const port = await freePort();
  const config = path.join(dir, 'sshd_config');
  fs.writeFileSync(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${path.join(dir, 'host_key')}`,
      `PidFile ${path.join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'Subsystem sftp internal-sftp',
      '',
    ].join('\n'),
  );
  // sshd refuses to start without its privilege separation directory (tmpfs, absent in containers).
  fs.mkdirSync('/run/sshd', { recursive: true });

  let child: ChildProcess | undefined;
  const launch = async (): Promise<void> => {
    const proc = spawn(SSHD, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = proc;
    let log = '';
    await new Promise<void>((resolve, reject) => {
      proc.stderr!.on('data', (chunk: Buffer) => {
        log += chunk.toString();
        if (log.includes('Server listening on')) resolve();
      });
      proc.once('exit', (code) => reject(new Error(`sshd exited with ${code} before listening:\n${log}`)));
      proc.once('error', reject);
    });
  };

  const kill = async (): Promise<void> => {
    const proc = child;
    child = undefined;
    if (!proc?.pid || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    // Stopped first, so that no new session is forked between listing the sessions and killing them.
    process.kill(proc.pid, 'SIGSTOP');
    for (const pid of descendants(proc.pid)) process.kill(pid, 'SIGKILL');
    process.kill(proc.pid, 'SIGKILL');
    await exited;
  };

  await launch();
  return {
    port,
    dir,
    files,
    user: os.userInfo().username,
    hostKeySha256: fingerprint,
    hostPublicKey: fs.readFileSync(path.join(dir, 'host_key.pub'), 'utf8').trim(),
    clientPrivateKey: fs.readFileSync(path.join(dir, 'client_key'), 'utf8'),
    get running() {
      return child !== undefined;
    },
    restart: launch,
    kill,
    async stop() {
      await kill();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A port the kernel just handed out on loopback: free unless another process races for it. */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Every live process below `root`, from /proc (sshd's sessions call setsid, so no process group holds them). */
function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited while we looked
    }
    // Fields after the parenthesised command name: state, ppid, …
    const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (state === 'Z') continue;
    const list = children.get(Number(ppid)) ?? [];
    list.push(Number(entry));
    children.set(Number(ppid), list);
  }
  const found: number[] = [];
  const walk = (pid: number): void => {
    for (const c of children.get(pid) ?? []) {
      found.push(c);
      walk(c);
    }
  };
  walk(root);
  return found;
}
