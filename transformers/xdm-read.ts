// Reading an IHE XDM archive (`IHE_XDM.ZIP` of an MSSanté mail): yauzl reads it entry by entry, and
// yauzl imposes no limits, so we do — entry count and declared total size before a byte is inflated,
// compression ratio per entry, actual bytes while inflating, paths that would leave the archive,
// archives nested beyond one level. `IHE_XDM/SUBSETnn/METADATA.XML` (XDS metadata, ebRIM) is read
// with the product's one safe XML module into document metadata: which file is which document, of
// which patient, of which type and format.
import yauzl from 'yauzl';
import {
  bytesOf,
  HEAD_BYTES,
  inMemory,
  stageNoting,
  StepError,
  type StagedFile,
  type StepContext,
} from './contract.ts';
import { INS_OIDS } from './pam-fr.ts';
import { attr, descendants, elements, parseXml, text, type XmlElement } from './xml.ts';

export interface ZipLimits {
  /** Entries of all archives read (nested ones included). */
  maxEntries: number;
  /** Bytes once inflated, all entries together. */
  maxTotalBytes: number;
  /** Inflated size over compressed size, per entry (a zip bomb compresses a thousand times or more). */
  maxRatio: number;
  /** Archives inside the archive: 1 reads a zip found inside, and refuses a zip inside that one. */
  maxNesting: number;
}

export const DEFAULT_ZIP_LIMITS: ZipLimits = {
  maxEntries: 1000,
  maxTotalBytes: 200 * 1024 * 1024,
  maxRatio: 200,
  maxNesting: 1,
};

/** Entries smaller than this are not held to the ratio: a short text legitimately compresses well. */
const RATIO_FLOOR_BYTES = 1024 * 1024;

export interface ZipFile {
  /** Path inside the archive (a nested archive's entries: `inner.zip/PATH`). */
  path: string;
  /** The inflated entry, staged: a file when large, so no entry is held whole in memory. */
  staged: StagedFile;
  /** Its first HEAD_BYTES: enough to tell a format by. */
  head: Buffer;
}

/** An archive: its bytes, or the path of its file (read lazily, never whole). */
export type ZipSource = Buffer | string;

/** Patient as XDS `sourcePatientId` and `sourcePatientInfo` give it. */
export interface XdmPatient {
  /** `matricule^^^&OID&ISO^NH`, as written. */
  id: string;
  /** Assigning authority of `id` (its OID), whatever it is. */
  idOid: string | null;
  /** The INS, only when the assigning authority is an INS OID (INS-NIR, INS-NIA and their test ones). */
  ins: string | null;
  insOid: string | null;
  birthName: string | null;
  firstGivenName: string | null;
  /** YYYY-MM-DD */
  birthDate: string | null;
  sex: string | null;
}

export interface XdmDocument {
  /** Path of the document in the archive. */
  path: string;
  staged: StagedFile;
  /** Its first HEAD_BYTES. */
  head: Buffer;
  mimeType: string;
  uniqueId: string | null;
  title: string | null;
  classCode: string | null;
  typeCode: string | null;
  formatCode: string | null;
  creationTime: string | null;
  patient: XdmPatient | null;
}

export interface Xdm {
  documents: XdmDocument[];
  /** Entries that no METADATA.XML describes (INDEX.HTM, README.TXT, stray files). */
  others: ZipFile[];
}

const SCHEME = {
  classCode: 'urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a',
  typeCode: 'urn:uuid:f0306f51-975f-434e-a61c-c59651d33983',
  formatCode: 'urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d',
  patientId: 'urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427',
  uniqueId: 'urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab',
} as const;

const refuse = (code: string, message: string, location?: string): StepError =>
  new StepError(code, message, location === undefined ? {} : { location });

export const isZip = (content: Buffer): boolean =>
  content.length >= 4 && content.readUInt32LE(0) === 0x04034b50;

/** A path that stays inside the archive: relative, no `..`, no drive, no backslash, no NUL. */
function safePath(name: string): boolean {
  if (name === '' || name.startsWith('/') || /^[A-Za-z]:/.test(name)) return false;
  if (name.includes('\\') || name.includes('\0')) return false;
  return !name.split('/').some((part) => part === '..');
}

/** Entry name: UTF-8 when the entry says so (general purpose bit 11), else read as Latin-1. */
function nameOf(entry: yauzl.Entry): string {
  const raw = entry.fileName as unknown as Buffer;
  return raw.toString((entry.generalPurposeBitFlag & 0x800) !== 0 ? 'utf8' : 'latin1');
}

interface Budget {
  entries: number;
  bytes: number;
}

