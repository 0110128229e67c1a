// Debian's Dovecot as a real IMAP server for tests: its own configuration, users, mail and sockets
// in a temporary directory, an unprivileged loopback port, nothing of the system's configuration
// read or touched (`-c` points at ours). STARTTLS required when a certificate is given.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './ports.ts';

export interface Dovecot {
  /** Its directory (configuration, mail, logs): pass it again to restart on the same mail. */
  dir: string;
  port: number;
  user: string;
  password: string;
  stop(): Promise<void>;
}

export const DOVECOT = '/usr/sbin/dovecot';

/** Uid and gid of a system user, from /etc/passwd. */
function systemUser(name: string): { uid: number; gid: number } {
  const line = fs
    .readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  if (!line) throw new Error(`no user ${name}: is dovecot-core installed?`);
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

export async function startDovecot(
  options: {
    tls?: { cert: string; key: string };
    /** An earlier run's directory and port (a server that comes back); default new ones. */
    dir?: string;
    port?: number;
  } = {},
): Promise<Dovecot> {
  const { tls } = options;
  const port = options.port ?? (await freePort());
  const dir = options.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'dovecot-'));
  for (const d of ['run', 'state', 'home']) fs.mkdirSync(path.join(dir, d), { recursive: true });
  const user = 'mss-operator';
  const password = 'imap-secret-pass';
  fs.writeFileSync(path.join(dir, 'passwd'), `${user}:{PLAIN}${password}\n`);
  const me = os.userInfo();
  // As root Dovecot drops to its own users and refuses uid 0 for mail: the mail belongs to `dovecot`.
  // As anyone else it runs every process as that user.
  const root = me.uid === 0;
  const internal = root ? 'dovecot' : me.username;
  const login = root ? 'dovenull' : me.username;
  const owner = root ? systemUser('dovecot') : { uid: me.uid, gid: me.gid };
  if (root) {
    fs.chmodSync(dir, 0o755);
    fs.chownSync(path.join(dir, 'home'), owner.uid, owner.gid);
  }
  const conf = path.join(dir, 'dovecot.conf');
  fs.writeFileSync(
    conf,
    `base_dir = ${dir}/run
state_dir = ${dir}/state
log_path = ${dir}/dovecot.log
protocols = imap
listen = 127.0.0.1
${tls ? `ssl = required\nssl_cert = <${tls.cert}\nssl_key = <${tls.key}` : 'ssl = no'}
disable_plaintext_auth = ${tls ? 'yes' : 'no'}
auth_mechanisms = plain login
first_valid_uid = 0
first_valid_gid = 0
default_internal_user = ${internal}
default_login_user = ${login}
passdb {
  driver = passwd-file
  args = scheme=PLAIN ${dir}/passwd
}
userdb {
  driver = static
  args = uid=${owner.uid} gid=${owner.gid} home=${dir}/home/%u
}
mail_location = maildir:~/Maildir
service imap-login {
  chroot =
  inet_listener imap {
    port = ${port}
  }
  inet_listener imaps {
    port = 0
  }
}
service anvil {
  chroot =
}
${
  // Temporary directories are private (0700): as root, the password file is read by a root auth process.
  me.uid === 0 ? 'service auth {\n  user = root\n}\nservice auth-worker {\n  user = root\n}\n' : ''
}`,
  );
  // Its own process group: stopping it ends the login and mail processes too, whose open
  // connections would otherwise outlive the master (a server that goes away, for the client).
  const child: ChildProcess = spawn(DOVECOT, ['-F', '-c', conf], { stdio: 'ignore', detached: true });
  const group = child.pid!;
  const deadline = Date.now() + 15_000;
  while (!(await greets(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      killGroup(group, 'SIGKILL');
      const log = fs.existsSync(path.join(dir, 'dovecot.log'))
        ? fs.readFileSync(path.join(dir, 'dovecot.log'), 'utf8')
        : '';
      throw new Error(`dovecot did not start on ${port}: ${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    dir,
    port,
    user,
    password,
    stop: async () => {
      const exited = child.exitCode !== null ? Promise.resolve() : new Promise((r) => child.once('exit', r));
      killGroup(group, 'SIGKILL');
      await exited;
    },
  };
}

function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // Already gone.
  }
}

/** True once Dovecot answers with its greeting (the port may be open before its login process is). */
function greets(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('data', (d: Buffer) => done(d.toString().startsWith('* OK')));
    socket.once('error', () => done(false));
    socket.setTimeout(1000, () => done(false));
  });
}
