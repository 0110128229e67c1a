// `onco-relay`: start, validate, user add, status, deploy, import, audit, docs, schema. Each command returns an exit code.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadConfig, type LoadedConfig } from '../config/config.ts';
import { formatProblem } from '../config/loader.ts';
import { renderError } from '../config/errors.ts';
import { defaultBind, envPort } from '../connectors/listener-setup.ts';
import { Store } from '../store/store.ts';
import type { Registry } from '../channels/registry.ts';
import { AccountError, hashPassword, roles, type Role } from '../store/accounts.ts';
import { checkNewPassword } from '../store/auth-password.ts';
import { createLogger } from './logger.ts';
import { ConnectorSetupError } from '../connectors/listener-setup.ts';
import { identityFiles, importIdentities, type ImportProgress } from '../channels/identity-import.ts';
import { importForms } from '../channels/rcp-input.ts';
import { actxUrl, actxUrlUsage } from './actx-url.ts';

const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const usage = `Usage: onco-relay <command> [options]

  start      [--config DIR] [--data DIR]     run the appliance (SIGTERM stops it cleanly)
  validate   [--config DIR]                  check a configuration without starting
  user add LOGIN --role ROLE [--finess FINESS] [--ssh-key FILE] --password-stdin [--data DIR] [--config DIR]
             roles: ${roles.join(', ')}; --finess must be in the directory (config/directory.yaml)
  user passwd LOGIN [--data DIR]             new password on standard input; ends the account's sessions
  user unlock LOGIN [--data DIR]             clears the failed logins of the account and of the addresses throttled on it
  user disable|enable LOGIN [--data DIR]     a disabled account cannot log in; its sessions end
  audit verify [--data DIR]                  check the audit trail's keyed chain and its head (exit 1 naming each break)
  status     [--url URL]                     channel states of the running appliance
  deploy CHANNEL [--url URL] [--user LOGIN] [--password-stdin]
             make the running appliance re-read CHANNEL's file: deploys a new file, replaces an
             edited one (drained first), undeploys a removed one; an invalid file is refused with
             its problems. An operator account: --user (or ONCO_USER), password on stdin (or ONCO_PASSWORD)
  import identities FILE|DIR... [--data DIR] [--accept-test-ins] [--batch N]
             load PAM FR identity files through the identity-vigilance rules (progress on stderr)
  import forms FILE [--data DIR] [--config DIR]
             load RCP forms produced elsewhere (a JSON array, as POST /api/rcp/forms/import): each
             validated and sent by documents-out; names every refused form; exit 1 if any
  ${actxUrlUsage}
  docs                                       print the component reference (Markdown)
  schema                                     print the JSON Schema of a channel file (for editors)

Environment: ONCO_DATA_DIR, ONCO_BIND, ONCO_HTTP_PORT, ONCO_SFTP_PORT, ONCO_SMTP_PORT, ONCO_MLLP_PORT, ONCO_LOG_LEVEL.`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'start':
        return await start(rest);
      case 'validate':
        return await validate(rest);
      case 'user':
        return await user(rest);
      case 'audit':
        return auditCommand(rest);
      case 'status':
        return await status(rest);
      case 'deploy':
        return await deploy(rest);
      case 'import':
        return await importCommand(rest);
      case 'actx-url':
        return await actxUrl(rest, (v) => ({ base: applianceUrl(v.url), configDir: dirs(v).configDir }));
      case 'docs':
        process.stdout.write(`${(await registry()).docs()}\n`);
        return 0;
      case 'schema':
        process.stdout.write(`${JSON.stringify((await registry()).channelJsonSchema(), null, 2)}\n`);
        return 0;
      case undefined:
      case 'help':
      case '--help':
        process.stdout.write(`${usage}\n`);
        return command ? 0 : 2;
      default:
        process.stderr.write(`unknown command "${command}"\n\n${usage}\n`);
        return 2;
    }
  } catch (error) {
    process.stderr.write(`onco-relay ${command}: ${renderError(error)}\n`);
    return 1;
  }
}

function dirs(values: { config?: string; data?: string }): { configDir: string; dataDir: string } {
  const dataDir = path.resolve(values.data ?? process.env.ONCO_DATA_DIR ?? 'data');
  // Config files refer to the data directory as ${ONCO_DATA_DIR}: make it the one actually used.
  process.env.ONCO_DATA_DIR = dataDir;
  return { configDir: path.resolve(values.config ?? path.join(packageRoot, 'config')), dataDir };
}

