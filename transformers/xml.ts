// The one XML reader of the product. Every XML document the engine reads (CDA reports, XDM
// metadata, configuration fragments) comes from outside, so it is read as hostile:
//
// - a DTD (`<!DOCTYPE`, `<!ENTITY`, …) is refused before parsing: no internal entity can expand
//   (billion laughs) and no external entity can be fetched (XXE). Clinical documents never need one.
// - entity processing of the parser is off; we decode only the five predefined entities and
//   character references ourselves, so nothing can grow while being read.
// - the size is checked before a single byte is parsed, and nesting depth is capped.
// - element and attribute names never become keys of ordinary objects (children are arrays,
//   attributes a Map), so `__proto__` or `constructor` in a document is just a name.
//
// fast-xml-parser is used for tokenising only (see the README: why not xml2js).
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { OncoError } from '../config/errors.ts';

export interface XmlLimits {
  /** Refuse documents larger than this many bytes (checked before parsing). Default 32 MiB. */
  maxBytes?: number;
  /** Refuse documents nested deeper than this many elements. Default 256. */
  maxDepth?: number;
}

export const XML_DEFAULT_LIMITS: Readonly<Required<XmlLimits>> = {
  maxBytes: 32 * 1024 * 1024,
  maxDepth: 256,
};

export type XmlErrorCode =
  | 'XML_TOO_LARGE'
  | 'XML_TOO_DEEP'
  | 'XML_DTD_REFUSED'
  | 'XML_MALFORMED'
  | 'XML_UNSUPPORTED_ENCODING'
  | 'XML_EMPTY';

export class XmlError extends OncoError {
  declare readonly code: XmlErrorCode;
  declare readonly hint: string;
  constructor(code: XmlErrorCode, message: string, hint: string, cause?: unknown) {
    super(code, { message, hint, cause });
  }
}

export interface XmlElement {
  /** Qualified name as written (`xsi:type`, `ClinicalDocument`). */
  name: string;
  /** Name without its namespace prefix. */
  local: string;
  attributes: ReadonlyMap<string, string>;
  /** Child elements and text, in document order. */
  children: readonly XmlChild[];
}

export type XmlChild = XmlElement | string;

// Every name the tokeniser sees is prefixed before it becomes a key, so that the tokeniser's own
// objects never receive a key like `__proto__`; we strip the mark when building our tree.
const MARK = '\u0001';

const parser = (maxDepth: number): XMLParser =>
  new XMLParser({
    preserveOrder: true,
    ignoreAttributes: false,
    attributeNamePrefix: '',
    allowBooleanAttributes: false,
    parseTagValue: false,
    parseAttributeValue: false,
    trimValues: false,
    processEntities: false,
    htmlEntities: false,
    ignoreDeclaration: true,
    ignorePiTags: true,
    removeNSPrefix: false,
    // The tokeniser does not count a self-closing leaf: its cap is one more, ours (toChild) is exact.
    maxNestedTags: maxDepth + 1,
    transformTagName: (name) => MARK + name,
    transformAttributeName: (name) => MARK + name,
  });

/**
 * Refuses a document of `size` bytes above the limit. `parseXml` checks it first; a caller holding
 * the document as a file checks it with the file's size, before loading a byte of it.
 */
export function checkXmlSize(size: number, limits: XmlLimits = {}): void {
  const { maxBytes } = { ...XML_DEFAULT_LIMITS, ...limits };
  if (size > maxBytes) {
    throw new XmlError(
      'XML_TOO_LARGE',
      `the XML document is ${size} bytes, above the limit of ${maxBytes}`,
      'send the document without attachments inlined, or raise maxBytes for this channel',
    );
  }
}

