// HL7 v2 (ER7) parsing and encoding, shared by every connector and step that speaks HL7.
//
// Our own parser rather than node-hl7-client 3.2: that library's accessors return only the first
// component of a field (PID-3 gave "000003" for a two-repetition CX), it drops the trailing segment
// terminator (no byte-exact round trip), and it parsed ~5.6 k messages/s here.
//
// The model keeps every field as the raw, still-escaped text between field separators, plus each
// segment's terminator as found (CR, LF, CRLF, or a run of them): encode(parse(x)) === x for any
// message parse accepts. Repetitions, components and sub-components are split on demand and
// unescaped only when read, so that parsing stays cheap and nothing is lost by a read.
import Type, { type Static } from 'typebox';
import {
  decodeMessage,
  resolveCharset,
  DEFAULT_CHARSET,
  decodeBytes,
  defaultCharsetOption,
} from './hl7v2-charset.ts';
import type { Hl7Charset, DecodeOptions } from './hl7v2-charset.ts';
import { Hl7Error } from './hl7v2-error.ts';
import { readOptions, StepError, type OptionsOf } from './contract.ts';
import type { StepSpec, Step, StepInput } from './contract.ts';

export { Hl7Error } from './hl7v2-error.ts';
export type { Hl7Charset } from './hl7v2-charset.ts';

export interface Hl7Delimiters {
  field: string;
  component: string;
  repetition: string;
  escape: string;
  subcomponent: string;
  /** v2.7 truncation character (fifth character of MSH-2), when present. */
  truncation: string | undefined;
}

export const STANDARD_DELIMITERS: Readonly<Hl7Delimiters> = {
  field: '|',
  component: '^',
  repetition: '~',
  escape: '\\',
  subcomponent: '&',
  truncation: undefined,
};

export interface Hl7Segment {
  /** Segment id, e.g. `PID`. */
  name: string;
  /**
   * Raw (escaped) fields indexed by their HL7 number: `fields[3]` is PID-3. `fields[0]` is the name.
   * For MSH (and FHS/BHS) `fields[1]` is the field separator and `fields[2]` the encoding characters.
   */
  fields: string[];
  /** Terminator as found after this segment (`\r`, `\n`, `\r\n`, a run of them, or '' at the end). */
  end: string;
}

export interface Hl7Message {
  delimiters: Hl7Delimiters;
  /** Charset the message was decoded from (or declares, when parsed from a string). */
  charset: Hl7Charset;
  segments: Hl7Segment[];
}

/** A repetition of a field: components, each a list of sub-components, all unescaped. */
export type Hl7Repetition = string[][];

export type ParseOptions = DecodeOptions;

const SEGMENT_NAME = /^[A-Z][A-Z0-9]{2}$/;
const TERMINATORS = /[\r\n]+/g;
const ENVELOPE = new Set(['FHS', 'BHS', 'BTS', 'FTS']);

/**
 * Parse one message. Bytes are decoded with the charset MSH-18 declares (strictly); a string is
 * taken as already decoded. Throws Hl7Error on anything that is not a well-formed single message.
 */
export function parse(input: Uint8Array | string, options: ParseOptions = {}): Hl7Message {
  if (typeof input === 'string') {
    const message = parseText(stripBom(input), DEFAULT_CHARSET);
    message.charset = resolveCharset(firstRepetition(message, 18), options.defaultCharset ?? DEFAULT_CHARSET);
    return message;
  }
  // Garbage is "not an HL7 message", not a charset problem of its bytes: the start is checked first.
  const head = Buffer.from(input.buffer, input.byteOffset, Math.min(input.length, 64))
    .toString('latin1')
    .replace(/^\xef\xbb\xbf/, '');
  if (head.trim() !== '') requireStart(head, 'MSH');
  const decoded = decodeMessage(input, options);
  return parseText(decoded.text, decoded.charset);
}

function stripBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

function firstRepetition(message: Hl7Message, mshField: number): string {
  const raw = message.segments[0]?.fields[mshField] ?? '';
  const cut = raw.indexOf(message.delimiters.repetition);
  return cut < 0 ? raw : raw.slice(0, cut);
}

