// Whole-configuration validation: the frame (config/), each component's options against its spec,
// and references between channels. Used by `onco-relay validate` and before every start.
import type { LoadedConfig } from '../config/config.ts';
import type { ConfigProblem } from '../config/loader.ts';
import { destinationFrameKeys } from '../config/schema.ts';
import type { Registry } from './registry.ts';

export function validateConfig(config: LoadedConfig, registry: Registry): ConfigProblem[] {
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
      if (d.type === 'channel-writer' && typeof d.channel === 'string' && !ids.has(d.channel)) {
        problems.push({
          file: file.file,
          line: file.lineOf(`${at}/channel`),
          path: `${at}/channel`,
          message: `no channel has id "${d.channel}"`,
          hint: `use one of ${[...ids].join(', ')}`,
        });
      }
    });
  }
  return problems;
}
