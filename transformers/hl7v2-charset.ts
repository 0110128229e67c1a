// MSH-18 character sets. The declared charset is read from the raw bytes (MSH is ASCII in every
// charset we accept) and the whole message is then decoded with it, strictly: bytes that are not
// valid in the declared charset are refused, never replaced by U+FFFD or '?'.
import iconv from 'iconv-lite';
import Type from 'typebox';
import { Hl7Error } from './hl7v2-error.ts';
import { Default } from './contract.ts';

/** MSH-18 values understood, by their HL7 table 0211 names. */
export const CHARSETS = ['UNICODE UTF-8', '8859/1', '8859/15', 'ASCII'] as const;
export type Hl7Charset = (typeof CHARSETS)[number];

export const DEFAULT_CHARSET: Hl7Charset = 'UNICODE UTF-8';

/** The option of every HL7 component (MLLP listener, hl7v2-validate, pam-fr) for an empty MSH-18. */
export const defaultCharsetOption = Default(
  Type.Enum(CHARSETS, { description: 'charset assumed when MSH-18 is empty' }),
  DEFAULT_CHARSET,
);

// Spellings met in the field for the same four charsets (table 0211 name first).
const ALIASES: ReadonlyMap<string, Hl7Charset> = new Map([
  ['UNICODE UTF-8', 'UNICODE UTF-8'],
  ['UTF-8', 'UNICODE UTF-8'],
  ['UTF8', 'UNICODE UTF-8'],
  ['8859/1', '8859/1'],
  ['ISO-8859-1', '8859/1'],
  ['ISO8859-1', '8859/1'],
  ['LATIN1', '8859/1'],
  ['8859/15', '8859/15'],
  ['ISO-8859-15', '8859/15'],
  ['ISO8859-15', '8859/15'],
  ['ASCII', 'ASCII'],
  ['US-ASCII', 'ASCII'],
]);

const SUPPORTED_HINT = `use one of ${CHARSETS.join(', ')} in MSH-18`;

/** The charset named by an MSH-18 value; an empty value means `fallback`. */
export function resolveCharset(
  declared: string | undefined,
  fallback: Hl7Charset = DEFAULT_CHARSET,
): Hl7Charset {
  const name = (declared ?? '').trim().toUpperCase();
  if (name === '') return fallback;
  const charset = ALIASES.get(name);
  if (charset === undefined) {
    throw new Hl7Error(
      'HL7_CHARSET_UNSUPPORTED',
      `MSH-18 declares the character set "${declared}", which is not supported`,
      {
        hint: SUPPORTED_HINT,
        location: 'MSH-18',
        hl7Code: '103',
      },
    );
  }
  return charset;
}

const CR = 0x0d;
const LF = 0x0a;

/**
 * The first repetition of MSH-18 as written in the raw bytes, or undefined when the message has no
 * MSH-18 (or no MSH at all: the parser reports that). A UTF-8 byte order mark before MSH is skipped.
 */
export function detectCharset(bytes: Uint8Array): string | undefined {
  const start = hasUtf8Bom(bytes) ? 3 : 0;
  if (bytes[start] !== 0x4d || bytes[start + 1] !== 0x53 || bytes[start + 2] !== 0x48) return undefined; // "MSH"
  const fieldSep = bytes[start + 3];
  const repSep = bytes[start + 5];
  if (fieldSep === undefined) return undefined;
  // MSH-1 is the separator itself: the byte at start+3 ends "field 1", so counting separators from
  // there, MSH-n begins after the (n-1)th separator.
  let field = 1;
  let fieldStart = -1;
  for (let i = start + 3; i < bytes.length; i++) {
    const b = bytes[i];
    if (b === CR || b === LF) break;
    if (b === fieldSep) {
      if (field === 18) return readAscii(bytes, fieldStart, i, repSep);
      field++;
      fieldStart = i + 1;
    }
  }
  if (field === 18) {
    let end = fieldStart;
    while (end < bytes.length && bytes[end] !== CR && bytes[end] !== LF) end++;
    return readAscii(bytes, fieldStart, end, repSep);
  }
  return undefined;
}

function readAscii(
  bytes: Uint8Array,
  start: number,
  end: number,
  repSep: number | undefined,
): string | undefined {
  let stop = start;
  while (stop < end && bytes[stop] !== repSep) stop++;
  const value = Buffer.from(bytes.buffer, bytes.byteOffset + start, stop - start).toString('latin1');
  return value === '' ? undefined : value;
}

