// The registry maps a config `type` to the spec of a source, destination or step. One spec per
// component drives option validation, the editor JSON Schema and the generated docs (Benthos' way),
// and the registry is what builds a component: its options are read once, here — validated,
// defaulted and frozen from the spec's schema — so a component never re-checks or re-defaults them.
// A registry is a value built by the caller, never a module singleton: tests build their own.
import type {
  Destination,
  DestinationContext,
  DestinationSpec,
  JsonSchema,
  Source,
  SourceContext,
  SourceSpec,
} from '../connectors/contract.ts';
import { deepFreeze, type Step, type StepSpec } from '../transformers/contract.ts';
import { OncoError } from '../config/errors.ts';
import { ajv, checkAgainst, formatProblem, type ConfigFile, type ConfigProblem } from '../config/loader.ts';
import {
  allowInterpolation,
  channelSchema,
  destinationFrameKeys,
  engineSchema,
  directorySchema,
} from '../config/schema.ts';
import type { ValidateFunction } from 'ajv';

// The specs' option types differ per component; the registry only sees their common face.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnySpec = SourceSpec<any> | DestinationSpec<any> | StepSpec<any>;
type Kind = AnySpec['kind'];

export class Registry {
  private readonly specs = new Map<string, AnySpec>();
  private readonly validators = new Map<string, ValidateFunction>();

  register(...specs: AnySpec[]): this {
    for (const spec of specs) {
      const key = `${spec.kind}:${spec.type}`;
      if (this.specs.has(key)) throw new Error(`${spec.kind} type "${spec.type}" is registered twice`);
      this.specs.set(key, spec);
    }
    return this;
  }

  source(type: string): SourceSpec<Record<string, unknown>> {
    return this.get('source', type) as SourceSpec<Record<string, unknown>>;
  }

  destination(type: string): DestinationSpec<Record<string, unknown>> {
    return this.get('destination', type) as DestinationSpec<Record<string, unknown>>;
  }

  step(type: string): StepSpec<Record<string, unknown>> {
    return this.get('step', type) as StepSpec<Record<string, unknown>>;
  }

  /** Builds a channel's source from its options as written in the channel file. */
  createSource(options: ComponentOptions, ctx: SourceContext): Source {
    const spec = this.source(options.type);
    return spec.create(this.read(spec, options, ['type']), ctx);
  }

  /** Builds a destination; `frameKeys` are the engine's own keys beside its options (name, queue…). */
  createDestination(
    options: ComponentOptions,
    ctx: DestinationContext,
    frameKeys: readonly string[] = ['type'],
  ): Destination {
    const spec = this.destination(options.type);
    return spec.create(this.read(spec, options, frameKeys), ctx);
  }

  createStep(options: ComponentOptions): Step {
    const spec = this.step(options.type);
    return spec.create(this.read(spec, options, ['type']));
  }

  // A copy, so that the channel's configuration object is never shared with (or changed by) a component.
  private read(
    spec: AnySpec,
    options: ComponentOptions,
    frameKeys: readonly string[],
  ): Record<string, unknown> {
    const own = structuredClone(ownOptions(options, frameKeys));
    const problems: ConfigProblem[] = [];
    const file = { file: `${spec.kind} "${spec.type}"`, data: own, lineOf: () => undefined };
    if (!checkAgainst(this.validator(spec), own, file, '', problems)) {
      throw new OncoError('OPTIONS_INVALID', {
        params: { problems: problems.map(formatProblem).join('; ') },
      });
    }
    return deepFreeze(own);
  }

  types(kind: Kind): string[] {
    return [...this.specs.values()]
      .filter((s) => s.kind === kind)
      .map((s) => s.type)
      .sort();
  }

  private get(kind: Kind, type: string): AnySpec {
    const spec = this.specs.get(`${kind}:${type}`);
    if (!spec) throw new Error(`unknown ${kind} type "${type}"; known: ${this.types(kind).join(', ')}`);
    return spec;
  }

  /**
   * Validates one component's options (filling defaults in place). `frameKeys` are the engine's own
   * keys in the same YAML object, which the component's schema does not know.
   */
  validate(
    kind: Kind,
    options: Record<string, unknown>,
    file: ConfigFile,
    pointer: string,
    problems: ConfigProblem[],
    frameKeys: readonly string[] = ['type'],
  ): boolean {
    const type = String(options.type);
    const spec = this.specs.get(`${kind}:${type}`);
    if (!spec) {
      problems.push({
        file: file.file,
        line: file.lineOf(`${pointer}/type`),
        path: `${pointer}/type`,
        message: `unknown ${kind} type "${type}"`,
        hint: `use one of ${this.types(kind).join(', ')}`,
      });
      return false;
    }
    const own = ownOptions(options, frameKeys);
    const ok = checkAgainst(this.validator(spec), own, file, pointer, problems);
    Object.assign(options, own);
    return ok;
  }