function parseText(text: string, charset: Hl7Charset): Hl7Message {
  if (text.trim() === '')
    throw new Hl7Error('HL7_EMPTY', 'the message is empty', {
      hint: 'send at least an MSH segment',
      hl7Code: '100',
    });
  const delimiters = readDelimiters(text, 'MSH');
  const segments: Hl7Segment[] = [];
  let start = 0;
  TERMINATORS.lastIndex = 0;
  for (;;) {
    const match = TERMINATORS.exec(text);
    const stop = match === null ? text.length : match.index;
    const end = match === null ? '' : match[0];
    segments.push(parseSegment(text.slice(start, stop), end, delimiters, segments.length + 1));
    if (match === null) break;
    start = stop + end.length;
    if (start >= text.length) break;
  }
  return { delimiters, charset, segments };
}

function parseSegment(line: string, end: string, delimiters: Hl7Delimiters, position: number): Hl7Segment {
  const name = line.slice(0, 3);
  if (!SEGMENT_NAME.test(name) || (line.length > 3 && line[3] !== delimiters.field)) {
    throw new Hl7Error(
      'HL7_BAD_SEGMENT',
      `segment ${position} does not start with a segment id followed by "${delimiters.field}": "${printable(line.slice(0, 12))}"`,
      {
        hint: 'each segment must start with its 3-character id (PID, OBX, Z..) and end with a carriage return; a line break inside a field must be escaped as \\X0D\\ or \\.br\\',
        location: `segment ${position}`,
        hl7Code: '100',
      },
    );
  }
  if (position > 1 && (name === 'MSH' || ENVELOPE.has(name))) {
    throw new Hl7Error(
      'HL7_MULTIPLE_MESSAGES',
      `segment ${position} is ${name}: this is a batch or several messages, not one message`,
      {
        hint: 'split the content with splitBatch() and parse each message',
        location: `segment ${position}`,
        hl7Code: '100',
      },
    );
  }
  const fields = line.split(delimiters.field);
  if (name === 'MSH') fields.splice(1, 0, delimiters.field);
  return { name, fields, end };
}

function printable(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '?');
}

function requireStart(text: string, expected: 'MSH' | 'FHS' | 'BHS'): void {
  if (text.startsWith(expected)) return;
  const start = text.split(/[\r\n]/, 1)[0] ?? '';
  throw notHl7(`it starts with "${printable(start.slice(0, 12))}", not ${expected}`, 'segment 1');
}

function notHl7(why: string, location: string): Hl7Error {
  return new Hl7Error('HL7_NO_MSH', `not an HL7 message: ${why}`, {
    hint: 'an HL7 v2 message starts with MSH|^~\\&|',
    location,
    hl7Code: '100',
  });
}

/** Delimiters of an MSH, FHS or BHS line (same layout: id, field separator, encoding characters). */
function readDelimiters(text: string, expected: 'MSH' | 'FHS' | 'BHS'): Hl7Delimiters {
  requireStart(text, expected);
  const field = text[3] ?? '';
  let stop = 4;
  while (stop < text.length && text[stop] !== field && text[stop] !== '\r' && text[stop] !== '\n') stop++;
  const chars = text.slice(4, stop);
  const all = field + chars;
  const valid =
    field !== '' &&
    (chars.length === 4 || chars.length === 5) &&
    new Set(all).size === all.length &&
    !/[A-Za-z0-9\s]/.test(all);
  if (!valid) {
    throw new Hl7Error(
      'HL7_BAD_DELIMITERS',
      `${expected}-1/${expected}-2 do not define valid delimiters: "${printable(text.slice(3, 9))}"`,
      {
        hint: `start with ${expected}|^~\\&| (field separator, then component, repetition, escape, sub-component characters, all different)`,
        location: `${expected}-2`,
        hl7Code: '102',
      },
    );
  }
  return {
    field,
    component: chars[0] as string,
    repetition: chars[1] as string,
    escape: chars[2] as string,
    subcomponent: chars[3] as string,
    truncation: chars[4],
  };
}

export interface EncodeOptions {
  /** Use this terminator after every segment instead of the ones found (e.g. `\r` for MLLP). */
  segmentSeparator?: string;
}

