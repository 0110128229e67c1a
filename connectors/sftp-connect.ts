// Opening an SFTP session to a remote server (a hospital's or a lab's), shared by the poller and the
// writer. Host keys are pinned: a server whose key is neither given as a SHA256 fingerprint nor in a
// known_hosts file is refused, and the error prints the key it offered so an admin can check and pin it.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import SftpClient from 'ssh2-sftp-client';
import type { ConnectConfig } from 'ssh2';
import Type from 'typebox';
import { Default, type OptionsOf } from '../transformers/contract.ts';
import { ConnectorSetupError } from './listener-setup.ts';

const fingerprint = { type: 'string', pattern: '^SHA256:[A-Za-z0-9+/]{43}=?$' } as const;

/** At least one credential: a password, a private key or a private key file. */
export const sftpCredentialRequired = [
  { required: ['password'] },
  { required: ['privateKey'] },
  { required: ['privateKeyFile'] },
];

/**
 * Options common to both SFTP specs (poller and writer): the server, the login, the pinned host key.
 * The specs spread its properties and require a credential with `anyOf: sftpCredentialRequired`.
 */
export const sftpServerSchema = Type.Object(
  {
    host: Type.String({ minLength: 1, description: 'Name or address of the SFTP server.' }),
    port: Default(Type.Integer({ minimum: 1, maximum: 65535, description: 'SSH port of the server.' }), 22),
    username: Type.String({ minLength: 1, description: 'Account on the server.' }),
    password: Type.Optional(
      Type.String({ description: 'Write ${ENV_NAME} rather than the password itself.' }),
    ),
    /** Private key text (OpenSSH or PEM), typically `${ENV}` in the config. */
    privateKey: Type.Optional(Type.String({ description: 'Private key text; write ${ENV_NAME}.' })),
    /** Private key file; relative paths resolve against the data directory. */
    privateKeyFile: Type.Optional(
      Type.String({
        description: 'Private key file (relative paths resolve against the data directory).',
      }),
    ),
    passphrase: Type.Optional(
      Type.String({ description: 'Passphrase of an encrypted private key; write ${ENV_NAME}.' }),
    ),
    /** Accepted host key fingerprints as `ssh-keygen -l` prints them: `SHA256:base64`. */
    // oneOf as before (a string or a non-empty list of them), so schema and docs output are unchanged.
    hostKeySha256: Type.Optional(
      Type.Unsafe<string | string[]>({
        oneOf: [fingerprint, { type: 'array', minItems: 1, items: fingerprint }],
        description:
          'Pinned host key fingerprint(s), as `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` prints them on the server. Without it or knownHostsFile the server is refused.',
      }),
    ),
    /** OpenSSH known_hosts file (plain or hashed host names, `[host]:port`, `@revoked`). */
    knownHostsFile: Type.Optional(
      Type.String({
        description:
          'OpenSSH known_hosts file listing the server (relative paths resolve against the data directory).',
      }),
    ),
    connectTimeoutMs: Default(
      Type.Integer({
        minimum: 1000,
        description: 'Give up a connection attempt (TCP and SSH handshake) after this many milliseconds.',
      }),
      15000,
    ),
  },
  { anyOf: sftpCredentialRequired },
);

export type SftpServerOptions = OptionsOf<typeof sftpServerSchema>;

