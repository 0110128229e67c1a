// PDF, the file format, as the PDF renderer draws it (transformers/pdf-render.ts): pages of text in
// the standard Helvetica family (regular, bold, oblique) and thin rules, nothing else. Written here
// rather than with a general PDF library because the documents-out chain draws one PDF per RCP form
// (a region's year is 142,390 of them): with the fonts' metrics as constant tables, a text run is
// measured by table look-ups and a page is one deflated content stream, about ten times cheaper.
//
// The standard fonts are not embedded (every PDF reader has them) and speak WinAnsiEncoding: the
// caller gives text already reduced to it. Lines are broken at spaces (a word wider than the line
// at its characters), as word processors do; no kerning. Deterministic: the same calls give the
// same bytes, the file id derived from the content.
import { createHash } from 'node:crypto';
import { deflateSync } from 'node:zlib';
import { DEFLATE_LEVEL } from './zip-write.ts';

export type FontName = 'Helvetica' | 'Helvetica-Bold' | 'Helvetica-Oblique';

// Advance widths (1/1000 em) of WinAnsi codes 32-255, from the fonts' AFM files (Adobe Core 14).
// Helvetica-Oblique is Helvetica slanted: same widths.
const HELVETICA = [
  278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556, 556, 556,
  556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556, 1015, 667, 667, 722, 722, 667, 611, 778, 722, 278,
  500, 667, 556, 833, 722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469,
  556, 333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, 556, 556, 333, 500,
  278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584, 0, 556, 0, 222, 556, 333, 1000, 556, 556, 333, 1000,
  667, 333, 1000, 0, 611, 0, 0, 222, 222, 333, 333, 350, 556, 1000, 333, 1000, 500, 333, 944, 0, 500, 500,
  278, 333, 556, 556, 556, 556, 260, 556, 333, 737, 370, 556, 584, 333, 737, 333, 400, 584, 333, 333, 333,
  556, 537, 278, 333, 333, 365, 556, 834, 834, 834, 611, 667, 667, 667, 667, 667, 667, 1000, 722, 667, 667,
  667, 667, 278, 278, 278, 278, 722, 722, 778, 778, 778, 778, 778, 584, 778, 722, 722, 722, 722, 667, 667,
  611, 556, 556, 556, 556, 556, 556, 889, 500, 556, 556, 556, 556, 278, 278, 278, 278, 556, 556, 556, 556,
  556, 556, 556, 584, 611, 556, 556, 556, 556, 500, 556, 500,
];
const HELVETICA_BOLD = [
  278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556, 556, 556,
  556, 556, 556, 556, 556, 333, 333, 584, 584, 584, 611, 975, 722, 722, 722, 722, 667, 611, 778, 722, 278,
  556, 722, 611, 833, 722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 333, 278, 333, 584,
  556, 333, 556, 611, 556, 611, 556, 333, 611, 611, 278, 278, 556, 278, 889, 611, 611, 611, 611, 389, 556,
  333, 611, 556, 778, 556, 556, 500, 389, 280, 389, 584, 0, 556, 0, 278, 556, 500, 1000, 556, 556, 333, 1000,
  667, 333, 1000, 0, 611, 0, 0, 278, 278, 500, 500, 350, 556, 1000, 333, 1000, 556, 333, 944, 0, 500, 556,
  278, 333, 556, 556, 556, 556, 280, 556, 333, 737, 370, 556, 584, 333, 737, 333, 400, 584, 333, 333, 333,
  611, 556, 278, 333, 333, 365, 556, 834, 834, 834, 611, 722, 722, 722, 722, 722, 722, 1000, 722, 667, 667,
  667, 667, 278, 278, 278, 278, 722, 722, 778, 778, 778, 778, 778, 584, 778, 722, 722, 722, 722, 667, 667,
  611, 556, 556, 556, 556, 556, 556, 889, 556, 556, 556, 556, 556, 278, 278, 278, 278, 611, 611, 611, 611,
  611, 611, 611, 584, 611, 611, 611, 611, 611, 556, 611, 556,
];

interface Metrics {
  widths: readonly number[];
  /** Line height over font size, line gap included: (ascender - descender + gap) / 1000. */
  lineHeight: number;
  ascender: number;
  resource: string;
}

