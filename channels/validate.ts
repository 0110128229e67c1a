// Whole-configuration validation: the frame (config/), each component's options against its spec,
// and references between channels. Used by `onco-relay validate` and before every start.
import type { ChannelFile, LoadedConfig } from '../config/config.ts';
import type { ConfigProblem } from '../config/loader.ts';
import { destinationFrameKeys } from '../config/schema.ts';
import type { Registry } from './registry.ts';

export function validateConfig(
  config: LoadedConfig,
  registry: Registry,
  env: NodeJS.ProcessEnv = process.env,
): ConfigProblem[] {
  const problems = [...config.problems];
  const ids = new Set(config.channels.map((c) => c.config.id));
  for (const { config: ch, file } of config.channels) {
    registry.validate('source', ch.source, file, '/source', problems);
    ch.steps.forEach((s, i) => registry.validate('step', s, file, `/steps/${i}`, problems));
    const names = new Set<string>();
    ch.destinations.forEach((d, i) => {
      const at = `/destinations/${i}`;
      if (names.has(d.name)) {
        problems.push({
          file: file.file,
          line: file.lineOf(`${at}/name`),
          path: `${at}/name`,
          message: `destination name "${d.name}" is used twice in this channel`,
          hint: 'give each destination its own name',
        });
      }
      names.add(d.name);
      registry.validate('destination', d, file, at, problems, destinationFrameKeys);
      d.steps.forEach((s, j) => registry.validate('step', s, file, `${at}/steps/${j}`, problems));
      // Destinations that hand messages to other channels: channel-writer, attachment-dispatch routes.
      const targets: Array<[string, unknown]> =
        d.type === 'channel-writer'
          ? [['channel', d.channel]]
          : d.type === 'attachment-dispatch' && typeof d.routes === 'object' && d.routes !== null
            ? Object.entries(d.routes).map(([kind, id]) => [`routes/${kind}`, id])
            : [];
      for (const [key, id] of targets) {
        if (typeof id !== 'string' || ids.has(id)) continue;
        problems.push({
          file: file.file,
          line: file.lineOf(`${at}/${key}`),
          path: `${at}/${key}`,
          message: `no channel has id "${id}"`,
          hint: `use one of ${[...ids].join(', ')}`,
        });
      }
    });
  }
  problems.push(...portClashes(config, env));
  return problems;
}

/**
 * Sources that open a port, with the default the connector falls back to. `shared` listeners are
 * one server behind several channels (every sftp-drop source is a folder of the one SFTP server).
 */
const listeners: Record<string, { defaultPort?: (env: NodeJS.ProcessEnv) => number; shared?: string }> = {
  'mllp-listener': { defaultPort: (env) => Number(env.ONCO_MLLP_PORT || 2575) },
  'http-listener': {},
  'sftp-drop': { defaultPort: (env) => Number(env.ONCO_SFTP_PORT || 2222), shared: 'the SFTP server' },
  'smtp-inbox': { defaultPort: (env) => Number(env.ONCO_SMTP_PORT || 2525), shared: 'the SMTP server' },
};

interface Listener {
  what: string;
  port: number;
  bind: string;
  shared?: string;
  file?: ChannelFile['file'];
}

const anyAddress = new Set(['0.0.0.0', '::', '']);
const overlap = (a: Listener, b: Listener): boolean =>
  a.port === b.port && (a.bind === b.bind || anyAddress.has(a.bind) || anyAddress.has(b.bind));

/** Two listeners on one port: the second would fail at start with EADDRINUSE, after the first opened. */
function portClashes(config: LoadedConfig, env: NodeJS.ProcessEnv): ConfigProblem[] {
  const defaultBind = env.ONCO_BIND || '127.0.0.1';
  const taken: Listener[] = [
    {
      what: 'the dashboard (engine.yaml http.port)',
      port: config.engine.http.port,
      bind: config.engine.http.bind,
    },
  ];
  const problems: ConfigProblem[] = [];
  for (const { config: ch, file } of config.channels) {
    const kind = listeners[ch.source.type];
    if (!kind) continue;
    const port = typeof ch.source.port === 'number' ? ch.source.port : kind.defaultPort?.(env);
    // Port 0 asks the system for a free port: it never clashes.
    if (!port) continue;
    const bind = typeof ch.source.bind === 'string' ? ch.source.bind : defaultBind;
    const mine: Listener = {
      what: `channel ${ch.id} (${ch.source.type})`,
      port,
      bind,
      shared: kind.shared,
      file,
    };
    const other = taken.find((t) => overlap(t, mine) && !(t.shared && t.shared === mine.shared));
    if (other) {
      problems.push({
        file: file.file,
        line: file.lineOf('/source/port'),
        path: '/source/port',
        message: `port ${port} is already taken by ${other.what}${other.file ? ` in ${other.file.file}` : ''}`,
        hint: 'give each listener its own port (or set the environment variable it reads)',
      });
    }
    taken.push(mine);
  }
  return problems;
}