  private validator(spec: AnySpec): ValidateFunction {
    const key = `${spec.kind}:${spec.type}`;
    let v = this.validators.get(key);
    if (!v) {
      v = ajv.compile({ type: 'object', additionalProperties: false, ...spec.schema });
      this.validators.set(key, v);
    }
    return v;
  }

  /** A JSON Schema of a channel file with every registered component, for editors (YAML language server). */
  channelJsonSchema(): JsonSchema {
    const variants = (kind: Kind, extra: Record<string, unknown> = {}): JsonSchema[] =>
      [...this.specs.values()]
        .filter((s) => s.kind === kind)
        .map((s) => {
          const schema = s.schema as { properties?: Record<string, unknown>; required?: string[] };
          return {
            type: 'object',
            description: s.summary,
            required: ['type', ...(schema.required ?? [])],
            properties: { type: { const: s.type }, ...extra, ...(schema.properties ?? {}) },
            additionalProperties: false,
          };
        });
    const frame = channelSchema.properties.destinations.items.properties;
    const destinationExtra = Object.fromEntries(
      destinationFrameKeys.filter((k) => k !== 'type').map((k) => [k, frame[k]]),
    );
    const { $id: _channel, ...channel } = channelSchema;
    const { $id: _engine, ...engine } = engineSchema;
    const { $id: _directory, ...directory } = directorySchema;
    return {
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      ...allowInterpolation({
        ...channel,
        properties: {
          ...channel.properties,
          source: { oneOf: variants('source') },
          steps: { type: 'array', items: { oneOf: variants('step') } },
          destinations: {
            type: 'array',
            minItems: 1,
            items: { oneOf: variants('destination', destinationExtra) },
          },
        },
        $defs: { engine, directory },
      }),
    };
  }

  /** Markdown reference of the channel file and every component, generated from the schemas so that docs never drift. */
  docs(): string {
    const frame = channelSchema.properties.destinations.items;
    const out: string[] = [
      '# Onco-Relay channel reference',
      '',
      'Generated by `onco-relay docs` from the schemas the loader validates against. Any value may be',
      'written `${NAME}` or `${NAME:-default}` to read the environment.',
      '',
      '## Channel settings',
      '',
      'The top level of a file in `config/channels/`.',
      '',
      ...optionTable(channelSchema),
      '### Destination settings',
      '',
      'Keys of each `destinations:` entry that belong to the engine; the other keys are the options of its `type` below.',
      '',
      ...optionTable(frame),
      '## Engine settings',
      '',
      '`config/engine.yaml`.',
      '',
      ...optionTable(engineSchema),
    ];
    for (const kind of ['source', 'step', 'destination'] as const) {
      out.push(
        `## ${kind === 'step' ? 'Steps (filters and transformers)' : `${kind[0]!.toUpperCase()}${kind.slice(1)}s`}`,
        '',
      );
      for (const s of [...this.specs.values()]
        .filter((x) => x.kind === kind)
        .sort((a, b) => a.type.localeCompare(b.type))) {
        out.push(`### \`${s.type}\``, '', s.summary, '', ...optionTable(s.schema));
      }
    }
    return out.join('\n');
  }
}

/** A component's object in a channel file: its `type`, its options, maybe the engine's frame keys. */
export type ComponentOptions = { readonly type: string } & Readonly<Record<string, unknown>>;

function ownOptions(
  options: Readonly<Record<string, unknown>>,
  frameKeys: readonly string[],
): Record<string, unknown> {
  return Object.fromEntries(Object.entries(options).filter(([k]) => !frameKeys.includes(k)));
}

interface OptionSchema {
  description?: string;
  default?: unknown;
  type?: string | string[];
  enum?: readonly unknown[];
  properties?: Record<string, OptionSchema>;
  required?: readonly string[];
  items?: OptionSchema;
}

/** One row per option, the keys of a nested object (`rules.strictTraitsMatch`) as rows of their own. */
function optionRows(schema: OptionSchema, prefix = ''): string[] {
  return Object.entries(schema.properties ?? {}).flatMap(([name, p]) => {
    const type = p.enum
      ? p.enum.map((v) => JSON.stringify(v)).join(' \\| ')
      : [p.type ?? ''].flat().join(' \\| ');
    const req = schema.required?.includes(name) ? ' (required)' : '';
    const fallback =
      p.default === undefined ||
      (typeof p.default === 'object' && p.default !== null && !Object.keys(p.default).length)
        ? ''
        : `\`${JSON.stringify(p.default)}\``;
    const row = `| \`${prefix}${name}\`${req} | ${type} | ${fallback} | ${p.description ?? ''} |`;
    return [row, ...(p.properties ? optionRows(p, `${prefix}${name}.`) : [])];
  });
}

function optionTable(schema: unknown): string[] {
  const rows = optionRows(schema as OptionSchema);
  return rows.length ? ['| option | type | default | meaning |', '|---|---|---|---|', ...rows, ''] : [];
}