const FONTS: Readonly<Record<FontName, Metrics>> = {
  Helvetica: { widths: HELVETICA, lineHeight: (718 + 207 + 231) / 1000, ascender: 0.718, resource: 'F1' },
  'Helvetica-Bold': {
    widths: HELVETICA_BOLD,
    lineHeight: (718 + 207 + 265) / 1000,
    ascender: 0.718,
    resource: 'F2',
  },
  'Helvetica-Oblique': {
    widths: HELVETICA,
    lineHeight: (718 + 207 + 231) / 1000,
    ascender: 0.718,
    resource: 'F3',
  },
};

// WinAnsiEncoding 0x80-0x9F; the rest of the byte range is Latin-1.
const WIN_ANSI_HIGH = '€\u0081‚ƒ„…†‡ˆ‰Š‹Œ\u008dŽ\u008f\u0090‘’“”•–—˜™š›œ\u009džŸ';
const WIN_ANSI_CODE = new Map([...WIN_ANSI_HIGH].map((ch, i) => [ch.charCodeAt(0), 0x80 + i]));

/** The WinAnsi code of a character (the caller has reduced its text to WinAnsi; anything else is `?`). */
function winAnsiCode(c: number): number {
  if ((c >= 0x20 && c <= 0x7e) || (c >= 0xa0 && c <= 0xff)) return c;
  return WIN_ANSI_CODE.get(c) ?? 0x3f;
}

const A4 = { width: 595.28, height: 841.89 };

interface Page {
  readonly width: number;
  readonly height: number;
  margins: { top: number; bottom: number };
  /** Its content stream, one operation a line. */
  ops: string[];
  /**
   * The fill colour and font its stream last set: graphics state that outlives BT … ET, so a line
   * in the same colour and font as the one before it sets neither again (most lines of a page).
   */
  fill: string;
  font: string;
}

export interface TextOptions {
  width?: number;
  align?: 'left' | 'center';
  /** false: one line, never broken, never moved to another page. */
  lineBreak?: boolean;
}

export interface CanvasOptions {
  margin: number;
  info: { Title: string; Producer: string; Creator: string; CreationDate: Date };
  lang: string;
}

const colours = new Map<string, string>();

/** `#555555` or `black` as PDF colour operands (a renderer uses a handful: each is worked out once). */
function rgb(color: string): string {
  let operands = colours.get(color);
  if (operands === undefined) {
    operands = colourOperands(color);
    colours.set(color, operands);
  }
  return operands;
}

function colourOperands(color: string): string {
  if (color === 'black') return '0 0 0';
  const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(color);
  if (m === null) return '0 0 0';
  return m
    .slice(1)
    .map((h) => num(parseInt(h, 16) / 255))
    .join(' ');
}

/** A number as PDF writes it: at most 4 decimals, no exponent. */
function num(n: number): string {
  return String(Math.round(n * 10000) / 10000);
}

/**
 * A PDF literal string of WinAnsi text, as the latin1 characters of its bytes: half the size of the
 * hex form, for the content stream to build and deflate. Printable ASCII without `\\ ( )` (most
 * lines) is written as it is.
 */
function literalBytes(text: string): string {
  if (PLAIN.test(text)) return `(${text})`;
  let out = '(';
  for (let i = 0; i < text.length; i++) {
    const code = winAnsiCode(text.charCodeAt(i));
    out +=
      code === 0x5c || code === 0x28 || code === 0x29
        ? `\\${String.fromCharCode(code)}`
        : String.fromCharCode(code);
  }
  return `${out})`;
}

const PLAIN = /^[\x20-\x27\x2a-\x5b\x5d-\x7e]*$/;

/** A PDF literal string of Latin-1 text (the info dictionary). */
function literal(text: string): string {
  return `(${text.replace(/[\\()]/g, (c) => `\\${c}`).replace(/[^\x20-\x7e]/g, (c) => `\\${(winAnsiCode(c.charCodeAt(0)) & 0xff).toString(8).padStart(3, '0')}`)})`;
}

function pdfDate(d: Date): string {
  return `D:${d.toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`;
}

