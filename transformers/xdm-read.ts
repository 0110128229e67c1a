// Reading an IHE XDM archive (`IHE_XDM.ZIP` of an MSSanté mail): yauzl reads it entry by entry, and
// yauzl imposes no limits, so we do — entry count and declared total size before a byte is inflated,
// compression ratio per entry, actual bytes while inflating, paths that would leave the archive,
// archives nested beyond one level. `IHE_XDM/SUBSETnn/METADATA.XML` (XDS metadata, ebRIM) is read
// with the product's one safe XML module into document metadata: which file is which document, of
// which patient, of which type and format.
import yauzl from 'yauzl';
import { StepError } from './contract.ts';
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
  content: Buffer;
}

/** Patient as XDS `sourcePatientId` and `sourcePatientInfo` give it. */
export interface XdmPatient {
  /** `matricule^^^&OID&ISO^NH`, as written. */
  id: string;
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
  content: Buffer;
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
export async function unzip(zip: Buffer, limits: ZipLimits = DEFAULT_ZIP_LIMITS): Promise<ZipFile[]> {
  return readArchive(zip, limits, { entries: 0, bytes: 0 }, 0, '');
}

async function readArchive(
  zip: Buffer,
  limits: ZipLimits,
  budget: Budget,
  depth: number,
  prefix: string,
): Promise<ZipFile[]> {
  const file = await new Promise<yauzl.ZipFile>((resolve, reject) =>
    yauzl.fromBuffer(zip, { lazyEntries: true, decodeStrings: false, validateEntrySizes: true }, (err, f) =>
      err || !f ? reject(zipBroken(err, prefix)) : resolve(f),
    ),
  );
  try {
    if (budget.entries + file.entryCount > limits.maxEntries) {
      throw refuse(
        'ZIP_TOO_MANY_ENTRIES',
        `the archive holds ${budget.entries + file.entryCount} entries, more than ${limits.maxEntries}`,
        prefix || undefined,
      );
    }
    const out: ZipFile[] = [];
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
      const content = await read(file, entry, where);
      if (isZip(content) || /\.zip$/i.test(name)) {
        if (depth + 1 > limits.maxNesting) {
          throw refuse(
            'ZIP_NESTED',
            `entry "${where}" is an archive inside an archive inside the archive: nesting is limited to ${limits.maxNesting} level(s)`,
            where,
          );
        }
        out.push(...(await readArchive(content, limits, budget, depth + 1, `${where}/`)));
      } else {
        out.push({ path: where, content });
      }
    }
    return out;
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

/** Inflates one entry; yauzl checks the bytes against the declared size as they come. */
function read(file: yauzl.ZipFile, entry: yauzl.Entry, where: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    file.openReadStream(entry, (err, stream) => {
      if (err || !stream) return reject(zipBroken(err, where));
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => resolve(Buffer.concat(chunks)));
      stream.on('error', (e) => reject(zipBroken(e, where)));
    });
  });
}

/** The XDM content of an archive: every METADATA.XML read, each described file paired with its entry. */
export async function readXdm(zip: Buffer, limits: ZipLimits = DEFAULT_ZIP_LIMITS): Promise<Xdm> {
  const files = await unzip(zip, limits);
  const metadata = files.filter((f) => /(^|\/)IHE_XDM\/[^/]+\/METADATA\.XML$/i.test(f.path));
  if (metadata.length === 0) {
    throw refuse('XDM_NO_METADATA', 'the archive has no IHE_XDM/SUBSETnn/METADATA.XML');
  }
  const byPath = new Map(files.map((f) => [f.path.toUpperCase(), f]));
  const used = new Set<string>(metadata.map((m) => m.path.toUpperCase()));
  const documents: XdmDocument[] = [];
  for (const m of metadata) {
    const subset = m.path.slice(0, m.path.length - 'METADATA.XML'.length);
    for (const entry of descendants(parseXml(m.content), 'ExtrinsicObject')) {
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
        content: file.content,
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
  const oid = authority?.split('&')[1] ?? null;
  const info = new Map(
    slot(entry, 'sourcePatientInfo').map((v) => [v.slice(0, v.indexOf('|')), v.slice(v.indexOf('|') + 1)]),
  );
  const name = info.get('PID-5')?.split('^') ?? [];
  const birth = info.get('PID-7') ?? '';
  return {
    id,
    ins: value || null,
    insOid: oid,
    birthName: name[0] || null,
    firstGivenName: name[1] || null,
    birthDate: /^\d{8}/.test(birth) ? `${birth.slice(0, 4)}-${birth.slice(4, 6)}-${birth.slice(6, 8)}` : null,
    sex: info.get('PID-8') || null,
  };
}