/** Parse a whole document; returns its root element. Throws XmlError. */
export function parseXml(input: Uint8Array | string, limits: XmlLimits = {}): XmlElement {
  const { maxDepth } = { ...XML_DEFAULT_LIMITS, ...limits };
  checkXmlSize(typeof input === 'string' ? Buffer.byteLength(input) : input.length, limits);
  const text = typeof input === 'string' ? input.replace(/^\uFEFF/, '') : decode(input);
  if (text.trim() === '')
    throw new XmlError('XML_EMPTY', 'the XML document is empty', 'send a whole document');
  refuseDtd(text);
  const valid = XMLValidator.validate(text, { allowBooleanAttributes: false });
  if (valid !== true) {
    throw new XmlError(
      'XML_MALFORMED',
      `the content is not well-formed XML: ${valid.err.msg} (line ${valid.err.line}, column ${valid.err.col})`,
      'check that the file is complete XML and was not cut or edited by hand',
    );
  }
  let nodes: unknown[];
  try {
    nodes = parser(maxDepth).parse(text) as unknown[];
  } catch (error) {
    if (error instanceof Error && /nested/i.test(error.message)) throw tooDeep(maxDepth);
    throw new XmlError(
      'XML_MALFORMED',
      `the content could not be read as XML: ${error instanceof Error ? error.message : String(error)}`,
      'send well-formed XML',
      error,
    );
  }
  const roots = nodes
    .map((n) => toChild(n, 1, maxDepth))
    .filter((c): c is XmlElement => typeof c !== 'string');
  if (roots.length !== 1) {
    throw new XmlError(
      'XML_MALFORMED',
      `an XML document has exactly one root element, this one has ${roots.length}`,
      'send one document per file',
    );
  }
  return roots[0] as XmlElement;
}

function tooDeep(maxDepth: number): XmlError {
  return new XmlError(
    'XML_TOO_DEEP',
    `the XML document nests elements deeper than ${maxDepth} levels`,
    'flatten the document, or raise maxDepth for this channel',
  );
}

function decode(bytes: Uint8Array): string {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  if (buffer[0] === 0xfe || buffer[0] === 0xff || (buffer[0] === 0 && buffer[1] === 0x3c)) {
    throw new XmlError(
      'XML_UNSUPPORTED_ENCODING',
      'the XML document is UTF-16',
      'send the document in UTF-8 (the encoding CI-SIS documents use)',
    );
  }
  const head = buffer.subarray(0, 200).toString('latin1');
  const declared = /^(?:\xef\xbb\xbf)?<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9._-]+)["']/.exec(head)?.[1];
  const encoding = declared?.toUpperCase() ?? 'UTF-8';
  if (encoding === 'UTF-8' || encoding === 'UTF8') return new TextDecoder('utf-8').decode(buffer);
  if (encoding === 'ISO-8859-1' || encoding === 'LATIN1' || encoding === 'ISO-8859-15') {
    return new TextDecoder(encoding === 'ISO-8859-15' ? 'iso-8859-15' : 'latin1').decode(buffer);
  }
  throw new XmlError(
    'XML_UNSUPPORTED_ENCODING',
    `the XML document declares the encoding "${declared}"`,
    'send the document in UTF-8 (or ISO-8859-1/15)',
  );
}

// Markup declarations may only appear in a DTD; any of them outside comments and CDATA sections
// means the document carries one. Scanning is linear and stops at the first one.
function refuseDtd(text: string): void {
  let at = text.indexOf('<!');
  while (at >= 0) {
    if (text.startsWith('<!--', at)) {
      const end = text.indexOf('-->', at + 4);
      if (end < 0) return;
      at = text.indexOf('<!', end + 3);
    } else if (text.startsWith('<![CDATA[', at)) {
      const end = text.indexOf(']]>', at + 9);
      if (end < 0) return;
      at = text.indexOf('<!', end + 3);
    } else {
      const keyword = /^<!([A-Za-z]+)/.exec(text.slice(at, at + 12))?.[1] ?? '';
      throw new XmlError(
        'XML_DTD_REFUSED',
        `the XML document carries a DTD declaration (<!${keyword}): DTDs and entities are refused`,
        'send the document without <!DOCTYPE …> and without custom entities; CDA documents need neither',
      );
    }
  }
}