/** Every file of the archive (directories left out), nested archives read in place up to the limit. */
export async function unzip(
  zip: ZipSource,
  limits: ZipLimits = DEFAULT_ZIP_LIMITS,
  ctx: StepContext = inMemory,
): Promise<ZipFile[]> {
  const out: ZipFile[] = [];
  for await (const f of zipEntries(zip, limits, ctx)) out.push(f);
  return out;
}

/**
 * The files of an archive one at a time, each inflated into a staged file as it streams: memory
 * holds one chunk, whatever the entry's size. The limits are checked before a byte is inflated.
 */
export function zipEntries(
  zip: ZipSource,
  limits: ZipLimits = DEFAULT_ZIP_LIMITS,
  ctx: StepContext = inMemory,
): AsyncGenerator<ZipFile> {
  return readArchive(zip, limits, ctx, { entries: 0, bytes: 0 }, 0, '');
}

function openZip(zip: ZipSource, prefix: string): Promise<yauzl.ZipFile> {
  const options = { lazyEntries: true, decodeStrings: false, validateEntrySizes: true } as const;
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, f?: yauzl.ZipFile): void =>
      err || !f ? reject(zipBroken(err, prefix)) : resolve(f);
    if (typeof zip === 'string') yauzl.open(zip, { ...options, autoClose: false }, done);
    else yauzl.fromBuffer(zip, options, done);
  });
}

async function* readArchive(
  zip: ZipSource,
  limits: ZipLimits,
  ctx: StepContext,
  budget: Budget,
  depth: number,
  prefix: string,
): AsyncGenerator<ZipFile> {
  const file = await openZip(zip, prefix);
  try {
    if (budget.entries + file.entryCount > limits.maxEntries) {
      throw refuse(
        'ZIP_TOO_MANY_ENTRIES',
        `the archive holds ${budget.entries + file.entryCount} entries, more than ${limits.maxEntries}`,
        prefix || undefined,
      );
    }
    for (let entry = await next(file); entry; entry = await next(file)) {
      budget.entries++;
      const name = nameOf(entry);
      const where = prefix + name;
      if (!safePath(name))
        throw refuse('ZIP_PATH_OUTSIDE', `entry "${where}" would leave the archive`, where);
      if (name.endsWith('/')) continue;
      budget.bytes += entry.uncompressedSize;
      if (budget.bytes > limits.maxTotalBytes) {
        throw refuse('ZIP_TOO_LARGE', `the archive inflates past ${limits.maxTotalBytes} bytes`, where);
      }
      if (
        entry.uncompressedSize > RATIO_FLOOR_BYTES &&
        entry.uncompressedSize > limits.maxRatio * Math.max(entry.compressedSize, 1)
      ) {
        throw refuse(
          'ZIP_RATIO',
          `entry "${where}" inflates ${Math.round(entry.uncompressedSize / Math.max(entry.compressedSize, 1))} times its size (limit ${limits.maxRatio})`,
          where,
        );
      }
      const { staged, head } = await read(file, entry, where, ctx);
      if (isZip(head) || /\.zip$/i.test(name)) {
        if (depth + 1 > limits.maxNesting) {
          throw refuse(
            'ZIP_NESTED',
            `entry "${where}" is an archive inside an archive inside the archive: nesting is limited to ${limits.maxNesting} level(s)`,
            where,
          );
        }
        yield* readArchive(staged.file ?? staged.content!, limits, ctx, budget, depth + 1, `${where}/`);
      } else {
        yield { path: where, staged, head };
      }
    }
  } finally {
    file.close();
  }
}

function zipBroken(err: unknown, prefix: string): StepError {
  return new StepError('ZIP_BROKEN', `${prefix || 'the archive'} cannot be read as a zip`, { cause: err });
}

function next(file: yauzl.ZipFile): Promise<yauzl.Entry | null> {
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      file.off('entry', onEntry);
      file.off('end', onEnd);
      file.off('error', onError);
    };
    const onEntry = (e: yauzl.Entry): void => (cleanup(), resolve(e));
    const onEnd = (): void => (cleanup(), resolve(null));
    const onError = (e: Error): void => (cleanup(), reject(zipBroken(e, '')));
    file.on('entry', onEntry);
    file.on('end', onEnd);
    file.on('error', onError);
    file.readEntry();
  });
}

/** Inflates one entry into a staged file; yauzl checks the bytes against the declared size as they come. */
async function read(
  file: yauzl.ZipFile,
  entry: yauzl.Entry,
  where: string,
  ctx: StepContext,
): Promise<{ staged: StagedFile; head: Buffer }> {
  const stream = await new Promise<NodeJS.ReadableStream>((resolve, reject) =>
    file.openReadStream(entry, (err, s) => (err || !s ? reject(zipBroken(err, where)) : resolve(s))),
  );
  try {
    return await stageNoting(ctx, stream as AsyncIterable<Buffer>, HEAD_BYTES);
  } catch (error) {
    throw error instanceof StepError ? error : zipBroken(error, where);
  }
}