/** `SHA256:…` of an SSH public key blob, exactly as OpenSSH prints it (base64 without padding). */
export function fingerprintOf(keyBlob: Buffer): string {
  return `SHA256:${crypto.createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;
}

/** The algorithm name at the head of an SSH public key blob (`ssh-ed25519`, `ssh-rsa` …). */
function keyTypeOf(keyBlob: Buffer): string {
  if (keyBlob.length < 4) return 'unknown';
  return keyBlob.subarray(4, 4 + keyBlob.readUInt32BE(0)).toString('latin1');
}

interface HostKeyPolicy {
  trusted: Set<string>;
  revoked: Set<string>;
  /** Where the trusted keys came from, for error messages. */
  source: string;
}

/** Fingerprints that known_hosts `text` lists for `host` on `port`. */
export function knownHostKeys(
  text: string,
  host: string,
  port: number,
): { trusted: string[]; revoked: string[] } {
  const name = port === 22 ? host : `[${host}]:${port}`;
  const trusted: string[] = [];
  const revoked: string[] = [];
  for (const raw of text.split('\n')) {
    const fields = raw.trim().split(/\s+/);
    if (!fields[0] || fields[0].startsWith('#')) continue;
    const marker = fields[0].startsWith('@') ? fields.shift() : undefined;
    const [hosts, , key] = fields;
    // Host certificates (@cert-authority) are not supported by ssh2: such lines cannot vouch for a key.
    if (!hosts || !key || marker === '@cert-authority' || !hostsMatch(hosts, name)) continue;
    const fp = fingerprintOf(Buffer.from(key, 'base64'));
    (marker === '@revoked' ? revoked : trusted).push(fp);
  }
  return { trusted, revoked };
}

function hostsMatch(field: string, name: string): boolean {
  if (field.startsWith('|1|')) {
    const [, , salt, hash] = field.split('|');
    if (!salt || !hash) return false;
    const mac = crypto.createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64');
    return mac === hash;
  }
  let matched = false;
  for (const pattern of field.split(',')) {
    const negated = pattern.startsWith('!');
    const glob = negated ? pattern.slice(1) : pattern;
    const re = new RegExp(
      `^${glob
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*/g, '.*')
        .replace(/\?/g, '.')}$`,
      'i',
    );
    if (!re.test(name)) continue;
    if (negated) return false;
    matched = true;
  }
  return matched;
}

function hostKeyPolicy(o: SftpServerOptions, dataDir: string): HostKeyPolicy {
  const trusted = new Set<string>();
  const revoked = new Set<string>();
  const sources: string[] = [];
  const pinned = o.hostKeySha256 === undefined ? [] : [o.hostKeySha256].flat();
  for (const fp of pinned) trusted.add(fp.replace(/=+$/, ''));
  if (pinned.length) sources.push('option hostKeySha256');
  if (o.knownHostsFile !== undefined) {
    const file = path.resolve(dataDir, o.knownHostsFile);
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (cause) {
      throw new ConnectorSetupError(
        'SFTP_KNOWN_HOSTS_UNREADABLE',
        `cannot read known_hosts file ${file}`,
        'check option knownHostsFile (relative paths resolve against the data directory)',
        cause,
      );
    }
    const listed = knownHostKeys(text, o.host, o.port);
    for (const fp of listed.trusted) trusted.add(fp);
    for (const fp of listed.revoked) revoked.add(fp);
    sources.push(file);
  }
  return { trusted, revoked, source: sources.join(' and ') || 'no pinned key' };
}

function hostKeyError(o: SftpServerOptions, policy: HostKeyPolicy, offered: Buffer): ConnectorSetupError {
  const where = `${o.host}:${o.port}`;
  const fp = fingerprintOf(offered);
  const key = `${keyTypeOf(offered)} ${fp}`;
  if (policy.revoked.has(fp)) {
    return new ConnectorSetupError(
      'SFTP_HOST_KEY_REVOKED',
      `SFTP server ${where} offered host key ${key}, which is marked @revoked in ${policy.source}`,
      'the server uses a key that was withdrawn: contact its administrator',
    );
  }
  const hint = `check with the server's administrator that ${fp} is the server's key (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), then set option hostKeySha256: '${fp}'`;
  if (policy.trusted.size === 0) {
    return new ConnectorSetupError(
      'SFTP_HOST_KEY_NOT_PINNED',
      `SFTP server ${where} offered host key ${key}, but no host key is pinned for it (${policy.source})`,
      hint,
    );
  }
  return new ConnectorSetupError(
    'SFTP_HOST_KEY_MISMATCH',
    `SFTP server ${where} offered host key ${key}, which does not match ${policy.source}: the server was reinstalled or someone is intercepting the connection`,
    hint,
  );
}

function readPrivateKey(o: SftpServerOptions, dataDir: string): string | undefined {
  if (o.privateKey !== undefined) return o.privateKey;
  if (o.privateKeyFile === undefined) return undefined;
  const file = path.resolve(dataDir, o.privateKeyFile);
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (cause) {
    throw new ConnectorSetupError(
      'SFTP_KEY_UNREADABLE',
      `cannot read private key file ${file}`,
      'check option privateKeyFile (relative paths resolve against the data directory)',
      cause,
    );
  }
}

/** An open SFTP session; `alive` turns false as soon as the connection drops. */
export class SftpSession {
  private lost = false;

  private constructor(readonly client: SftpClient) {}

  get alive(): boolean {
    return !this.lost;
  }

  /** Connects and authenticates; throws ConnectorSetupError naming the server and what to change. */
  static async open(o: SftpServerOptions, dataDir: string): Promise<SftpSession> {
    const where = `sftp://${o.username}@${o.host}:${o.port}`;
    const policy = hostKeyPolicy(o, dataDir);
    let refusedKey: Buffer | undefined;
    // Events only fire once connect() has begun, after `session` is assigned.
    const markLost = (): void => {
      session.lost = true;
    };
    // ssh2-sftp-client's own callbacks are skipped when a call in progress saw the close first, so the
    // socket's end is watched directly; its errors are reported through the calls that fail.
    const client = new SftpClient('onco-relay', { error: () => undefined, end: markLost, close: markLost });
    client.on('end', markLost);
    client.on('close', markLost);
    const session = new SftpSession(client);
    // Servers that take passwords through PAM ask for them as keyboard-interactive prompts.
    if (o.password !== undefined) {
      const password = o.password;
      client.on('keyboard-interactive', (...args: unknown[]) => {
        const [, , , prompts, finish] = args as [
          string,
          string,
          string,
          unknown[],
          (answers: string[]) => void,
        ];
        finish(prompts.map(() => password));
      });
    }
    const config: ConnectConfig = {
      host: o.host,
      port: o.port,
      username: o.username,
      password: o.password,
      privateKey: readPrivateKey(o, dataDir),
      passphrase: o.passphrase,
      tryKeyboard: o.password !== undefined,
      readyTimeout: o.connectTimeoutMs,
      // A dead peer is noticed within ~30 s even when no FIN ever arrives.
      keepaliveInterval: 10000,
      keepaliveCountMax: 3,
      hostVerifier: (key: Buffer) => {
        const fp = fingerprintOf(key);
        const ok = policy.trusted.has(fp) && !policy.revoked.has(fp);
        if (!ok) refusedKey = key;
        return ok;
      },
    };
    try {
      await client.connect(config);
    } catch (cause) {
      await session.close();
      if (refusedKey) throw hostKeyError(o, policy, refusedKey);
      throw connectError(where, cause);
    }
    return session;
  }

  /** Ends the session; a peer that no longer answers is not waited for beyond a second. */
  async close(): Promise<void> {
    this.lost = true;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.client.end().catch(() => undefined),
      new Promise((resolve) => (timer = setTimeout(resolve, 1000))),
    ]);
    clearTimeout(timer);
  }
}