function toChild(node: unknown, depth: number, maxDepth: number): XmlChild {
  const record = node as Record<string, unknown>;
  const key = Object.keys(record).find((k) => k !== ':@') as string;
  if (key === '#text') return decodeEntities(String(record[key]));
  if (depth > maxDepth) throw tooDeep(maxDepth);
  const name = unmark(key);
  const attributes = new Map<string, string>();
  const raw = record[':@'] as Record<string, unknown> | undefined;
  for (const [attr, value] of Object.entries(raw ?? {})) {
    attributes.set(unmark(attr), decodeEntities(String(value)));
  }
  const children = (record[key] as unknown[]).map((c) => toChild(c, depth + 1, maxDepth));
  return { name, local: localName(name), attributes, children };
}

// The tokeniser may apply its name transform twice (tags with attributes): strip every mark.
function unmark(name: string): string {
  let at = 0;
  while (name[at] === MARK) at++;
  return name.slice(at);
}

function localName(name: string): string {
  const colon = name.indexOf(':');
  return colon < 0 ? name : name.slice(colon + 1);
}

const PREDEFINED: Readonly<Record<string, string>> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

/** The five predefined entities and character references; anything else is left as written. */
function decodeEntities(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(/&(#x[0-9A-Fa-f]{1,6}|#[0-9]{1,7}|[A-Za-z]+);/g, (whole, body: string) => {
    if (body[0] !== '#') return PREDEFINED[body] ?? whole;
    const code = body[1] === 'x' ? parseInt(body.slice(2), 16) : parseInt(body.slice(1), 10);
    return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
  });
}

// ---------------------------------------------------------------------------------------------
// Reading: paths of local names, `/`-separated; `*` matches any element; a leading `//` searches
// every descendant. Namespaces are matched by local name: CDA uses one default namespace, and the
// sender's choice of prefix must not change what we read.

/** Elements at a path below `from`: `children(cda, 'recordTarget/patientRole/id')`. */
export function elements(from: XmlElement, path: string): XmlElement[] {
  if (path.startsWith('//')) {
    const [first, ...rest] = path.slice(2).split('/');
    const starts = descendants(from, first as string);
    return rest.length === 0 ? starts : starts.flatMap((e) => elements(e, rest.join('/')));
  }
  let current: XmlElement[] = [from];
  for (const step of path.split('/')) {
    if (step === '') continue;
    current = current.flatMap((e) => childElements(e).filter((c) => step === '*' || c.local === step));
  }
  return current;
}

/** The first element at a path, or undefined. */
export function element(from: XmlElement, path: string): XmlElement | undefined {
  return elements(from, path)[0];
}

export function childElements(from: XmlElement): XmlElement[] {
  return from.children.filter((c): c is XmlElement => typeof c !== 'string');
}

/** Every descendant (not `from` itself) with this local name, in document order. */
export function descendants(from: XmlElement, local: string): XmlElement[] {
  const found: XmlElement[] = [];
  // Iterative: depth is bounded by maxDepth, but a walk should not depend on the call stack anyway.
  const stack: XmlElement[] = childElements(from).reverse();
  while (stack.length > 0) {
    const e = stack.pop() as XmlElement;
    if (local === '*' || e.local === local) found.push(e);
    stack.push(...childElements(e).reverse());
  }
  return found;
}

/** An attribute by qualified name, or by local name when no attribute has that exact name. */
export function attr(from: XmlElement | undefined, name: string): string | undefined {
  if (from === undefined) return undefined;
  const exact = from.attributes.get(name);
  if (exact !== undefined) return exact;
  for (const [key, value] of from.attributes) if (localName(key) === name) return value;
  return undefined;
}

/** All the text below an element, whitespace runs folded to one space, trimmed. */
export function text(from: XmlElement | undefined): string {
  if (from === undefined) return '';
  const parts: string[] = [];
  const stack: XmlChild[] = [...from.children].reverse();
  while (stack.length > 0) {
    const c = stack.pop() as XmlChild;
    if (typeof c === 'string') parts.push(c);
    else {
      // An element boundary counts as a space: words of two paragraphs or table cells stay apart.
      parts.push(' ');
      stack.push(...[...c.children].reverse());
    }
  }
  return parts.join('').replace(/\s+/g, ' ').trim();
}