/**
 * The connectors, the engine and the dashboard are loaded by the commands that run them: `import
 * identities` and `user add` need the store alone, and the region's bulk load stays under 300 MB
 * only without ~55 MB of modules it never calls.
 */
async function registry(): Promise<Registry> {
  return (await import('../channels/builtins.ts')).builtinRegistry();
}

async function loadValid(configDir: string): Promise<{ config: LoadedConfig; problems: string[] }> {
  const config = loadConfig(configDir);
  const { validateConfig } = await import('../channels/validate.ts');
  const problems = validateConfig(config, await registry()).map(formatProblem);
  return { config, problems };
}

async function validate(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string' }, data: { type: 'string' } } });
  const { configDir } = dirs(values);
  const { config, problems } = await loadValid(configDir);
  if (problems.length) {
    process.stderr.write(`${problems.join('\n')}\n${problems.length} problem(s) in ${configDir}\n`);
    return 1;
  }
  process.stdout.write(`${configDir}: valid (${config.channels.length} channels)\n`);
  return 0;
}

async function start(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string' }, data: { type: 'string' } } });
  const { configDir, dataDir } = dirs(values);
  const { config, problems } = await loadValid(configDir);
  if (problems.length) {
    process.stderr.write(
      `${problems.join('\n')}\nnot started: fix the configuration (onco-relay validate)\n`,
    );
    return 1;
  }
  // Listen for the stop signals before anything starts: without a listener the OS kills the
  // process outright, so a SIGTERM sent as soon as "started" is read would skip the drain.
  const stopSignal = new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o750 });
  const log = createLogger();
  const [{ Engine }, { buildServer }] = await Promise.all([
    import('../channels/engine.ts'),
    import('../dashboard/server.ts'),
  ]);
  const engine = new Engine({ config, dataDir, registry: await registry(), log });
  await firstAdmin(engine.store);
  await engine.start();
  const http = buildServer(engine, config.engine.http);
  const { bind, port } = config.engine.http;
  try {
    await http.listen({ host: bind, port });
  } catch (error) {
    // Nothing may stay open behind a failed start: the process must end, not linger half-alive.
    await http.close();
    await engine.stop();
    const inUse = (error as NodeJS.ErrnoException).code === 'EADDRINUSE';
    throw new ConnectorSetupError(
      inUse ? 'PORT_IN_USE' : 'LISTEN_FAILED',
      `not started: the dashboard cannot listen on ${bind}:${port} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
      inUse
        ? 'another process holds this port: stop it, or choose another one with ONCO_HTTP_PORT'
        : 'check the bind address (ONCO_BIND) and the port (ONCO_HTTP_PORT)',
      error,
    );
  }
  const address = http.server.address();
  log.info({ dataDir, configDir, http: address }, 'onco-relay started');

  const signal = await stopSignal;
  log.info({ signal }, 'stopping: sources first, then processing, destinations, store');
  await http.close();
  await engine.stop();
  log.info('onco-relay stopped');
  return 0;
}

/** On a store with no admin, creates `admin` with a random password, prints it once, and forces its change. */
async function firstAdmin(store: Store): Promise<void> {
  if (store.accounts.adminCount() > 0) return;
  const password = crypto.randomBytes(12).toString('base64url');
  await store.write.logins.addAccount(
    { login: 'admin', role: 'admin', passwordHash: hashPassword(password), mustChangePassword: true },
    { actor: 'system' },
    { role: 'admin', firstStart: true },
  );
  process.stdout.write(
    `\n  First start: created the account "admin" with the one-time password\n\n      ${password}\n\n` +
      `  It is shown only this once. Log in: the dashboard asks for a new password first. Or create your\n` +
      `  own admin with: onco-relay user add LOGIN --role admin --password-stdin\n\n`,
  );
}

/** Who acts from the command line, for the audit trail. */
const cliActor = (): { actor: string; source: string } => ({
  actor: `cli:${process.env.USER ?? 'unknown'}`,
  source: 'cli',
});

async function user(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      role: { type: 'string' },
      finess: { type: 'string' },
      'ssh-key': { type: 'string' },
      'password-stdin': { type: 'boolean' },
      data: { type: 'string' },
      config: { type: 'string' },
    },
  });
  const [sub, login] = positionals;
  const subs = ['add', 'passwd', 'unlock', 'disable', 'enable'];
  if (!sub || !subs.includes(sub) || !login) {
    process.stderr.write(`${usage}\n`);
    return 2;
  }
  const { dataDir, configDir } = dirs(values);
  if (sub === 'add') return userAdd(login, values, dataDir, configDir);
  const password = sub === 'passwd' ? await newPassword(login) : null;
  if (password instanceof Error) {
    process.stderr.write(`${password.message}\n`);
    return 2;
  }
  // One write: not worth starting a writer thread for.
  const store = new Store({ dataDir, writer: 'inline' });
  try {
    if (sub === 'passwd') await store.auth.setPassword(login, hashPassword(password!), cliActor());
    else if (sub === 'unlock') await store.auth.unlock(login, cliActor());
    else await store.auth.setDisabled(login, sub === 'disable', cliActor());
    const done = {
      passwd: 'password changed, sessions ended',
      unlock: 'failed logins cleared',
      disable: 'disabled, sessions ended',
      enable: 'enabled',
    };
    process.stdout.write(`account "${login}": ${done[sub as keyof typeof done]}\n`);
    return 0;
  } catch (error) {
    return accountFailure(error);
  } finally {
    await store.close();
  }
}

/** The new password from standard input, checked against the policy; an Error says what is wrong. */
async function newPassword(login: string): Promise<string | Error> {
  const password = (await readStdin()).replace(/\r?\n$/, '');
  if (!password) return new Error("no password on standard input: echo '…' | onco-relay user …");
  try {
    checkNewPassword(password, login);
  } catch (error) {
    if (error instanceof AccountError) return new Error(`${error.message} (${error.hint})`);
    throw error;
  }
  return password;
}

function accountFailure(error: unknown): number {
  if (!(error instanceof AccountError)) throw error;
  process.stderr.write(`${error.message}${error.hint ? ` (${error.hint})` : ''}\n`);
  return 1;
}

async function userAdd(
  login: string,
  values: { role?: string; finess?: string; 'ssh-key'?: string; 'password-stdin'?: boolean },
  dataDir: string,
  configDir: string,
): Promise<number> {
  if (!values.role || !(roles as readonly string[]).includes(values.role)) {
    process.stderr.write(`--role must be one of ${roles.join(', ')}\n`);
    return 2;
  }
  if (values.finess) {
    const { directory } = loadConfig(configDir);
    if (!directory.establishments?.some((e) => e.finess === values.finess)) {
      process.stderr.write(
        `FINESS ${values.finess} is not in the directory (${path.join(configDir, 'directory.yaml')}): add the establishment there first, or check the number\n`,
      );
      return 1;
    }
  }
  const password = values['password-stdin'] ? await newPassword(login) : null;
  if (password instanceof Error) {
    process.stderr.write(`--password-stdin: ${password.message}\n`);
    return 2;
  }
  const publicKeys = values['ssh-key']
    ? [parseOpenSshPublicKey(fs.readFileSync(values['ssh-key'], 'utf8'))]
    : [];
  const store = new Store({ dataDir, writer: 'inline' });
  try {
    const a = await store.write.logins.addAccount(
      {
        login,
        role: values.role as Role,
        finess: values.finess ?? null,
        passwordHash: password === null ? null : hashPassword(password),
        publicKeys,
      },
      cliActor(),
      {
        role: values.role,
        finess: values.finess ?? null,
        password: password !== null,
        keys: publicKeys.length,
      },
    );
    process.stdout.write(
      `account "${a.login}" created (role ${a.role}${a.finess ? `, FINESS ${a.finess}` : ''})\n`,
    );
    return 0;
  } catch (error) {
    return accountFailure(error);
  } finally {
    await store.close();
  }
}

/** `ssh-ed25519 AAAA… comment` → the algorithm and the wire-format key blob that SSH clients offer. */
export function parseOpenSshPublicKey(text: string): { algorithm: string; key: Buffer; comment?: string } {
  const [algorithm, b64, ...comment] = text.trim().split(/\s+/);
  const key = Buffer.from(b64 ?? '', 'base64');
  if (
    !algorithm ||
    key.length < 16 ||
    key.readUInt32BE(0) !== algorithm.length ||
    key.subarray(4, 4 + algorithm.length).toString() !== algorithm
  ) {
    throw new Error(
      '--ssh-key: not an OpenSSH public key file (expected "ssh-ed25519 AAAA… comment", as in id_ed25519.pub)',
    );
  }
  return { algorithm, key, comment: comment.join(' ') || undefined };
}

async function auditCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { data: { type: 'string' } },
  });
  if (positionals[0] !== 'verify') {
    process.stderr.write(`${usage}\n`);
    return 2;
  }
  // Reads only: no writer thread to start.
  const store = new Store({ dataDir: dirs(values).dataDir, writer: 'inline' });
  try {
    const v = store.audit.verify();
    if (v.ok) {
      process.stdout.write(`audit trail intact: ${v.rows} rows, head ${v.head}\n`);
      return 0;
    }
    process.stderr.write(`audit trail BROKEN: ${v.breaks.length} break(s) in ${v.rows} rows\n`);
    for (const b of v.breaks) process.stderr.write(`  ${b.kind}: ${b.message}\n`);
    return 1;
  } finally {
    await store.close();
  }
}

/** The running appliance's address: --url, else what `start` would listen on in this environment. */
const applianceUrl = (url: string | undefined): string =>
  url ?? `http://${defaultBind()}:${envPort('ONCO_HTTP_PORT', 8080)}`;

/** Calls the running appliance; null (after saying so) when nothing answers there. */
async function callAppliance(base: string, route: string, init?: RequestInit): Promise<Response | null> {
  try {
    return await fetch(`${base}${route}`, init);
  } catch (error) {
    process.stderr.write(`no appliance answers at ${base} (${(error as Error).message}); is it started?\n`);
    return null;
  }
}

async function status(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { url: { type: 'string' } } });
  const base = applianceUrl(values.url);
  const res = await callAppliance(base, '/api/health');
  if (!res) return 1;
  const health = (await res.json()) as {
    status: string;
    channels: Array<{
      id: string;
      state: string;
      backlog: number;
      queued: Record<string, number>;
      lastError: string | null;
    }>;
  };
  process.stdout.write(`${health.status}\n`);
  for (const c of health.channels) {
    const queued = Object.entries(c.queued)
      .map(([d, n]) => `${d}=${n}`)
      .join(' ');
    process.stdout.write(
      `${c.id.padEnd(24)} ${c.state.padEnd(10)} backlog=${c.backlog} ${queued}${c.lastError ? `  last error: ${c.lastError}` : ''}\n`,
    );
  }
  return health.status === 'ok' ? 0 : 1;
}

