// Reading YAML configuration: environment interpolation, then schema validation, and every problem
// reported with its file, line and path so that an admin can fix it without guessing.
import fs from 'node:fs';
import path from 'node:path';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { OncoError } from './errors.ts';
import YAML, { isMap, isSeq, isScalar, LineCounter, type Document, type Node } from 'yaml';

export interface ConfigProblem {
  file: string;
  line?: number;
  /** JSON pointer style path inside the file, e.g. `/destinations/0/retry/maxAttempts`. */
  path: string;
  message: string;
  hint?: string;
}

export class ConfigError extends OncoError {
  declare readonly code: 'CONFIG_INVALID';
  constructor(readonly problems: ConfigProblem[]) {
    // Each problem carries its own fix: a catalogue hint after them all would only repeat.
    super('CONFIG_INVALID', { message: problems.map(formatProblem).join('\n'), hint: '' });
  }
}

export function formatProblem(p: ConfigProblem): string {
  const where = p.line ? `${p.file}:${p.line}` : p.file;
  return `${where}: ${p.path || '/'}: ${p.message}${p.hint ? ` (fix: ${p.hint})` : ''}`;
}

export interface ConfigFile {
  file: string;
  data: unknown;
  /** Line of the node at `pointer` (or of its nearest existing parent). */
  lineOf(pointer: string): number | undefined;
}

const VAR = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\$/g;

/** `${NAME}` and `${NAME:-default}` in string scalars; `$$` writes a literal `$`. */
export function interpolate(text: string, env: NodeJS.ProcessEnv, onMissing: (name: string) => void): string {
  return text.replace(VAR, (whole, name: string | undefined, fallback: string | undefined) => {
    if (whole === '$$') return '$';
    const value = env[name!];
    if (value !== undefined && value !== '') return value;
    if (fallback !== undefined) return fallback;
    onMissing(name!);
    return '';
  });
}

export function readConfigFile(file: string, env: NodeJS.ProcessEnv, problems: ConfigProblem[]): ConfigFile {
  const relative = path.relative(process.cwd(), file);
  const rel = relative && !relative.startsWith('..') ? relative : file;
  const lineCounter = new LineCounter();
  let doc: Document;
  try {
    doc = YAML.parseDocument(fs.readFileSync(file, 'utf8'), { lineCounter, prettyErrors: false });
  } catch (error) {
    problems.push({ file: rel, path: '', message: `cannot read: ${(error as Error).message}` });
    return { file: rel, data: undefined, lineOf: () => undefined };
  }
  // One mistake (a bad indent, an unclosed quote) makes the parser report several errors and
  // the half-parsed tree fail the schema everywhere after it: only the first error is real.
  const first = doc.errors[0];
  if (first) {
    problems.push({
      file: rel,
      line: lineCounter.linePos(first.pos[0]).line,
      path: '',
      message: `YAML syntax: ${first.message.split('\n')[0]}`,
      hint: 'check indentation and quoting on this line and the lines next to it; the rest of the file is checked once it parses',
    });
    return { file: rel, data: undefined, lineOf: () => undefined };
  }
  const lineOf = (pointer: string): number | undefined => {
    const keys = pointer.split('/').slice(1).map(decodePointer);
    for (let n = keys.length; n >= 0; n--) {
      const node = doc.getIn(keys.slice(0, n), true) as Node | undefined;
      const offset = node && 'range' in node ? node.range?.[0] : undefined;
      if (offset !== undefined) return lineCounter.linePos(offset).line;
    }
    return undefined;
  };
  interpolateNode(doc.contents, env, (name, node) =>
    problems.push({
      file: rel,
      line: node.range ? lineCounter.linePos(node.range[0]).line : undefined,
      path: '',
      message: `environment variable ${name} is not set`,
      hint: `export ${name}=…, or write \${${name}:-default} in the file`,
    }),
  );
  return { file: rel, data: doc.toJS(), lineOf };
}

function interpolateNode(
  node: unknown,
  env: NodeJS.ProcessEnv,
  onMissing: (name: string, node: Node) => void,
): void {
  if (isScalar(node)) {
    if (typeof node.value === 'string' && node.value.includes('$')) {
      const replaced = interpolate(node.value, env, (name) => onMissing(name, node));
      node.value = replaced;
    }
  } else if (isMap(node)) {
    for (const pair of node.items) interpolateNode(pair.value, env, onMissing);
  } else if (isSeq(node)) {
    for (const item of node.items) interpolateNode(item, env, onMissing);
  }
}

const decodePointer = (s: string): string | number =>
  /^\d+$/.test(s) ? Number(s) : s.replace(/~1/g, '/').replace(/~0/g, '~');

/** One ajv for the whole configuration: coerces interpolated strings ("8080") into the schema's types and fills defaults. */
export const ajv = new Ajv({ allErrors: true, coerceTypes: true, useDefaults: true, strict: false });

export function checkAgainst(
  validate: ValidateFunction,
  data: unknown,
  file: ConfigFile,
  basePointer: string,
  problems: ConfigProblem[],
): boolean {
  if (validate(data)) return true;
  for (const e of validate.errors ?? []) problems.push(toProblem(e, file, basePointer));
  return false;
}

function toProblem(e: ErrorObject, file: ConfigFile, base: string): ConfigProblem {
  const pointer = base + e.instancePath;
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'additionalProperties':
      return {
        file: file.file,
        line: file.lineOf(`${pointer}/${String(p.additionalProperty)}`),
        path: `${pointer}/${String(p.additionalProperty)}`,
        message: 'unknown setting',
        hint: 'remove it or check its spelling against `onco-relay docs`',
      };
    case 'required':
      return {
        file: file.file,
        line: file.lineOf(pointer),
        path: pointer,
        message: `missing required setting "${String(p.missingProperty)}"`,
        hint: `add ${String(p.missingProperty)}: …`,
      };
    case 'enum':
      return {
        file: file.file,
        line: file.lineOf(pointer),
        path: pointer,
        message: e.message ?? 'value not allowed',
        hint: `use one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`,
      };
    default:
      return { file: file.file, line: file.lineOf(pointer), path: pointer, message: e.message ?? e.keyword };
  }
}
