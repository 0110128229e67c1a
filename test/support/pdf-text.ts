// The text of a PDF drawn with the standard fonts, read back from its content streams the way a
// viewer does: each stream inflated (FlateDecode), each text-showing operator (Tj, TJ) decoded from
// WinAnsiEncoding, one line per operator. Enough for the PDFs pdfkit writes with Helvetica; poppler's
// pdftotext is not on every machine this suite runs on.
import { inflateSync } from 'node:zlib';

// WinAnsiEncoding 0x80-0x9F (the rest of the byte range is Latin-1).
const WIN_ANSI_HIGH = '€\u0081‚ƒ„…†‡ˆ‰Š‹Œ\u008dŽ\u008f\u0090‘’“”•–—˜™š›œ\u009džŸ';

/** A byte of a string shown in a WinAnsiEncoding font, as the character it draws. */
const winAnsi = (byte: number): string =>
  byte >= 0x80 && byte <= 0x9f ? WIN_ANSI_HIGH[byte - 0x80]! : String.fromCharCode(byte);

function decodeHex(hex: string): string {
  let out = '';
  for (let i = 0; i + 1 < hex.length; i += 2) out += winAnsi(parseInt(hex.slice(i, i + 2), 16));
  return out;
}

/** A literal string's bytes (escapes undone) read through the font's encoding, as hex strings are. */
function decodeLiteral(literal: string): string {
  const bytes = literal.replace(/\\([nrtbf()\\]|[0-7]{1,3})/g, (_m, e: string) => {
    if (/^[0-7]+$/.test(e)) return String.fromCharCode(parseInt(e, 8));
    return ({ n: '\n', r: '\r', t: '\t', b: '\b', f: '\f' } as Record<string, string>)[e] ?? e;
  });
  return [...bytes].map((c) => winAnsi(c.charCodeAt(0))).join('');
}

/** Every content stream of the file, inflated when it is compressed. */
export function pdfStreams(pdf: Buffer): string[] {
  const streams: string[] = [];
  const source = pdf.toString('latin1');
  const re = /<<(.*?)>>\s*stream\r?\n/gs;
  for (let m = re.exec(source); m !== null; m = re.exec(source)) {
    const start = m.index + m[0].length;
    const end = source.indexOf('endstream', start);
    const raw = pdf.subarray(start, end);
    streams.push((/\/FlateDecode/.test(m[1] ?? '') ? inflateSync(raw) : raw).toString('latin1'));
  }
  return streams;
}

/** The text shown, one line per text operator, in drawing order. */
export function pdfText(pdf: Buffer): string[] {
  const lines: string[] = [];
  for (const stream of pdfStreams(pdf)) {
    const ops = /\[((?:[^\]\\]|\\.)*)\]\s*TJ|(<[0-9a-fA-F]*>|\((?:[^)\\]|\\.)*\))\s*Tj/g;
    for (let m = ops.exec(stream); m !== null; m = ops.exec(stream)) {
      const parts = m[1] ?? m[2] ?? '';
      let line = '';
      for (const piece of parts.matchAll(/<([0-9a-fA-F]*)>|\(((?:[^)\\]|\\.)*)\)/g)) {
        line += piece[1] !== undefined ? decodeHex(piece[1]) : decodeLiteral(piece[2] ?? '');
      }
      lines.push(line);
    }
  }
  return lines;
}