/**
 * A document being drawn, page after page, with the face of the subset of pdfkit the renderer
 * used: a current position (`y`), font and size, fill and stroke colours, text that wraps and
 * flows onto a new page, rules; pages stay open until `bytes()`, for footers.
 */
export class PdfCanvas {
  x: number;
  y: number;
  private readonly pages: Page[] = [];
  private current = 0;
  private fontName: FontName = 'Helvetica';
  private size = 12;
  private fill = '0 0 0';
  private strokeRgb = '0 0 0';
  private width = 1;
  private path: string[] = [];

  constructor(private readonly o: CanvasOptions) {
    this.x = o.margin;
    this.y = o.margin;
    this.addPage();
  }

  /** The page being drawn: a new object for each page, so that a caller sees text flow onto the next. */
  get page(): Page {
    return this.pages[this.current] as Page;
  }

  addPage(): this {
    const { margin } = this.o;
    this.pages.push({
      width: A4.width,
      height: A4.height,
      margins: { top: margin, bottom: margin },
      ops: [],
      // A new stream starts from PDF's defaults (black), with no font set yet.
      fill: '0 0 0',
      font: '',
    });
    this.current = this.pages.length - 1;
    this.x = this.o.margin;
    this.y = this.o.margin;
    return this;
  }

  font(name: FontName): this {
    this.fontName = name;
    return this;
  }

  fontSize(size: number): this {
    this.size = size;
    return this;
  }

  fillColor(color: string): this {
    this.fill = rgb(color);
    return this;
  }

  strokeColor(color: string): this {
    this.strokeRgb = rgb(color);
    return this;
  }

  lineWidth(width: number): this {
    this.width = width;
    return this;
  }

  moveTo(x: number, y: number): this {
    this.path.push(`${num(x)} ${num(this.page.height - y)} m`);
    return this;
  }

  lineTo(x: number, y: number): this {
    this.path.push(`${num(x)} ${num(this.page.height - y)} l`);
    return this;
  }

  stroke(): this {
    this.emit(`${this.strokeRgb} RG ${num(this.width)} w ${this.path.join(' ')} S`);
    this.path = [];
    return this;
  }

  /** Moves down by `lines` lines of the current font and size. */
  moveDown(lines = 1): this {
    this.y += this.lineHeight() * lines;
    return this;
  }

  lineHeight(): number {
    return FONTS[this.fontName].lineHeight * this.size;
  }

  widthOfString(text: string): number {
    const { widths } = FONTS[this.fontName];
    let w = 0;
    for (let i = 0; i < text.length; i++) w += widths[winAnsiCode(text.charCodeAt(i)) - 32] ?? 0;
    return (w * this.size) / 1000;
  }

  heightOfString(text: string, options: { width: number }): number {
    return this.wrap(text, options.width).length * this.lineHeight();
  }

  /** Draws `text` from (x, y) (the current position when not given), wrapped to `width`. */
  text(text: string, x?: number, y?: number, options: TextOptions = {}): this {
    if (x !== undefined) this.x = x;
    if (y !== undefined) this.y = y;
    const width = options.width ?? this.page.width - this.o.margin - this.x;
    const lines = options.lineBreak === false ? [text] : this.wrap(text, width);
    const height = this.lineHeight();
    for (const line of lines) {
      if (options.lineBreak !== false && this.y + height > this.page.height - this.page.margins.bottom) {
        const x0 = this.x;
        this.addPage();
        this.x = x0;
      }
      const dx = options.align === 'center' ? (width - this.widthOfString(line)) / 2 : 0;
      this.show(line, this.x + dx, this.y);
      this.y += height;
    }
    return this;
  }

  /** The lines of `text` within `width`: broken at spaces, a word wider than the line at its characters. */
  private wrap(text: string, width: number): string[] {
    const lines: string[] = [];
    const space = this.widthOfString(' ');
    let line = '';
    let lineWidth = 0;
    for (const word of text.split(' ')) {
      const w = this.widthOfString(word);
      if (line !== '' && lineWidth + space + w <= width) {
        line += ` ${word}`;
        lineWidth += space + w;
        continue;
      }
      if (line !== '') lines.push(line);
      if (w <= width) {
        line = word;
        lineWidth = w;
        continue;
      }
      // A word longer than the line: as many characters as fit, line after line.
      let piece = '';
      for (const ch of word) {
        if (piece !== '' && this.widthOfString(piece + ch) > width) {
          lines.push(piece);
          piece = '';
        }
        piece += ch;
      }
      line = piece;
      lineWidth = this.widthOfString(piece);
    }
    if (line !== '' || lines.length === 0) lines.push(line);
    return lines;
  }