/** The message as text. Without options, exactly the text it was parsed from. */
export function encode(message: Hl7Message, options: EncodeOptions = {}): string {
  let out = '';
  const last = message.segments.length - 1;
  message.segments.forEach((segment, i) => {
    out += encodeSegment(segment, message.delimiters.field);
    out +=
      options.segmentSeparator === undefined
        ? segment.end
        : i < last || segment.end !== ''
          ? options.segmentSeparator
          : '';
  });
  return out;
}

export function encodeSegment(segment: Hl7Segment, fieldSeparator: string): string {
  const fields = segment.fields;
  if (segment.name === 'MSH' || segment.name === 'FHS' || segment.name === 'BHS') {
    return fields[0] + (fields[1] ?? fieldSeparator) + fields.slice(2).join(fieldSeparator);
  }
  return fields.join(fieldSeparator);
}

// ---------------------------------------------------------------------------------------------
// Escaping

/** Escape text for a field, with \F\ \S\ \T\ \R\ \E\ (\P\ in v2.7) and \X0D\ \X0A\ for line breaks. */
export function escape(text: string, delimiters: Hl7Delimiters = STANDARD_DELIMITERS): string {
  const { escape: e } = delimiters;
  const table: Record<string, string> = {
    [e]: `${e}E${e}`,
    [delimiters.field]: `${e}F${e}`,
    [delimiters.component]: `${e}S${e}`,
    [delimiters.subcomponent]: `${e}T${e}`,
    [delimiters.repetition]: `${e}R${e}`,
    '\r': `${e}X0D${e}`,
    '\n': `${e}X0A${e}`,
  };
  if (delimiters.truncation !== undefined) table[delimiters.truncation] = `${e}P${e}`;
  let out = '';
  for (const ch of text) out += table[ch] ?? ch;
  return out;
}

/**
 * Resolve escape sequences. \Xhh..\ bytes are decoded in the message's charset. Sequences that
 * carry formatting or charset switches (\H\ \N\ \.br\ \Cxxyy\ \Mxxyyzz\ \Zxx\) are kept verbatim:
 * they are not characters, and dropping them would lose what the sender wrote.
 */
export function unescape(
  text: string,
  delimiters: Hl7Delimiters = STANDARD_DELIMITERS,
  charset: Hl7Charset = DEFAULT_CHARSET,
): string {
  const e = delimiters.escape;
  let at = text.indexOf(e);
  if (at < 0) return text;
  let out = '';
  let from = 0;
  while (at >= 0) {
    const close = text.indexOf(e, at + 1);
    if (close < 0) break;
    const body = text.slice(at + 1, close);
    const value = escapeValue(body, delimiters, charset);
    out += text.slice(from, at) + (value ?? text.slice(at, close + 1));
    from = close + 1;
    at = text.indexOf(e, from);
  }
  return out + text.slice(from);
}

