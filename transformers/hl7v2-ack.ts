// HL7 v2 acknowledgements: building the ACK we answer with (MLLP, SFTP ACK files) and reading the
// ACK a peer answers us with (MLLP destination). One module so both sides agree on the rules.
//
// Mode: original (MSA-1 AA/AE/AR) when MSH-15 and MSH-16 are both empty, enhanced otherwise; in
// enhanced mode our ACK is the accept acknowledgment (CA/CE/CR) and MSH-15 says whether the sender
// wants it at all (AL always, NE never, ER only on error, SU only on success).
import {
  parse,
  get,
  escape,
  unescape,
  encodeSegment,
  parsePath,
  STANDARD_DELIMITERS,
  segmentsNamed,
} from './hl7v2.ts';
import type { Hl7Message, Hl7Delimiters } from './hl7v2.ts';
import { encodeText, resolveCharset, DEFAULT_CHARSET } from './hl7v2-charset.ts';
import type { Hl7Charset } from './hl7v2-charset.ts';
import { Hl7Error, HL7_ERROR_TEXT } from './hl7v2-error.ts';
import type { Hl7ErrorCode } from './hl7v2-error.ts';
import { codeOfRendering, definitionOf, renderError, type OncoError } from '../config/errors.ts';

export type AckCode = 'AA' | 'AE' | 'AR';
export type AnyAckCode = AckCode | 'CA' | 'CE' | 'CR';

export interface AckError {
  /** HL7 table 0357 code for ERR-3; default 207 (application internal error). */
  code?: Hl7ErrorCode;
  /** What was wrong and what to do, for ERR-8 (user message) and MSA-3. */
  text: string;
  /** Where: a path such as `PID-7` or `PID-3[2].4`, written to ERR-2 as an ERL. */
  location?: string;
  /** ERR-4 severity; default E (error). */
  severity?: 'E' | 'W' | 'I' | 'F';
  /** Our own error code (e.g. PAM_BAD_DATE) for ERR-5, so the sender's support can search it. */
  appCode?: string;
}

/**
 * The ERR of an ACK for one of our errors, or for its rendering as journaled: the rendering once
 * (ERR-8 and MSA-3), our code in ERR-5, the catalogue's table 0357 code in ERR-3, the place in ERR-2.
 */
export function ackErrorOf(error: OncoError | string): AckError {
  if (typeof error === 'string') {
    const code = codeOfRendering(error);
    const hl7 = code === undefined ? undefined : definitionOf(code)?.status.hl7;
    return { text: error, ...(hl7 ? { code: hl7 } : {}), ...(code ? { appCode: code } : {}) };
  }
  return {
    text: renderError(error),
    code: error.protocol.hl7 ?? '207',
    appCode: error.code,
    ...(error.location === undefined ? {} : { location: error.location }),
  };
}

export interface AckOptions {
  code: AckCode;
  error?: AckError;
  /** MSH-10 of the ACK; default `ACK` + the original's MSH-10 (stable across replays). */
  controlId?: string;
  /** MSH-7 of the ACK; default the current time. */
  now?: Date;
  /** Charset when the original declares none. */
  defaultCharset?: Hl7Charset;
}

export interface Ack {
  /** MSA-1 as sent: AA/AE/AR in original mode, CA/CE/CR in enhanced mode. */
  code: AnyAckCode;
  /** false when, in enhanced mode, MSH-15 says the sender does not want this accept ACK. */
  send: boolean;
  text: string;
  /** The ACK encoded in the sender's charset, segments ending with CR. */
  bytes: Buffer;
  charset: Hl7Charset;
}

/** What an ACK needs from the original: its MSH, as well as we could read it. */
interface OriginalHeader {
  delimiters: Hl7Delimiters;
  charset: Hl7Charset;
  /** Raw (escaped) MSH fields, indexed by HL7 number; empty when there was no readable MSH. */
  msh: string[];
}

/**
 * Build the ACK for a message. Works on malformed input: from a message that does not parse it
 * salvages what it can of the MSH line; with no MSH at all it answers AR with a minimal header.
 */