async function deploy(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      url: { type: 'string' },
      user: { type: 'string' },
      'password-stdin': { type: 'boolean' },
    },
  });
  const [channel] = positionals;
  const login = values.user ?? process.env.ONCO_USER;
  if (!channel || positionals.length > 1 || !login) {
    process.stderr.write(
      `${!login ? 'deploy: name an operator account with --user or ONCO_USER\n\n' : ''}${usage}\n`,
    );
    return 2;
  }
  const password = values['password-stdin']
    ? (await readStdin()).replace(/\r?\n$/, '')
    : process.env.ONCO_PASSWORD;
  if (!password) {
    process.stderr.write(
      'deploy: give the password on standard input (--password-stdin) or in ONCO_PASSWORD\n',
    );
    return 2;
  }
  const base = applianceUrl(values.url);
  const res = await callAppliance(base, `/api/channels/${encodeURIComponent(channel)}/deploy`, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`${login}:${password}`).toString('base64')}` },
  });
  if (!res) return 1;
  const body = (await res.json()) as { state?: string; error?: string; message?: string; hint?: string };
  if (!res.ok) {
    process.stderr.write(
      `onco-relay deploy: ${body.error ?? res.status}: ${body.message ?? res.statusText}${body.hint ? `. Hint: ${body.hint}` : ''}\n`,
    );
    return 1;
  }
  process.stdout.write(`channel "${channel}": ${body.state}\n`);
  return 0;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function importCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      data: { type: 'string' },
      config: { type: 'string' },
      'accept-test-ins': { type: 'boolean' },
      batch: { type: 'string' },
    },
  });
  const [what, ...paths] = positionals;
  if (what === 'forms' && paths.length === 1) return importFormsCommand(paths[0]!, values);
  if (what !== 'identities' || paths.length === 0) {
    process.stderr.write(`${usage}\n`);
    return 2;
  }
  const files = await identityFiles(paths);
  const { dataDir, configDir } = dirs(values);
  const { directory, problems } = loadConfig(configDir);
  if (problems.length > 0) {
    process.stderr.write(`${problems.map(formatProblem).join('\n')}\n`);
    return 1;
  }
  const store = new Store({ dataDir, bulkLoad: true });
  const user = process.env.USER ?? 'cli';
  try {
    const report = await importIdentities(store, files, {
      author: `import:${user}`,
      directory,
      batch: values.batch ? Number(values.batch) : undefined,
      rules: { acceptTestIns: values['accept-test-ins'] ?? false },
      onProgress: progressBar(Date.now()),
    });
    process.stderr.write('\n');
    await store.write.audit.record({
      actor: `import:${user}`,
      source: 'cli',
      action: 'identity-import',
      object: `files:${files.length}`,
      outcome: report.refused > 0 ? 'failed' : 'ok',
      detail: {
        files: files.length,
        messages: report.messages,
        filed: report.filed,
        refused: report.refused,
      },
    });
    process.stdout.write(
      `${report.filed} identities filed, ${report.refused} refused, from ${report.files} file(s) in ${report.seconds.toFixed(1)} s ` +
        `(${Math.round(report.messages / report.seconds)}/s)\n${JSON.stringify(report.actions)}\n`,
    );
    for (const e of report.errors)
      process.stdout.write(
        `refused: ${e.file}${e.message === null ? '' : ` message ${e.message}`}: ${e.error}\n`,
      );
    return report.refused > 0 ? 1 : 0;
  } finally {
    await store.close();
  }
}

/** `import forms FILE`: the forms of another RCP software, through the same path as the API's import. */
async function importFormsCommand(file: string, values: { data?: string; config?: string }): Promise<number> {
  const { dataDir, configDir } = dirs(values);
  const { directory, problems } = loadConfig(configDir);
  if (problems.length > 0) {
    process.stderr.write(`${problems.map(formatProblem).join('\n')}\n`);
    return 1;
  }
  let items: unknown;
  try {
    items = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    process.stderr.write(`${file}: not a readable JSON file (${(error as Error).message})\n`);
    return 1;
  }
  if (!Array.isArray(items)) {
    process.stderr.write(`${file}: expected a JSON array of forms\n`);
    return 1;
  }
  const store = new Store({ dataDir });
  try {
    const actor = { login: `import:${process.env.USER ?? 'cli'}`, source: 'cli' };
    const results = await importForms(store, items as Array<Record<string, unknown>>, directory, actor);
    const refused = results.filter((r) => r.error);
    process.stdout.write(
      `${results.length - refused.length} form(s) imported, ${refused.length} refused, from ${file}\n`,
    );
    for (const r of refused)
      process.stdout.write(`refused: form ${r.index}: ${r.error!.code}: ${r.error!.message}\n`);
    return refused.length > 0 ? 1 : 0;
  } finally {
    await store.close();
  }
}

/** A one-line progress bar on a terminal; a line every few seconds otherwise (logs, CI). */
function progressBar(started: number): (p: ImportProgress) => void {
  let lastLine = 0;
  let filesDone = 0;
  return (p) => {
    const width = 30;
    const done = Math.round((p.filesDone / Math.max(1, p.files)) * width);
    const rate = Math.round(p.messages / Math.max(0.001, (Date.now() - started) / 1000));
    const line = `[${'#'.repeat(done)}${'.'.repeat(width - done)}] ${p.filesDone}/${p.files} files  ${p.messages.toLocaleString('en')} messages  ${rate.toLocaleString('en')}/s  ${p.refused} refused`;
    if (process.stderr.isTTY) process.stderr.write(`\r${line}`);
    // A line per file done (and every 5 s within one): the benchmark reads its checkpoints from them.
    else if (Date.now() - lastLine > 5000 || p.filesDone !== filesDone) {
      lastLine = Date.now();
      filesDone = p.filesDone;
      process.stderr.write(`${line}\n`);
    }
  };
}