function escapeValue(body: string, d: Hl7Delimiters, charset: Hl7Charset): string | undefined {
  switch (body) {
    case 'F':
      return d.field;
    case 'S':
      return d.component;
    case 'T':
      return d.subcomponent;
    case 'R':
      return d.repetition;
    case 'E':
      return d.escape;
    case 'P':
      return d.truncation;
  }
  if (body[0] === 'X' && body.length >= 3 && body.length % 2 === 1 && /^X[0-9A-Fa-f]+$/.test(body)) {
    try {
      return decodeBytes(Buffer.from(body.slice(1), 'hex'), charset);
    } catch {
      return undefined;
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Reading by path

export interface Hl7Path {
  segment: string;
  /** 1-based occurrence of the segment. */
  occurrence: number;
  field: number | undefined;
  /** 1-based repetition; undefined when the path does not name one. */
  repetition: number | undefined;
  component: number | undefined;
  subcomponent: number | undefined;
}

const PATH = /^([A-Z][A-Z0-9]{2})(?:\[(\d+)\])?(?:[-.](\d+)(?:\[(\d+)\])?(?:\.(\d+)(?:\.(\d+))?)?)?$/;
const pathCache = new Map<string, Hl7Path>();

/** `PID-3[2].4.2` → PID, field 3, repetition 2, component 4, sub-component 2. `OBX[2]-5` is the second OBX. */
export function parsePath(path: string): Hl7Path {
  const cached = pathCache.get(path);
  if (cached !== undefined) return cached;
  const m = PATH.exec(path);
  const numbers = m?.slice(2).map((n) => (n === undefined ? undefined : Number(n))) ?? [];
  if (m === null || numbers.some((n) => n === 0)) {
    throw new Hl7Error('HL7_BAD_PATH', `"${path}" is not an HL7 path`, {
      hint: 'write SEG[-field[[repetition]][.component[.subcomponent]]], 1-based, e.g. PID-3[2].4.2 or OBX[2]-5',
      hl7Code: '207',
    });
  }
  const [occurrence, field, repetition, component, subcomponent] = numbers;
  const parsed: Hl7Path = {
    segment: m[1] as string,
    occurrence: occurrence ?? 1,
    field,
    repetition,
    component,
    subcomponent,
  };
  if (pathCache.size < 1000) pathCache.set(path, parsed);
  return parsed;
}

/** All segments with this id, in order. */
export function segmentsNamed(message: Hl7Message, name: string): Hl7Segment[] {
  return message.segments.filter((s) => s.name === name);
}

function findSegment(message: Hl7Message, name: string, occurrence: number): Hl7Segment | undefined {
  let seen = 0;
  for (const segment of message.segments) {
    if (segment.name === name && ++seen === occurrence) return segment;
  }
  return undefined;
}

/**
 * Raw (still escaped) text at a path: a whole segment, a whole field with all its repetitions, one
 * repetition, component or sub-component. '' when absent.
 */
export function getRaw(message: Hl7Message, path: string): string {
  const p = parsePath(path);
  const segment = findSegment(message, p.segment, p.occurrence);
  if (segment === undefined) return '';
  if (p.field === undefined) return encodeSegment(segment, message.delimiters.field);
  const field = segment.fields[p.field] ?? '';
  if (isEncodingField(segment, p.field)) return field;
  const d = message.delimiters;
  if (p.repetition === undefined && p.component === undefined) return field;
  const rep = nth(field, d.repetition, p.repetition ?? 1);
  if (p.component === undefined) return rep;
  const comp = nth(rep, d.component, p.component);
  return p.subcomponent === undefined ? comp : nth(comp, d.subcomponent, p.subcomponent);
}

/**
 * Unescaped value at a path. A path that stops at a field or component reads its first repetition,
 * component and sub-component (as HAPI's Terser does): `PID-5` is the family name. '' when absent.
 */
export function get(message: Hl7Message, path: string): string {
  const p = parsePath(path);
  const segment = findSegment(message, p.segment, p.occurrence);
  if (segment === undefined || p.field === undefined)
    return segment === undefined ? '' : encodeSegment(segment, message.delimiters.field);
  const field = segment.fields[p.field] ?? '';
  if (isEncodingField(segment, p.field)) return field;
  const d = message.delimiters;
  const rep = nth(field, d.repetition, p.repetition ?? 1);
  const comp = nth(rep, d.component, p.component ?? 1);
  return unescape(nth(comp, d.subcomponent, p.subcomponent ?? 1), d, message.charset);
}

function isEncodingField(segment: Hl7Segment, field: number): boolean {
  return field <= 2 && (segment.name === 'MSH' || segment.name === 'FHS' || segment.name === 'BHS');
}

function nth(text: string, separator: string, index: number): string {
  let start = 0;
  for (let i = 1; i < index; i++) {
    const at = text.indexOf(separator, start);
    if (at < 0) return '';
    start = at + 1;
  }
  const stop = text.indexOf(separator, start);
  return stop < 0 ? text.slice(start) : text.slice(start, stop);
}

/** Every repetition of a field, split into components and sub-components, unescaped. */
export function repetitions(message: Hl7Message, segment: Hl7Segment, field: number): Hl7Repetition[] {
  const raw = segment.fields[field] ?? '';
  if (raw === '') return [];
  const d = message.delimiters;
  // Plain loops: this runs for every identity field of every message (see the PAM FR mapping).
  const reps: Hl7Repetition[] = [];
  for (const rep of raw.split(d.repetition)) {
    const components: string[][] = [];
    for (const comp of rep.split(d.component)) {
      const subs = comp.split(d.subcomponent);
      for (let i = 0; i < subs.length; i++) subs[i] = unescape(subs[i] as string, d, message.charset);
      components.push(subs);
    }
    reps.push(components);
  }
  return reps;
}

/** Component `c`, sub-component `s` (1-based) of a repetition; '' when absent. */
export function component(rep: Hl7Repetition | undefined, c: number, s = 1): string {
  return rep?.[c - 1]?.[s - 1] ?? '';
}

// ---------------------------------------------------------------------------------------------
// Files: several messages, optionally in FHS/BHS … BTS/FTS batches

export interface Hl7Batch<T> {
  header: Hl7Segment | undefined;
  trailer: Hl7Segment | undefined;
  messages: T[];
}

export interface Hl7File<T> {
  header: Hl7Segment | undefined;
  trailer: Hl7Segment | undefined;
  batches: Hl7Batch<T>[];
  /** Every message of the file, in order (bytes or text as given, each with its own terminators). */
  messages: T[];
}

/**
 * Split a file into its messages without decoding them: each message keeps its own MSH-18, so a
 * file may mix charsets. Segment terminators may be CR, LF or CRLF; blank lines are ignored. BTS-1
 * and FTS-1 counts, when present, must match (a mismatch means a truncated or spliced file).
 */
export function splitBatch<T extends Uint8Array | string>(input: T): Hl7File<T> {
  // latin1 maps each byte to one character: offsets in `text` are offsets in the bytes.
  const text =
    typeof input === 'string'
      ? input
      : Buffer.from(input.buffer, input.byteOffset, input.length).toString('latin1');
  const slice = (from: number, to: number): T =>
    (typeof input === 'string' ? input.slice(from, to) : input.subarray(from, to)) as T;
  const bom =
    typeof input === 'string'
      ? input.charCodeAt(0) === 0xfeff
        ? 1
        : 0
      : text.startsWith('\xef\xbb\xbf')
        ? 3
        : 0;
  const file: Hl7File<T> = { header: undefined, trailer: undefined, batches: [], messages: [] };
  let batch: Hl7Batch<T> | undefined;
  let messageStart = -1;
  let lineNo = 0;
  const currentBatch = (): Hl7Batch<T> => {
    if (batch === undefined) {
      batch = { header: undefined, trailer: undefined, messages: [] };
      file.batches.push(batch);
    }
    return batch;
  };
  const closeMessage = (at: number): void => {
    if (messageStart < 0) return;
    const message = slice(messageStart, at);
    currentBatch().messages.push(message);
    file.messages.push(message);
    messageStart = -1;
  };
  let pos = bom;
  while (pos < text.length) {
    let stop = pos;
    while (stop < text.length && text[stop] !== '\r' && text[stop] !== '\n') stop++;
    let next = stop;
    while (next < text.length && (text[next] === '\r' || text[next] === '\n')) next++;
    const line = text.slice(pos, stop);
    lineNo++;
    const name = line.slice(0, 3);
    if (line.trim() === '') {
      // blank line between messages: ignored
    } else if (name === 'MSH') {
      closeMessage(pos);
      messageStart = pos;
    } else if (ENVELOPE.has(name)) {
      closeMessage(pos);
      batch = envelope(file, batch, name, line, lineNo);
    } else if (messageStart < 0 && file.header === undefined && file.batches.length === 0) {
      throw notHl7(
        `line ${lineNo} starts with "${printable(line.slice(0, 12))}", not MSH, FHS or BHS`,
        `line ${lineNo}`,
      );
    } else if (messageStart < 0) {
      throw new Hl7Error(
        'HL7_SEGMENT_OUTSIDE_MESSAGE',
        `line ${lineNo} ("${printable(line.slice(0, 12))}") is not inside a message`,
        {
          hint: 'every message must start with MSH; check that the file was not cut or concatenated by hand',
          location: `line ${lineNo}`,
          hl7Code: '100',
        },
      );
    }
    pos = next;
  }
  closeMessage(text.length);
  checkCounts(file);
  return file;
}

function envelope<T>(
  file: Hl7File<T>,
  batch: Hl7Batch<T> | undefined,
  name: string,
  line: string,
  lineNo: number,
): Hl7Batch<T> | undefined {
  const delimiters = name === 'FHS' || name === 'BHS' ? readDelimiters(line, name) : STANDARD_DELIMITERS;
  const fields = line.split(name === 'FHS' || name === 'BHS' ? delimiters.field : (line[3] ?? '|'));
  if (name === 'FHS' || name === 'BHS') fields.splice(1, 0, delimiters.field);
  const segment: Hl7Segment = { name, fields, end: '' };
  const misplaced = (): Hl7Error =>
    new Hl7Error('HL7_BAD_ENVELOPE', `line ${lineNo}: ${name} is out of place`, {
      hint: 'a batch file is FHS, then BHS, messages, BTS (repeated), then FTS',
      location: `line ${lineNo}`,
      hl7Code: '100',
    });
  switch (name) {
    case 'FHS':
      if (file.header !== undefined || file.messages.length > 0 || file.batches.length > 0) throw misplaced();
      file.header = segment;
      return undefined;
    case 'BHS': {
      if (file.trailer !== undefined) throw misplaced();
      const opened: Hl7Batch<T> = { header: segment, trailer: undefined, messages: [] };
      if (batch !== undefined && batch.header === undefined && batch.messages.length === 0)
        file.batches.pop();
      file.batches.push(opened);
      return opened;
    }
    case 'BTS':
      if (batch === undefined || batch.trailer !== undefined) throw misplaced();
      batch.trailer = segment;
      return undefined;
    default:
      if (file.trailer !== undefined) throw misplaced();
      file.trailer = segment;
      return undefined;
  }
}

function checkCounts<T>(file: Hl7File<T>): void {
  file.batches.forEach((batch, i) => {
    const declared = batch.trailer?.fields[1] ?? '';
    if (declared !== '' && Number(declared) !== batch.messages.length) {
      throw new Hl7Error(
        'HL7_BATCH_COUNT',
        `batch ${i + 1} announces ${declared} messages in BTS-1 but holds ${batch.messages.length}`,
        {
          hint: 'the file was probably truncated or edited: send it again whole',
          location: 'BTS-1',
          hl7Code: '100',
        },
      );
    }
  });
  const batches = file.trailer?.fields[1] ?? '';
  if (batches !== '' && Number(batches) !== file.batches.length) {
    throw new Hl7Error(
      'HL7_BATCH_COUNT',
      `FTS-1 announces ${batches} batches but the file holds ${file.batches.length}`,
      {
        hint: 'the file was probably truncated or edited: send it again whole',
        location: 'FTS-1',
        hl7Code: '100',
      },
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Step: hl7v2-validate

export interface Hl7HeaderSummary {
  messageType: string;
  controlId: string;
  sendingApp: string;
  sendingFacility: string;
}

/** What the journal and the dashboard show about a message: MSH-9, MSH-10, MSH-3, MSH-4 (namespace ids). */
export function summarize(message: Hl7Message): Hl7HeaderSummary {
  const type = [get(message, 'MSH-9.1'), get(message, 'MSH-9.2')].filter((x) => x !== '').join('^');
  return {
    messageType: type,
    controlId: get(message, 'MSH-10'),
    sendingApp: get(message, 'MSH-3'),
    sendingFacility: get(message, 'MSH-4'),
  };
}

const validateSchema = Type.Object({ defaultCharset: defaultCharsetOption });

export type ValidateOptions = OptionsOf<typeof validateSchema>;

/** Parse or throw the StepError an engine journals: same code, hint and location as the Hl7Error. */
export function parseForStep(input: StepInput, options: ParseOptions = {}): Hl7Message {
  try {
    return parse(input.content, options);
  } catch (error) {
    if (error instanceof Hl7Error) throw StepError.from(error);
    throw error;
  }
}

export const hl7v2ValidateStep: StepSpec<Static<typeof validateSchema>> = {
  kind: 'step',
  type: 'hl7v2-validate',
  summary:
    'Checks that the content is one well-formed HL7 v2 message in its declared charset and records MSH-9, MSH-10, MSH-3 and MSH-4.',
  schema: validateSchema,
  create(given): Step {
    const options: ValidateOptions = readOptions(validateSchema, given);
    return (input) => {
      const summary = summarize(parseForStep(input, options));
      return { ...input, meta: { ...input.meta, ...summary } };
    };
  },
};
