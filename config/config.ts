// The appliance configuration directory: engine.yaml, directory.yaml and channels/*.yaml.
import fs from 'node:fs';
import path from 'node:path';
import { ajv, checkAgainst, readConfigFile, type ConfigFile, type ConfigProblem } from './loader.ts';
import { channelSchema, directorySchema, engineSchema } from './schema.ts';

export interface RetryPolicy {
  maxAttempts: number;
  initialDelayMs: number;
  maxDelayMs: number;
  multiplier: number;
  jitter: number;
}

export interface EngineConfig {
  http: {
    bind: string;
    port: number;
    tls?: { cert: string; key: string };
    secureCookies: 'auto' | 'always' | 'never';
    trustProxy: string[];
  };
  store: {
    synchronous: 'FULL' | 'NORMAL';
    writer: 'thread' | 'inline';
    pruneAfterDays: number;
    pruneEveryMinutes: number;
    blobThresholdBytes: number;
    writerRestarts: number;
  };
  defaults: { retry: RetryPolicy; queueLimit: number; poisonLimit: number };
  stepPool: { threads?: number };
  identity: Record<string, unknown>;
}

/** An establishment's contextual-call settings (directory.yaml, `actx`). */
export interface ActxSettings {
  verifier: 'hmac-sha256' | 'jwt';
  secret?: string;
  secretFile?: string;
  publicKeyFile?: string;
  createAccounts: boolean;
  accountRole: 'establishment' | 'viewer';
  acceptTestIns: boolean;
}

export interface Establishment {
  finess: string;
  name: string;
  kind: 'hospital' | 'pathology-lab' | 'molecular-lab' | 'other';
  /** Whose patients it may report on besides its own (default: `all` for labs, none otherwise). */
  reportsFor?: 'all' | string[];
  /** Its preferred way and format for outbound documents (default: pickup in its SFTP `/out/`). */
  documents?: {
    way: 'sftp-push' | 'pickup' | 'mllp' | 'mssante';
    channel?: string;
    mailbox?: string;
    format?: 'cda' | 'xdm' | 'hl7v2';
    application?: string;
  };
  /** Its MSSanté addresses (smtp-inbox allow-lists). */
  mssante?: string[];
  actx?: ActxSettings;
  [setting: string]: unknown;
}

export interface DirectoryConfig {
  establishments: Establishment[];
  professionals: Array<{ rpps: string; family: string; given: string; mssante?: string; finess?: string }>;
}

export interface ComponentConfig {
  type: string;
  [option: string]: unknown;
}

export interface DestinationConfig extends ComponentConfig {
  name: string;
  queue: 'ordered' | 'parallel';
  concurrency: number;
  retry?: Partial<RetryPolicy>;
  steps: ComponentConfig[];
}

export interface ChannelConfig {
  id: string;
  name?: string;
  description?: string;
  enabled: boolean;
  storage: 'all' | 'production' | 'metadata';
  queueLimit?: number;
  dedup: boolean;
  source: ComponentConfig;
  steps: ComponentConfig[];
  destinations: DestinationConfig[];
}

export interface ChannelFile {
  config: ChannelConfig;
  file: ConfigFile;
  /** The YAML text as written (before interpolation), for the dashboard's read-only view. */
  text: string;
}

export interface LoadedConfig {
  dir: string;
  engine: EngineConfig;
  directory: DirectoryConfig;
  channels: ChannelFile[];
  problems: ConfigProblem[];
}

const validateEngine = ajv.compile(engineSchema);
const validateDirectory = ajv.compile(directorySchema);
const validateChannel = ajv.compile(channelSchema);

/** A grant naming a FINESS the directory does not hold is a typo that would refuse a lab's reports. */
function unknownGrants(file: string, directory: DirectoryConfig): ConfigProblem[] {
  const known = new Set((directory.establishments ?? []).map((e) => e.finess));
  return (directory.establishments ?? []).flatMap((e, i) =>
    Array.isArray(e.reportsFor)
      ? e.reportsFor
          .filter((f) => !known.has(f))
          .map((f) => ({
            file,
            path: `/establishments/${i}/reportsFor`,
            message: `${e.finess} is granted FINESS ${f}, which is not an establishment of the directory`,
            hint: `add ${f} to establishments, or remove it from reportsFor`,
          }))
      : [],
  );
}

/** Loads everything it can and collects every problem rather than stopping at the first. */
export function loadConfig(dir: string, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const problems: ConfigProblem[] = [];
  const optional = (name: string, validate: typeof validateEngine): unknown => {
    const file = path.join(dir, name);
    if (!fs.existsSync(file)) {
      const empty = {};
      validate(empty);
      return empty;
    }
    const f = readConfigFile(file, env, problems);
    const data = f.data ?? {};
    checkAgainst(validate, data, f, '', problems);
    return data;
  };
  if (!fs.existsSync(dir)) {
    problems.push({
      file: dir,
      path: '',
      message: 'configuration directory does not exist',
      hint: 'pass --config DIR',
    });
  }
  const engine = optional('engine.yaml', validateEngine) as EngineConfig;
  const directory = optional('directory.yaml', validateDirectory) as DirectoryConfig;
  problems.push(...unknownGrants(path.join(dir, 'directory.yaml'), directory));

  const channels: ChannelFile[] = [];
  const channelDir = path.join(dir, 'channels');
  const names = fs.existsSync(channelDir)
    ? fs
        .readdirSync(channelDir)
        .filter((n) => n.endsWith('.yaml') || n.endsWith('.yml'))
        .sort()
    : [];
  const seen = new Map<string, string>();
  for (const name of names) {
    const full = path.join(channelDir, name);
    const file = readConfigFile(full, env, problems);
    if (file.data === undefined) continue;
    if (!checkAgainst(validateChannel, file.data, file, '', problems)) continue;
    const config = file.data as ChannelConfig;
    const previous = seen.get(config.id);
    if (previous) {
      problems.push({
        file: file.file,
        line: file.lineOf('/id'),
        path: '/id',
        message: `channel id "${config.id}" is already used by ${previous}`,
        hint: 'give each channel its own id',
      });
      continue;
    }
    seen.set(config.id, file.file);
    channels.push({ config, file, text: fs.readFileSync(full, 'utf8') });
  }
  return { dir, engine, directory, channels, problems };
}