/** The XDM content of an archive: every METADATA.XML read, each described file paired with its entry. */
export async function readXdm(
  zip: ZipSource,
  limits: ZipLimits = DEFAULT_ZIP_LIMITS,
  ctx: StepContext = inMemory,
): Promise<Xdm> {
  const files = await unzip(zip, limits, ctx);
  const metadata = files.filter((f) => /(^|\/)IHE_XDM\/[^/]+\/METADATA\.XML$/i.test(f.path));
  if (metadata.length === 0) {
    throw refuse('XDM_NO_METADATA', 'the archive has no IHE_XDM/SUBSETnn/METADATA.XML');
  }
  const byPath = new Map(files.map((f) => [f.path.toUpperCase(), f]));
  const used = new Set<string>(metadata.map((m) => m.path.toUpperCase()));
  const documents: XdmDocument[] = [];
  for (const m of metadata) {
    const subset = m.path.slice(0, m.path.length - 'METADATA.XML'.length);
    for (const entry of descendants(parseXml(bytesOf(m.staged)), 'ExtrinsicObject')) {
      const uri = slot(entry, 'URI')[0];
      if (!uri || !safePath(uri)) {
        throw refuse(
          'XDM_BAD_URI',
          `a document of ${m.path} names no file, or one outside the subset`,
          m.path,
        );
      }
      const key = (subset + uri).toUpperCase();
      const file = byPath.get(key);
      if (!file)
        throw refuse('XDM_MISSING_DOCUMENT', `${m.path} describes ${uri}, absent from the archive`, m.path);
      used.add(key);
      documents.push({
        path: file.path,
        staged: file.staged,
        head: file.head,
        mimeType: attr(entry, 'mimeType') ?? 'application/octet-stream',
        uniqueId: externalId(entry, SCHEME.uniqueId),
        title: attr(elements(entry, 'Name/LocalizedString')[0], 'value') ?? null,
        classCode: classified(entry, SCHEME.classCode),
        typeCode: classified(entry, SCHEME.typeCode),
        formatCode: classified(entry, SCHEME.formatCode),
        creationTime: slot(entry, 'creationTime')[0] ?? null,
        patient: patientOf(entry),
      });
    }
  }
  return { documents, others: files.filter((f) => !used.has(f.path.toUpperCase())) };
}

function slot(entry: XmlElement, name: string): string[] {
  const s = elements(entry, 'Slot').find((x) => attr(x, 'name') === name);
  return s ? elements(s, 'ValueList/Value').map(text) : [];
}

function classified(entry: XmlElement, scheme: string): string | null {
  const c = elements(entry, 'Classification').find((x) => attr(x, 'classificationScheme') === scheme);
  return attr(c, 'nodeRepresentation') ?? null;
}

function externalId(entry: XmlElement, scheme: string): string | null {
  const e = elements(entry, 'ExternalIdentifier').find((x) => attr(x, 'identificationScheme') === scheme);
  return attr(e, 'value') ?? null;
}

/** `1790328123456^^^&1.2.250.1.213.1.4.8&ISO^NH` and `PID-5|NAME^GIVEN…`, `PID-7|YYYYMMDD`, `PID-8|F`. */
function patientOf(entry: XmlElement): XdmPatient | null {
  const id = externalId(entry, SCHEME.patientId) ?? slot(entry, 'sourcePatientId')[0] ?? null;
  if (!id) return null;
  const [value, , , authority] = id.split('^');
  const oid = authority?.split('&')[1] || null;
  // Any other authority is a local identifier (an IPP): never labelled an INS.
  const isIns = oid !== null && INS_OIDS.has(oid);
  const info = new Map(
    slot(entry, 'sourcePatientInfo').map((v) => [v.slice(0, v.indexOf('|')), v.slice(v.indexOf('|') + 1)]),
  );
  const name = info.get('PID-5')?.split('^') ?? [];
  const birth = info.get('PID-7') ?? '';
  return {
    id,
    idOid: oid,
    ins: (isIns && value) || null,
    insOid: isIns ? oid : null,
    birthName: name[0] || null,
    firstGivenName: name[1] || null,
    birthDate: /^\d{8}/.test(birth) ? `${birth.slice(0, 4)}-${birth.slice(4, 6)}-${birth.slice(6, 8)}` : null,
    sex: info.get('PID-8') || null,
  };
}
