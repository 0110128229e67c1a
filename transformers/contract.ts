// A transformer step is a pure function of a message's content: no socket, no database, no clock
// it did not receive. The engine runs it in the processing stage and journals what it returns.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import Type, { type Static, type TObject, type TOptional, type TSchema } from 'typebox';
import Value from 'typebox/value';
import { OncoError, type ProtocolStatus } from '../config/errors.ts';

/** A JSON Schema (draft 2020-12 subset understood by ajv): drives validation, editor hints and docs. */
export type JsonSchema = { [keyword: string]: unknown };

// Component options are declared once, as a TypeBox schema: the registry validates, defaults and
// freezes them from it when a channel is built, and their TypeScript type is derived from it, so a
// default is written in the schema only — never again as `options.x ?? DEFAULT` in code.

/** An option the channel file may leave out: the registry then fills in `value`. */
export type TDefault<S extends TSchema> = TOptional<S> & { readonly default: Static<S> };

export function Default<S extends TSchema>(schema: S, value: Static<S>): TDefault<S> {
  return Type.Optional({ ...schema, default: value } as S) as TDefault<S>;
}

type PropertiesOf<T> = T extends TObject<infer P> ? P : never;
type DefaultedKeys<T extends TObject> = {
  [K in keyof PropertiesOf<T>]: PropertiesOf<T>[K] extends { readonly default: unknown } ? K : never;
}[keyof PropertiesOf<T>];

/** The options a component's `create()` receives: as its schema says, defaulted options always present. */
export type OptionsOf<T extends TObject> = Readonly<
  Static<T> & { [K in DefaultedKeys<T> & keyof Static<T>]-?: Exclude<Static<T>[K], undefined> }
>;

/**
 * Options read as the registry reads them — checked, defaulted and frozen from the schema — for code
 * that builds a component without a registry (tests, benches, the CLI's import).
 */
export function readOptions<T extends TObject>(schema: T, input: Static<T>): OptionsOf<T> {
  const options = Value.Default(schema, Value.Clone(input));
  const problems = Value.Errors(schema, options);
  if (problems.length > 0) {
    const list = problems.map((p) => `${p.instancePath || '/'} ${p.message}`).join('; ');
    throw new OncoError('OPTIONS_INVALID', { params: { problems: list } });
  }
  return deepFreeze(options) as OptionsOf<T>;
}

/** Freezes a value and everything it holds: options nobody may change once read. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

export type MetaValue = string | number | boolean | null;

export interface StepInput {
  /** The bytes. For content kept as a file (`file`), reading this loads the file whole, once. */
  content: Buffer;
  contentType: string;
  meta: Record<string, MetaValue>;
  /** Content above the engine's threshold: a step that can work in chunks reads them here instead. */
  file?: ContentFile;
}

/** Content kept as a file beside the journal (above the engine's threshold), named by its SHA-256. */
export interface ContentFile {
  readonly path: string;
  readonly size: number;
  readonly digest: string;
  /** Its bytes in order, a chunk at a time: never the whole file in memory. */
  chunks(): AsyncIterable<Uint8Array>;
}

/** `null` means the step filtered the message out: it is journaled as FILTERED and goes nowhere. */
export type StepOutput = StepInput | null;

/**
 * Content a step wrote through `StepContext.stage`: its bytes when small, else a finished file that
 * the engine journals as a blob (renamed, not copied). `digest` is its SHA-256, hex.
 */
export interface StagedFile {
  readonly digest: string;
  readonly size: number;
  readonly content?: Buffer;
  readonly file?: string;
}

export type StageSource = { buffer: Buffer } | { stream: AsyncIterable<Uint8Array> };

/** What the engine lends a step besides its input. */
export interface StepContext {
  /**
   * Writes content as it streams, hashing it: large content becomes a file beside the journal, not
   * a Buffer. A staged file that the chain's output is not (`stagedOutput`) is deleted once the
   * steps ran.
   */
  stage(from: StageSource): Promise<StagedFile>;
}

export interface Step {
  (input: StepInput, ctx?: StepContext): StepOutput | Promise<StepOutput>;
}

/** Without an engine (a step called by a test or a tool), staged content is held in memory. */
export const inMemory: StepContext = {
  async stage(from) {
    let content: Buffer;
    if ('buffer' in from) content = from.buffer;
    else {
      const chunks: Uint8Array[] = [];
      for await (const chunk of from.stream) chunks.push(chunk);
      content = Buffer.concat(chunks);
    }
    return { digest: createHash('sha256').update(content).digest('hex'), size: content.length, content };
  },
};