  private show(line: string, x: number, top: number): void {
    const page = this.page;
    const metrics = FONTS[this.fontName];
    const baseline = page.height - top - metrics.ascender * this.size;
    let op = 'BT ';
    if (page.fill !== this.fill) {
      op += `${this.fill} rg `;
      page.fill = this.fill;
    }
    const font = `/${metrics.resource} ${num(this.size)} Tf `;
    if (page.font !== font) {
      op += font;
      page.font = font;
    }
    this.emit(`${op}1 0 0 1 ${num(x)} ${num(baseline)} Tm ${literalBytes(line)} Tj ET`);
  }

  private emit(op: string): void {
    this.page.ops.push(op);
  }

  bufferedPageRange(): { start: number; count: number } {
    return { start: 0, count: this.pages.length };
  }

  switchToPage(i: number): this {
    this.current = i;
    return this;
  }

  /**
   * The whole file, written as one latin1 string (a character a byte, so lengths are offsets) and
   * encoded once, rather than a buffer per object and per piece.
   */
  bytes(): Buffer {
    const objects: string[] = [];
    const add = (body: string): number => objects.push(body);
    const catalog = add('');
    const pagesRef = add('');
    const fonts = (Object.keys(FONTS) as FontName[]).map(
      (name) =>
        [
          FONTS[name].resource,
          add(`<< /Type /Font /Subtype /Type1 /BaseFont /${name} /Encoding /WinAnsiEncoding >>`),
        ] as const,
    );
    const resources = `<< /ProcSet [/PDF /Text] /Font << ${fonts.map(([r, n]) => `/${r} ${n} 0 R`).join(' ')} >> >>`;
    const kids: number[] = [];
    for (const { ops } of this.pages) {
      const stream = deflateSync(Buffer.from(ops.join('\n'), 'latin1'), { level: DEFLATE_LEVEL });
      const content = add(
        `<< /Length ${stream.length} /Filter /FlateDecode >>\nstream\n${stream.toString('latin1')}\nendstream`,
      );
      kids.push(
        add(
          `<< /Type /Page /Parent ${pagesRef} 0 R /MediaBox [0 0 ${A4.width} ${A4.height}] /Contents ${content} 0 R /Resources ${resources} >>`,
        ),
      );
    }
    objects[catalog - 1] = `<< /Type /Catalog /Pages ${pagesRef} 0 R /Lang ${literal(this.o.lang)} >>`;
    objects[pagesRef - 1] =
      `<< /Type /Pages /Count ${kids.length} /Kids [${kids.map((k) => `${k} 0 R`).join(' ')}] >>`;
    const { info } = this.o;
    const infoRef = add(
      `<< /Title ${literal(info.Title)} /Producer ${literal(info.Producer)} /Creator ${literal(info.Creator)} /CreationDate ${literal(pdfDate(info.CreationDate))} >>`,
    );
    let file = '%PDF-1.4\n%\xff\xff\xff\xff\n';
    const offsets: number[] = [];
    objects.forEach((body, i) => {
      offsets.push(file.length);
      file += `${i + 1} 0 obj\n${body}\nendobj\n`;
    });
    const body = Buffer.from(file, 'latin1');
    const id = createHash('md5').update(body).digest('hex');
    const xref = [
      'xref',
      `0 ${objects.length + 1}`,
      '0000000000 65535 f ',
      ...offsets.map((o) => `${String(o).padStart(10, '0')} 00000 n `),
      'trailer',
      `<< /Size ${objects.length + 1} /Root ${catalog} 0 R /Info ${infoRef} 0 R /ID [<${id}> <${id}>] >>`,
      'startxref',
      String(body.length),
      '%%EOF',
      '',
    ].join('\n');
    return Buffer.concat([body, Buffer.from(xref, 'latin1')]);
  }
}