export function buildAck(original: Hl7Message | Uint8Array | string, options: AckOptions): Ack {
  const header = readHeader(original, options.defaultCharset ?? DEFAULT_CHARSET);
  const noHeader = header.msh.length === 0;
  const requested: AckCode = noHeader ? 'AR' : options.code;
  const error = noHeader
    ? (options.error ?? { code: '100', text: 'no MSH segment: the content is not an HL7 v2 message' })
    : options.error;
  const f = (n: number): string => header.msh[n] ?? '';
  const enhanced = f(15) !== '' || f(16) !== '';
  const code: AnyAckCode = enhanced ? (`C${requested[1]}` as AnyAckCode) : requested;
  const d = header.delimiters;
  const controlId =
    options.controlId === undefined ? `ACK${unescape(f(10), d)}`.slice(0, 20) : options.controlId;
  const trigger = unescape(f(9).split(d.component)[1] ?? '', d);
  const msh = [
    'MSH',
    d.field,
    encodingCharacters(d),
    f(5),
    f(6),
    f(3),
    f(4),
    timestamp(options.now ?? new Date()),
    '',
    ['ACK', escape(trigger, d), 'ACK'].join(d.component),
    escape(controlId, d),
    f(11) === '' ? 'P' : f(11),
    f(12) === '' ? '2.5' : f(12),
    '',
    '',
    '',
    '',
    f(17),
    f(18) === '' ? '' : header.charset,
  ];
  const segments = [msh, ['MSA', code, f(10), error === undefined ? '' : escape(error.text, d)]];
  if (error !== undefined) segments.push(errSegment(error, d));
  const text = segments
    .map(
      (fields) =>
        encodeSegment({ name: fields[0] as string, fields: trimTrailing(fields), end: '' }, d.field) + '\r',
    )
    .join('');
  return {
    code,
    send: wanted(f(15), requested),
    text,
    bytes: encodeLoose(text, header.charset),
    charset: header.charset,
  };
}

function readHeader(original: Hl7Message | Uint8Array | string, fallback: Hl7Charset): OriginalHeader {
  if (typeof original === 'object' && 'segments' in original) return fromMessage(original);
  try {
    return fromMessage(parse(original, { defaultCharset: fallback }));
  } catch {
    return salvage(original, fallback);
  }
}

function fromMessage(message: Hl7Message): OriginalHeader {
  return { delimiters: message.delimiters, charset: message.charset, msh: message.segments[0]?.fields ?? [] };
}

// The original did not parse (bad charset, bad segment further down…): read the first line as
// latin1, which cannot fail and leaves MSH's ASCII fields intact.
function salvage(original: Uint8Array | string, fallback: Hl7Charset): OriginalHeader {
  const text =
    typeof original === 'string'
      ? original
      : Buffer.from(original.buffer, original.byteOffset, original.length).toString('latin1');
  const line = text.replace(/^\ufeff|^\xef\xbb\xbf/, '').split(/[\r\n]/, 1)[0] ?? '';
  const chars = line.slice(4, 8);
  const usable =
    line.startsWith('MSH') &&
    line.length > 8 &&
    new Set(line[3] + chars).size === 5 &&
    !/[A-Za-z0-9\s]/.test(line[3] + chars);
  if (!usable) return { delimiters: { ...STANDARD_DELIMITERS }, charset: fallback, msh: [] };
  const delimiters: Hl7Delimiters = {
    field: line[3] as string,
    component: chars[0] as string,
    repetition: chars[1] as string,
    escape: chars[2] as string,
    subcomponent: chars[3] as string,
    truncation: undefined,
  };
  const msh = line.split(delimiters.field);
  msh.splice(1, 0, delimiters.field);
  return { delimiters, charset: answerCharset(msh[18]?.split(delimiters.repetition)[0], fallback), msh };
}

function answerCharset(declared: string | undefined, fallback: Hl7Charset): Hl7Charset {
  try {
    return resolveCharset(declared, fallback);
  } catch {
    return fallback;
  }
}

function encodingCharacters(d: Hl7Delimiters): string {
  return d.component + d.repetition + d.escape + d.subcomponent + (d.truncation ?? '');
}

function errSegment(error: AckError, d: Hl7Delimiters): string[] {
  const code = error.code ?? '207';
  return [
    'ERR',
    '',
    error.location === undefined ? '' : errorLocation(error.location, d),
    [code, HL7_ERROR_TEXT[code], 'HL70357'].join(d.component),
    error.severity ?? 'E',
    error.appCode === undefined ? '' : escape(error.appCode, d),
    '',
    '',
    escape(error.text, d),
  ];
}

// ERL: segment id ^ segment sequence ^ field ^ field repetition ^ component ^ sub-component.
function errorLocation(location: string, d: Hl7Delimiters): string {
  try {
    const p = parsePath(location);
    const parts = [
      p.segment,
      String(p.occurrence),
      p.field,
      p.field === undefined ? undefined : (p.repetition ?? 1),
      p.component,
      p.subcomponent,
    ];
    return trimTrailing(parts.map((x) => (x === undefined ? '' : String(x)))).join(d.component);
  } catch {
    return ''; // a location that is not a path (a byte offset, say) stays in the user message only
  }
}

