// PDF + sidecar pairing on the SFTP drop: a lab drops `NAME.pdf` and `NAME.json` (or `NAME.hl7`)
// as two uploads; together they are one report. The first half to arrive is parked on disk —
// fsynced and renamed into `<dataDir>/sftp/.pairing/<login>/<folder>/` before its upload is answered
// OK, so an acknowledged half survives a crash — and the second half makes the pair, which is
// journaled as one message (the PDF as content, the sidecar in `meta.sidecar`). A half left alone
// longer than the wait goes to `/error` with a note saying what is missing.
//
// A JSON sidecar is never a report on its own: it always waits for its PDF. An HL7 file is a report
// on its own unless its PDF is already parked: a lab sending an HL7 sidecar sends the PDF first.
import fs from 'node:fs/promises';
import path from 'node:path';
import type { AccountTree } from './sftp-account-tree.ts';

export type Half = 'pdf' | 'sidecar';

export interface ParkedHalf {
  name: string;
  file: string;
}

export interface Pair {
  /** The PDF stays a file (the upload's or the parked one): it is staged, never read whole here. */
  pdf: { name: string; file: string };
  /** The sidecar is small by nature (JSON or HL7 naming the patient): it travels in meta. */
  sidecar: { name: string; content: Buffer };
  /** Parked files to remove once the pair is journaled. */
  parked: string[];
}

/** What an upload is to the pairing: a PDF, a sidecar that waits, a sidecar only if its PDF waits, or neither. */
export function halfOf(name: string): { half: Half; base: string; alone: boolean } | null {
  const ext = path.extname(name).toLowerCase();
  const base = name.slice(0, name.length - ext.length);
  if (ext === '.pdf') return { half: 'pdf', base, alone: false };
  if (ext === '.json') return { half: 'sidecar', base, alone: false };
  if (ext === '.hl7') return { half: 'sidecar', base, alone: true };
  return null;
}

const SIDECAR_EXTS = ['.json', '.hl7'];

export class SidecarPairing {
  /** One decision at a time: two halves arriving together on two connections still meet. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly root: string,
    private readonly folder: string,
  ) {}

  private dirOf(login: string): string {
    return path.join(this.root, login, this.folder);
  }

  /**
   * Pairs an upload with its parked partner, or parks it. Returns the pair when complete; null when
   * the upload was parked; `'alone'` when it is an HL7 file with no PDF waiting (a report by itself).
   */
  offer(login: string, name: string, file: string): Promise<Pair | null | 'alone'> {
    return this.serial(() => this.decide(login, name, file));
  }

  private serial<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async decide(login: string, name: string, file: string): Promise<Pair | null | 'alone'> {
    const what = halfOf(name)!;
    const dir = this.dirOf(login);
    const partners = what.half === 'pdf' ? SIDECAR_EXTS.map((e) => `${what.base}${e}`) : [`${what.base}.pdf`];
    for (const partner of partners) {
      const parked = path.join(dir, partner);
      const there = await fs.stat(parked).then(
        () => true,
        (e: NodeJS.ErrnoException) => {
          if (e.code === 'ENOENT') return false;
          throw e;
        },
      );
      if (!there) continue;
      return what.half === 'pdf'
        ? {
            pdf: { name, file },
            sidecar: { name: partner, content: await fs.readFile(parked) },
            parked: [parked],
          }
        : {
            pdf: { name: partner, file: parked },
            sidecar: { name, content: await fs.readFile(file) },
            parked: [parked],
          };
    }
    if (what.alone) return 'alone';
    await this.park(dir, name, file);
    return null;
  }

  private async park(dir: string, name: string, file: string): Promise<void> {
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    const handle = await fs.open(file, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(file, path.join(dir, name));
    const d = await fs.open(dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  }

  /** Removes the parked halves of a journaled pair. */
  async done(pair: Pair): Promise<void> {
    await Promise.all(pair.parked.map((f) => fs.rm(f, { force: true })));
  }

  /** Halves parked longer than `waitMs`, moved to the account's `/error` with a note. */
  expire(
    waitMs: number,
    now: number,
    treeOf: (login: string) => Promise<AccountTree>,
  ): Promise<ParkedHalf[]> {
    return this.serial(() => this.sweep(waitMs, now, treeOf));
  }

  private async sweep(
    waitMs: number,
    now: number,
    treeOf: (login: string) => Promise<AccountTree>,
  ): Promise<ParkedHalf[]> {
    const expired: ParkedHalf[] = [];
    const logins = await fs.readdir(this.root).catch(() => [] as string[]);
    for (const login of logins) {
      const dir = this.dirOf(login);
      const names = await fs.readdir(dir).catch(() => [] as string[]);
      for (const name of names) {
        const file = path.join(dir, name);
        const stat = await fs.stat(file).catch(() => null);
        if (stat === null || now - stat.mtimeMs < waitMs) continue;
        const what = halfOf(name);
        const missing = what?.half === 'pdf' ? `${what.base}.json or ${what.base}.hl7` : `${what?.base}.pdf`;
        const tree = await treeOf(login);
        await tree.reject(
          name,
          file,
          `file refused: ${missing} did not arrive within ${Math.round(waitMs / 1000)} s. A PDF report and its sidecar (the JSON or HL7 naming the patient) are sent together, with the same base name; send both again.`,
        );
        expired.push({ name, file });
      }
    }
    return expired;
  }
}
