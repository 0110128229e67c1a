// The poison guard of the fused receipt (issue 14). A fused message runs its steps before it is
// journaled, so the journal cannot count its attempts as it does for the classic path (a mark
// before the steps). Instead each attempt appends the message's de-duplication key and digest to a
// small file per channel, with a plain write: the page cache outlives a killed process, so no fsync
// is needed (a power cut may lose a line: one uncounted attempt, never data). At start, a key
// present there whose message the journal does not hold is an attempt that died: the channel counts
// it as the classic path counts an unfinished mark, runs such a message alone, and quarantines it
// at the limit.
import fs from 'node:fs';
import path from 'node:path';

/** One fused message, as the journal's de-duplication knows it. */
export interface InFlightEntry {
  key: string;
  digest: string;
}

/** Past this size the file is rewritten with what still counts: it holds a few lines, not history. */
const COMPACT_AT_BYTES = 1024 * 1024;
/** A line taking back an attempt that ended without crashing (its write failed): not a death. */
const CANCEL = '-';

export class InFlight {
  /** Attempts of earlier runs that never reached the journal, by entry line. */
  private readonly unfinished = new Map<string, number>();
  /** Attempts of this run not ended yet, by entry line. */
  private readonly current = new Map<string, number>();
  private fd: number | null = null;
  private bytes = 0;

  /**
   * Reads what earlier runs left (`file` null: nothing survives this process, as with a store in
   * memory) and keeps the attempts whose message `journaled` does not know.
   */
  constructor(
    private readonly file: string | null,
    journaled: (entry: InFlightEntry) => boolean,
  ) {
    if (file === null) return;
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const counts = new Map<string, number>();
    const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
    for (const line of text.split('\n')) {
      if (line === '') continue;
      const cancel = line.startsWith(CANCEL);
      const entry = cancel ? line.slice(1) : line;
      counts.set(entry, (counts.get(entry) ?? 0) + (cancel ? -1 : 1));
    }
    for (const [line, n] of counts) {
      // A line cut short by the kill is no entry: that attempt had not begun its steps.
      const entry = parse(line);
      if (n > 0 && entry && !journaled(entry)) this.unfinished.set(line, n);
    }
    this.compact();
  }

  /** How many earlier attempts of this message died before reaching the journal. */
  unfinishedOf(entry: InFlightEntry): number {
    return this.unfinished.get(lineOf(entry)) ?? 0;
  }

  /** An attempt begins: recorded before the steps run. */
  begin(entry: InFlightEntry): void {
    const line = lineOf(entry);
    this.current.set(line, (this.current.get(line) ?? 0) + 1);
    this.append(`${line}\n`);
  }

  /**
   * The attempt ended: `journaled`, its message is in the journal (it counts no more); otherwise
   * its write failed without a crash, and the attempt is taken back.
   */
  end(entry: InFlightEntry, journaled: boolean): void {
    const line = lineOf(entry);
    const n = (this.current.get(line) ?? 1) - 1;
    if (n > 0) this.current.set(line, n);
    else this.current.delete(line);
    if (journaled) this.unfinished.delete(line);
    else this.append(`${CANCEL}${line}\n`);
    if (this.bytes > COMPACT_AT_BYTES) this.compact();
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }

  private append(text: string): void {
    if (this.fd === null) return;
    this.bytes += fs.writeSync(this.fd, text);
  }

  /** Rewrites the file with the attempts that still count, by a rename: a kill leaves one or the other. */
  private compact(): void {
    if (this.file === null) return;
    const lines: string[] = [];
    for (const map of [this.unfinished, this.current])
      for (const [line, n] of map) for (let i = 0; i < n; i++) lines.push(`${line}\n`);
    const text = lines.join('');
    const tmp = `${this.file}.tmp`;
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, this.file);
    this.close();
    this.fd = fs.openSync(this.file, 'a');
    this.bytes = Buffer.byteLength(text);
  }
}

const lineOf = (e: InFlightEntry): string => JSON.stringify([e.key, e.digest]);

function parse(line: string): InFlightEntry | undefined {
  try {
    const [key, digest] = JSON.parse(line) as unknown[];
    return typeof key === 'string' && typeof digest === 'string' ? { key, digest } : undefined;
  } catch {
    return undefined;
  }
}