function wanted(acceptAckType: string, code: AckCode): boolean {
  switch (acceptAckType.toUpperCase()) {
    case 'NE':
      return false;
    case 'ER':
      return code !== 'AA';
    case 'SU':
      return code === 'AA';
    default:
      return true;
  }
}

// YYYYMMDDHHMMSS+ZZZZ in local time, as French DPIs expect.
function timestamp(date: Date): string {
  const two = (n: number): string => String(n).padStart(2, '0');
  const offset = -date.getTimezoneOffset();
  const sign = offset < 0 ? '-' : '+';
  const abs = Math.abs(offset);
  return `${date.getFullYear()}${two(date.getMonth() + 1)}${two(date.getDate())}${two(date.getHours())}${two(date.getMinutes())}${two(date.getSeconds())}${sign}${two(Math.floor(abs / 60))}${two(abs % 60)}`;
}

function trimTrailing(fields: string[]): string[] {
  let n = fields.length;
  while (n > 1 && fields[n - 1] === '') n--;
  return fields.slice(0, n);
}

// An ACK must always go out: a character the sender's charset cannot carry (an accent in ASCII)
// loses its diacritic, then becomes '?', rather than failing the answer.
function encodeLoose(text: string, charset: Hl7Charset): Buffer {
  try {
    return encodeText(text, charset);
  } catch {
    const plain = text.normalize('NFD').replace(/[\u0300-\u036f]/g, '');
    const limit = charset === 'ASCII' ? 0x7f : 0xff;
    return encodeText(
      plain.replace(/[\s\S]/gu, (ch) =>
        (ch.codePointAt(0) ?? 0) <= limit || (charset === '8859/15' && '€ŠšŽžŒœŸ'.includes(ch)) ? ch : '?',
      ),
      charset,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Reading a peer's ACK

export interface AckErrorDetail {
  /** ERR-3.1 (table 0357), or the code part of ERR-1 for pre-2.5 peers. */
  code: string;
  severity: string;
  location: string;
  text: string;
}

export interface ParsedAck {
  code: AnyAckCode;
  /** MSA-2: the control id of the message being acknowledged. */
  controlId: string;
  /** What the peer said: MSA-3, else the first ERR-8, ERR-3.2 or ERR-1.4.2. '' when nothing. */
  text: string;
  /** MSH-10 of the ACK itself. */
  ackControlId: string;
  errors: AckErrorDetail[];
  /** true for AA and CA. */
  accepted: boolean;
}

const ACK_CODES = new Set<string>(['AA', 'AE', 'AR', 'CA', 'CE', 'CR']);

/** Read an ACK (bytes in its declared charset, or text). Throws Hl7Error HL7_BAD_ACK when it is not one. */
export function parseAck(input: Uint8Array | string | Hl7Message): ParsedAck {
  const message = typeof input === 'object' && 'segments' in input ? input : parse(input);
  if (segmentsNamed(message, 'MSA').length === 0) {
    throw new Hl7Error('HL7_BAD_ACK', 'the answer has no MSA segment: it is not an acknowledgement', {
      hint: 'the peer must answer with an ACK (MSH, MSA)',
      location: 'MSA',
      hl7Code: '100',
    });
  }
  const code = get(message, 'MSA-1').toUpperCase();
  if (!ACK_CODES.has(code)) {
    throw new Hl7Error('HL7_BAD_ACK', `MSA-1 is "${code}", not one of AA, AE, AR, CA, CE, CR`, {
      hint: 'the peer must answer with a valid acknowledgement code',
      location: 'MSA-1',
      hl7Code: '103',
    });
  }
  const errors = segmentsNamed(message, 'ERR').map((_, i) => errorDetail(message, i + 1));
  const text = get(message, 'MSA-3') || errors.map((e) => e.text).find((t) => t !== '') || '';
  return {
    code: code as AnyAckCode,
    controlId: get(message, 'MSA-2'),
    text,
    ackControlId: get(message, 'MSH-10'),
    errors,
    accepted: code === 'AA' || code === 'CA',
  };
}

function errorDetail(message: Hl7Message, n: number): AckErrorDetail {
  const at = (path: string): string => get(message, `ERR[${n}]-${path}`);
  const [segment, sequence, field] = [at('2.1'), at('2.2'), at('2.3')];
  const occurrence = sequence === '' || sequence === '1' ? '' : `[${sequence}]`;
  const location = segment === '' ? at('1.1') : `${segment}${occurrence}${field === '' ? '' : `-${field}`}`;
  return {
    code: at('3.1') || at('1.4.1'),
    severity: at('4'),
    location,
    text: at('8') || at('3.2') || at('1.4.2'),
  };
}
