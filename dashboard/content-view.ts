// How a stage's bytes are shown: text when they are text (UTF-8, else Latin-1 as most HL7 v2 feeds
// are), HL7 v2 one segment a line, XML indented. Display only: never a transformation.
/* eslint-disable no-control-regex -- control bytes (binary content, MLLP framing) are what these patterns look for */

const CONTROL = /[\x00-\x08\x0e-\x1b\x7f]/;

/** The bytes as text, or null when they are binary (PDF, zip). */
export function contentText(buf: Buffer): string | null {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(buf);
  } catch {
    text = buf.toString('latin1');
  }
  return CONTROL.test(text.slice(0, 4096)) ? null : text;
}

export const isHl7 = (text: string): boolean => /^\s*(\x0b)?(MSH|FHS|BHS)\|/.test(text);

export const hl7Segments = (text: string): string[] =>
  text
    .replace(/[\x0b\x1c]/g, '')
    .split(/\r\n|\r|\n/)
    .filter((s) => s.length > 0);

export const isXml = (text: string, contentType: string): boolean =>
  /xml/i.test(contentType) || /^\s*<(\?xml|[A-Za-z])/.test(text);

/** Above this, indenting costs more than it helps: shown as received. */
const PRETTY_LIMIT = 2_000_000;

/** Indents XML by its tags; text nodes stay on their element's line. Tolerant of broken markup. */
export function prettyXml(text: string): string {
  if (text.length > PRETTY_LIMIT) return text;
  const tokens = text
    .replace(/>\s+</g, '><')
    .split(/(<[^>]+>)/)
    .filter((t) => t.trim() !== '');
  const lines: string[] = [];
  let depth = 0;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    const pad = '  '.repeat(Math.max(depth, 0));
    if (/^<\//.test(t)) {
      depth--;
      lines.push('  '.repeat(Math.max(depth, 0)) + t);
    } else if (t.startsWith('<') && !/^<[/!?]/.test(t) && !t.endsWith('/>')) {
      const text = tokens[i + 1];
      const close = tokens[i + 2];
      if (text !== undefined && !text.startsWith('<') && close?.startsWith('</')) {
        lines.push(pad + t + text.trim() + close);
        i += 2;
      } else {
        lines.push(pad + t);
        depth++;
      }
    } else {
      lines.push(pad + t.trim());
    }
  }
  return lines.join('\n');
}
