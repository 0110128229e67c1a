// The one XML reader of the product. Every XML document the engine reads (CDA reports, XDM
// metadata, configuration fragments) comes from outside, so it is read as hostile:
//
// - a DTD (`<!DOCTYPE`, `<!ENTITY`, …) is refused before parsing: no internal entity can expand
//   (billion laughs) and no external entity can be fetched (XXE). Clinical documents never need one.
// - only the five predefined entities and character references are decoded, so nothing can grow
//   while being read.
// - the size is checked before a single byte is parsed, and nesting depth is capped.
// - element and attribute names never become keys of ordinary objects (children are arrays,
//   attributes a Map), so `__proto__` or `constructor` in a document is just a name.
//
// The reader is our own, one pass (a CDA is read by every packaging step: a general-purpose
// validator then parser made it the costliest step after the PDF).
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
  // End-of-line handling (XML 1.0 §2.11): a CR LF or a lone CR is read as LF.
  return new Reader(text.includes('\r') ? text.replace(/\r\n?/g, '\n') : text, maxDepth).document();
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

interface Open {
  name: string;
  attributes: Map<string, string>;
  children: XmlChild[];
}

// Names as XML 1.0 allows them in ASCII (a letter, `_` or `:` first; then also digits, `.`, `-`);
// beyond ASCII every character from U+00C0 (U+00B7 after the first) is taken, as most are allowed.
const isNameStart = (c: number): boolean =>
  (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === 0x5f || c === 0x3a || c >= 0xc0;
const isNameChar = (c: number): boolean =>
  isNameStart(c) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2e || c === 0xb7;
const isSpace = (c: number): boolean => c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d;

/**
 * One pass over the text, checking well-formedness as it builds the tree: names, attributes (quoted,
 * each once), every end tag matching its start tag, one root, nothing but comments, processing
 * instructions and white space around it. Iterative, so nesting costs no stack, and the depth is
 * counted as elements open. Names are only ever Map keys or properties of our own objects.
 */
class Reader {
  private at = 0;
  constructor(
    private readonly s: string,
    private readonly maxDepth: number,
  ) {}

  document(): XmlElement {
    const { s } = this;
    const stack: Open[] = [];
    let root: XmlElement | undefined;
    while (this.at < s.length) {
      const lt = s.indexOf('<', this.at);
      const end = lt < 0 ? s.length : lt;
      if (end > this.at) {
        const chunk = s.slice(this.at, end);
        const top = stack[stack.length - 1];
        if (top !== undefined) top.children.push(decodeEntities(chunk));
        else if (chunk.trim() !== '') this.fail('text outside the root element', this.at);
        this.at = end;
        continue;
      }
      if (s.startsWith('<!--', lt)) {
        this.at = this.past('-->', lt + 4, 'comment');
      } else if (s.startsWith('<![CDATA[', lt)) {
        const top = stack[stack.length - 1];
        if (top === undefined) this.fail('CDATA outside the root element', lt);
        const close = this.past(']]>', lt + 9, 'CDATA section');
        top.children.push(s.slice(lt + 9, close - 3));
        this.at = close;
      } else if (s.startsWith('<?', lt)) {
        this.at = this.past('?>', lt + 2, 'processing instruction');
      } else if (s[lt + 1] === '/') {
        this.at = lt + 2;
        const name = this.name();
        this.space();
        if (s[this.at] !== '>') this.fail(`">" expected to close </${name}`, this.at);
        this.at++;
        const open = stack.pop();
        if (open === undefined) this.fail(`end tag </${name}> without its start tag`, lt);
        if (open.name !== name) this.fail(`end tag </${name}> where </${open.name}> was expected`, lt);
        const done = close(open);
        const parent = stack[stack.length - 1];
        if (parent !== undefined) parent.children.push(done);
        else root = done;
      } else {
        if (root !== undefined && stack.length === 0)
          this.fail('a second root element: an XML document has exactly one', lt);
        this.at = lt + 1;
        const open: Open = { name: this.name(), attributes: new Map(), children: [] };
        const selfClosing = this.attributes(open);
        if (stack.length + 1 > this.maxDepth) throw tooDeep(this.maxDepth);
        if (selfClosing) {
          const done = close(open);
          const parent = stack[stack.length - 1];
          if (parent !== undefined) parent.children.push(done);
          else root = done;
        } else stack.push(open);
      }
    }
    const open = stack[stack.length - 1];
    if (open !== undefined) this.fail(`<${open.name}> is never closed`, s.length);
    if (root === undefined) this.fail('no root element', s.length);
    return root;
  }

  /** The attributes of a start tag, up to its end; true when it closes itself (`/>`). */
  private attributes(open: Open): boolean {
    const { s } = this;
    for (;;) {
      const before = this.at;
      this.space();
      const c = s[this.at];
      if (c === '>') {
        this.at++;
        return false;
      }
      if (c === '/') {
        if (s[this.at + 1] !== '>') this.fail('">" expected after "/"', this.at + 1);
        this.at += 2;
        return true;
      }
      if (c === undefined) this.fail(`<${open.name} is never ended`, this.at);
      if (this.at === before)
        this.fail(`white space expected before an attribute of <${open.name}>`, this.at);
      const name = this.name();
      this.space();
      if (s[this.at] !== '=') this.fail(`"=" expected after the attribute ${name}`, this.at);
      this.at++;
      this.space();
      const quote = s[this.at];
      if (quote !== '"' && quote !== "'") this.fail(`the value of ${name} must be quoted`, this.at);
      const endQuote = s.indexOf(quote, this.at + 1);
      if (endQuote < 0) this.fail(`the value of ${name} is never closed`, this.at);
      const raw = s.slice(this.at + 1, endQuote);
      if (raw.includes('<')) this.fail(`"<" in the value of ${name}`, this.at + 1 + raw.indexOf('<'));
      if (open.attributes.has(name)) this.fail(`the attribute ${name} is given twice`, this.at);
      open.attributes.set(name, decodeEntities(raw));
      this.at = endQuote + 1;
    }
  }

  private name(): string {
    const { s } = this;
    const start = this.at;
    if (!isNameStart(s.charCodeAt(start))) this.fail('a name expected', start);
    let end = start + 1;
    while (end < s.length && isNameChar(s.charCodeAt(end))) end++;
    this.at = end;
    return s.slice(start, end);
  }

  private space(): void {
    const { s } = this;
    while (this.at < s.length && isSpace(s.charCodeAt(this.at))) this.at++;
  }

  /** The position after the next `token` from `from`, or an error naming what is not closed. */
  private past(token: string, from: number, what: string): number {
    const end = this.s.indexOf(token, from);
    if (end < 0) this.fail(`a ${what} is never closed`, from);
    return end + token.length;
  }

  private fail(what: string, at: number): never {
    const before = this.s.slice(0, at);
    const line = before.split('\n').length;
    const column = at - before.lastIndexOf('\n');
    throw new XmlError(
      'XML_MALFORMED',
      `the content is not well-formed XML: ${what} (line ${line}, column ${column})`,
      'check that the file is complete XML and was not cut or edited by hand',
    );
  }
}

function close(open: Open): XmlElement {
  return {
    name: open.name,
    local: localName(open.name),
    attributes: open.attributes,
    children: open.children,
  };
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

/**
 * A path's steps, split once: the renderers and packagers ask the same few constant paths of every
 * document (a CDA is read by each recipient's packaging), so a split per call was a good part of
 * reading it. Bounded, should a caller build paths from data.
 */
const pathSteps = new Map<string, readonly string[]>();

function stepsOf(path: string): readonly string[] {
  let steps = pathSteps.get(path);
  if (steps === undefined) {
    steps = path.split('/').filter((step) => step !== '');
    if (pathSteps.size >= 1024) pathSteps.clear();
    pathSteps.set(path, steps);
  }
  return steps;
}

/** Elements at a path below `from`: `children(cda, 'recordTarget/patientRole/id')`. */
export function elements(from: XmlElement, path: string): XmlElement[] {
  if (path.startsWith('//')) {
    const [first, ...rest] = path.slice(2).split('/');
    const starts = descendants(from, first as string);
    return rest.length === 0 ? starts : starts.flatMap((e) => elements(e, rest.join('/')));
  }
  const found: XmlElement[] = [];
  collect(from, stepsOf(path), 0, found);
  return found;
}

/** Depth first along the steps, so that what is found comes in document order. */
function collect(from: XmlElement, steps: readonly string[], i: number, found: XmlElement[]): void {
  if (i === steps.length) {
    found.push(from);
    return;
  }
  const step = steps[i];
  for (const c of from.children) {
    if (typeof c !== 'string' && (step === '*' || c.local === step)) collect(c, steps, i + 1, found);
  }
}

/** The first element at a path, or undefined. */
export function element(from: XmlElement, path: string): XmlElement | undefined {
  if (path.startsWith('//')) return elements(from, path)[0];
  return first(from, stepsOf(path), 0);
}

function first(from: XmlElement, steps: readonly string[], i: number): XmlElement | undefined {
  if (i === steps.length) return from;
  const step = steps[i];
  for (const c of from.children) {
    if (typeof c === 'string' || (step !== '*' && c.local !== step)) continue;
    const found = first(c, steps, i + 1);
    if (found !== undefined) return found;
  }
  return undefined;
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
  // `prefix:name`, the prefix the sender chose (its first colon, as localName reads it).
  for (const [key, value] of from.attributes) {
    if (key.indexOf(':') === key.length - name.length - 1 && key.endsWith(name)) return value;
  }
  return undefined;
}

/** All the text below an element, whitespace runs folded to one space, trimmed. */
export function text(from: XmlElement | undefined): string {
  if (from === undefined) return '';
  const only = from.children.length === 1 ? from.children[0] : undefined;
  // A leaf with one text (most of what is read: a name, a code) needs no walk.
  const joined = typeof only === 'string' ? only : textParts(from);
  return joined.replace(/\s+/g, ' ').trim();
}

function textParts(from: XmlElement): string {
  let out = '';
  // Iterative (an element and where its children are at): a walk should not depend on the call stack.
  const stack: Array<{ children: readonly XmlChild[]; next: number }> = [
    { children: from.children, next: 0 },
  ];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.next === top.children.length) {
      stack.pop();
      continue;
    }
    const c = top.children[top.next++]!;
    if (typeof c === 'string') out += c;
    else {
      // An element boundary counts as a space: words of two paragraphs or table cells stay apart.
      out += ' ';
      stack.push({ children: c.children, next: 0 });
    }
  }
  return out;
}