function connectError(where: string, cause: unknown): ConnectorSetupError {
  const message = (cause as Error).message ?? String(cause);
  if (/authentication methods failed/i.test(message)) {
    return new ConnectorSetupError(
      'SFTP_AUTH_FAILED',
      `SFTP server ${where} refused the login`,
      'check options username and password / privateKey (and passphrase), and that the key is in the account’s authorized_keys',
      cause,
    );
  }
  return new ConnectorSetupError(
    'SFTP_CONNECT_FAILED',
    `cannot open an SFTP session to ${where}: ${message}`,
    'check options host and port, that the server runs and that a firewall lets this machine through',
    cause,
  );
}

// ssh2 gives SFTP status codes (2 no such file, 3 permission denied); ssh2-sftp-client turns them into
// ENOENT / EACCES in some calls and passes them through in others.
const codeOf = (error: unknown): unknown => (error as { code?: unknown }).code;

/** True when an SFTP call failed because the path does not exist. */
export function isMissing(error: unknown): boolean {
  return codeOf(error) === 2 || codeOf(error) === 'ENOENT';
}

/** True when the server answered no (missing path, no permission), as opposed to the connection failing. */
export function isRefusal(error: unknown): boolean {
  return isMissing(error) || codeOf(error) === 3 || codeOf(error) === 'EACCES';
}

/** `CODE: message (fix: hint)` for connector state and logs; never includes options, so no secret. */
export function describeFailure(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const { code, hint } = error as Error & { code?: unknown; hint?: unknown };
  const prefix = typeof code === 'string' ? `${code}: ` : '';
  return `${prefix}${error.message}${typeof hint === 'string' ? ` (fix: ${hint})` : ''}`;
}