/** How much of a staged file's start `stageNoting` keeps: enough to tell most formats by. */
export const HEAD_BYTES = 16 * 1024;

/**
 * Stages a stream while keeping its first `headBytes` in memory, for whoever must look at the
 * start of the content (its format, a mail's header block) without reading it whole again.
 */
export async function stageNoting(
  ctx: Pick<StepContext, 'stage'>,
  chunks: AsyncIterable<Uint8Array>,
  headBytes: number,
): Promise<{ staged: StagedFile; head: Buffer }> {
  const head: Buffer[] = [];
  let kept = 0;
  async function* noting(): AsyncGenerator<Uint8Array> {
    for await (const chunk of chunks) {
      if (kept < headBytes) {
        const part = Buffer.from(chunk.subarray(0, headBytes - kept));
        head.push(part);
        kept += part.length;
      }
      yield chunk;
    }
  }
  const staged = await ctx.stage({ stream: noting() });
  return { staged, head: Buffer.concat(head, kept) };
}

/** The bytes of staged content, read whole: for what is small by nature (an XDM METADATA.XML). */
export const bytesOf = (staged: StagedFile): Buffer => staged.content ?? fs.readFileSync(staged.file!);

const stagedOutputs = new WeakMap<StepInput, StagedFile>();

/**
 * A step's output made of content it staged: for a file, `file` to read in chunks and a `content`
 * that loads it only when touched. Returned as it is (by this step or an unchanged later one), the
 * engine journals the staged file itself as the transformed content.
 */
export function stagedOutput(
  staged: StagedFile,
  fields: { contentType: string; meta: Record<string, MetaValue> },
): StepInput {
  if (staged.content) return { ...fields, content: staged.content };
  const path = staged.file!;
  const file: ContentFile = {
    path,
    size: staged.size,
    digest: staged.digest,
    chunks: () => fs.createReadStream(path, { highWaterMark: 1024 * 1024 }),
  };
  let loaded: Buffer | undefined;
  const out = { ...fields, file } as StepInput;
  Object.defineProperty(out, 'content', {
    enumerable: true,
    configurable: true,
    get: () => (loaded ??= fs.readFileSync(path)),
  });
  stagedOutputs.set(out, staged);
  return out;
}

/** The staged file a chain's output is, if it is one (`stagedOutput`) and no step replaced it. */
export const stagedOf = (out: StepInput): StagedFile | undefined => stagedOutputs.get(out);

/** A staged file an output names besides its content (a report's PDF, referenced by digest). */
export interface StagedPart {
  readonly staged: StagedFile & { readonly file: string };
  readonly contentType: string;
}

const outputParts = new WeakMap<StepInput, readonly StagedPart[]>();

/**
 * `out`, naming staged files that its content references by digest: the engine journals them with
 * the transformed content (kept and pruned with the message) instead of deleting them once the steps
 * ran, so that large bytes need not travel inside the content (a report's PDF as base64 in JSON).
 * Staged content held in memory (small, or without an engine) is no part: the content carries it.
 */
export function withParts(
  out: StepInput,
  parts: ReadonlyArray<{ staged: StagedFile; contentType: string }>,
): StepInput {
  const files = parts.filter((p): p is StagedPart => p.staged.file !== undefined);
  if (files.length > 0) outputParts.set(out, files);
  return out;
}

/** The staged files an output names besides its content (`withParts`), if no step replaced it. */
export const partsOf = (out: StepInput): readonly StagedPart[] => outputParts.get(out) ?? [];

/** A step failed on this content; `hint` tells the user what to change. Journaled as the message's error. */
export class StepError extends OncoError {
  constructor(
    code: string,
    message: string,
    options: { hint?: string; location?: string; cause?: unknown; protocol?: ProtocolStatus } = {},
  ) {
    super(code, { ...options, message });
  }

  /** The same failure as a step's: code, hint, location and protocol kept; `prefix` says which part. */
  static from(error: OncoError, prefix = ''): StepError {
    const { code, hint, location, protocol } = error;
    return new StepError(code, `${prefix}${error.message}`, { hint, location, protocol, cause: error });
  }
}

export interface StepSpec<O = Record<string, unknown>> {
  kind: 'step';
  type: string;
  summary: string;
  schema: JsonSchema | TObject;
  create(options: O): Step;
  /**
   * The URL of the module exporting this spec (its `import.meta.url`), for a step that depends on
   * its options and input alone and is worth a thread (CPU-bound): the engine may run it in its
   * step pool (channels/step-pool.ts). Its schema must be TypeBox; there, `StepContext.stage` holds
   * content in memory.
   */
  offThread?: string;
}