function hasUtf8Bom(bytes: Uint8Array): boolean {
  return bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf;
}

export interface DecodeOptions {
  /** Charset assumed when MSH-18 is empty (configurable per channel). */
  defaultCharset?: Hl7Charset;
}

export interface DecodedMessage {
  text: string;
  charset: Hl7Charset;
  /** MSH-18 as written, if any. */
  declared: string | undefined;
}

/** Decode a message's bytes with the charset its MSH-18 declares (or the configured default). */
export function decodeMessage(bytes: Uint8Array, options: DecodeOptions = {}): DecodedMessage {
  const declared = detectCharset(bytes);
  const charset = resolveCharset(declared, options.defaultCharset ?? DEFAULT_CHARSET);
  const body = hasUtf8Bom(bytes) && charset === 'UNICODE UTF-8' ? bytes.subarray(3) : bytes;
  return { text: decodeBytes(body, charset, declared), charset, declared };
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Strict decoding: throws HL7_CHARSET_INVALID_BYTES naming the first offending byte. */
export function decodeBytes(bytes: Uint8Array, charset: Hl7Charset, declared?: string): string {
  switch (charset) {
    case 'UNICODE UTF-8':
      try {
        return utf8.decode(bytes);
      } catch (cause) {
        throw invalidBytes(bytes, charset, firstInvalidUtf8(bytes), declared, cause);
      }
    case 'ASCII': {
      const bad = bytes.findIndex((b) => b > 0x7f);
      if (bad >= 0) throw invalidBytes(bytes, charset, bad, declared);
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1');
    }
    case '8859/1':
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1');
    case '8859/15':
      return iconv.decode(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length), 'iso-8859-15');
  }
}

function invalidBytes(
  bytes: Uint8Array,
  charset: Hl7Charset,
  offset: number,
  declared: string | undefined,
  cause?: unknown,
): Hl7Error {
  const around = Buffer.from(bytes.subarray(Math.max(0, offset - 2), offset + 3)).toString('hex');
  const source =
    declared === undefined
      ? `the default character set ${charset} (MSH-18 is empty)`
      : `MSH-18 "${declared}"`;
  return new Hl7Error(
    'HL7_CHARSET_INVALID_BYTES',
    `byte ${offset} (0x${(bytes[offset] ?? 0).toString(16)}, near ${around}) is not valid ${charset}, the charset given by ${source}`,
    {
      hint: 'declare the charset the sender really uses in MSH-18 (8859/1 or 8859/15 for Latin-1 systems), or fix the sender so that it encodes in the declared charset',
      location: `byte ${offset}`,
      hl7Code: '102',
      cause,
    },
  );
}

// Only runs on the error path, to say where the bytes went wrong.
function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i] as number;
    const len =
      b < 0x80 ? 1 : b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
    if (len === 0 || i + len > bytes.length) return i;
    const chunk = bytes.subarray(i, i + len);
    try {
      utf8.decode(chunk);
    } catch {
      return i;
    }
    i += len;
  }
  return Math.max(0, bytes.length - 1);
}

/** Strict encoding: a character the charset cannot carry is an error, not a '?'. */
export function encodeText(text: string, charset: Hl7Charset): Buffer {
  if (charset === 'UNICODE UTF-8') return Buffer.from(text, 'utf8');
  const bytes = charset === '8859/15' ? iconv.encode(text, 'iso-8859-15') : Buffer.from(text, 'latin1');
  const at =
    charset === 'ASCII' ? firstNonAscii(text) : firstDifference(text, decodeBytesLenient(bytes, charset));
  if (at < text.length) {
    const codePoint = text.codePointAt(at) ?? 0;
    throw new Hl7Error(
      'HL7_CHARSET_UNENCODABLE',
      `character U+${codePoint.toString(16).toUpperCase().padStart(4, '0')} at position ${at} cannot be written in ${charset}`,
      {
        hint: 'answer in UNICODE UTF-8, or remove the character from the text',
        location: `character ${at}`,
        hl7Code: '207',
      },
    );
  }
  return bytes;
}

function decodeBytesLenient(bytes: Buffer, charset: Hl7Charset): string {
  return charset === '8859/15' ? iconv.decode(bytes, 'iso-8859-15') : bytes.toString('latin1');
}

function firstNonAscii(text: string): number {
  let i = 0;
  while (i < text.length && text.charCodeAt(i) <= 0x7f) i++;
  return i;
}

function firstDifference(a: string, b: string): number {
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  return i;
}
