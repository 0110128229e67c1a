// The virtual tree an SFTP account sees and the rules its paths obey. Pure functions: every path a
// client sends goes through resolvePath() and locate() before anything touches the disk, so a path
// that reaches the disk has no `..`, no NUL, no backslash and names only the fixed tree.
import { OncoError, type SftpStatus } from '../config/errors.ts';

export const DROP_FOLDERS = ['identity', 'pathology', 'molecular'] as const;
export type DropFolder = (typeof DROP_FOLDERS)[number];

/** The directories of every account tree, relative to its root. No other directory exists in it. */
export const TREE_DIRS = [
  'in',
  'in/identity',
  'in/pathology',
  'in/molecular',
  'out',
  'out/ack',
  'error',
] as const;
export type TreeDir = (typeof TREE_DIRS)[number];

/** Directories that hold files (`/` and `/in` hold only directories). */
const FILE_DIRS: readonly TreeDir[] = [
  'in/identity',
  'in/pathology',
  'in/molecular',
  'out',
  'out/ack',
  'error',
];

/** A request the tree refuses; `status` is the SFTP status code the client receives. */
export class SftpRefusal extends OncoError {
  readonly status: number;
  constructor(status: number, code: string, message: string) {
    super(code, { message, protocol: { sftp: status as SftpStatus } });
    this.status = status;
  }
}

// SFTP v3 status codes (draft-ietf-secsh-filexfer-02), repeated here so this module stays pure.
export const STATUS = {
  OK: 0,
  EOF: 1,
  NO_SUCH_FILE: 2,
  PERMISSION_DENIED: 3,
  FAILURE: 4,
  OP_UNSUPPORTED: 8,
} as const;

/**
 * Normalises a client path against the account root (`/`; relative paths start there too) into its
 * segments. A path that would climb above the root is refused rather than clamped, so a client
 * learns at once that `..` leads nowhere.
 */
export function resolvePath(requested: string): string[] {
  if (requested.includes('\0')) {
    throw new SftpRefusal(STATUS.PERMISSION_DENIED, 'SFTP_PATH_NUL', 'path refused: it contains a NUL byte');
  }
  if (requested.includes('\\')) {
    throw new SftpRefusal(
      STATUS.PERMISSION_DENIED,
      'SFTP_PATH_BACKSLASH',
      'path refused: use `/` as separator, backslashes are not allowed in names',
    );
  }
  const segments: string[] = [];
  for (const part of requested.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (segments.length === 0) {
        throw new SftpRefusal(
          STATUS.PERMISSION_DENIED,
          'SFTP_PATH_OUTSIDE',
          'path refused: it leaves your tree; your tree starts at `/`',
        );
      }
      segments.pop();
      continue;
    }
    segments.push(part);
  }
  return segments;
}

export function virtualPath(segments: readonly string[]): string {
  return '/' + segments.join('/');
}

/** What a normalised path names in the fixed tree. */
export type Location =
  { kind: 'dir'; dir: TreeDir | '' } | { kind: 'file'; dir: TreeDir; name: string } | { kind: 'none' };

export function locate(segments: readonly string[]): Location {
  const joined = segments.join('/');
  if (joined === '' || (TREE_DIRS as readonly string[]).includes(joined)) {
    return { kind: 'dir', dir: joined as TreeDir | '' };
  }
  const name = segments[segments.length - 1];
  const parent = segments.slice(0, -1).join('/');
  if (name !== undefined && (FILE_DIRS as readonly string[]).includes(parent)) {
    return { kind: 'file', dir: parent as TreeDir, name };
  }
  return { kind: 'none' };
}

/**
 * Whether what a path names can be on disk. In a drop folder only a temporary name can: a final name
 * is taken at its CLOSE or RENAME and never written there, so the STAT every client sends before an
 * upload, and the OPEN, need no look-up for it.
 */
export function mayExist(where: Location): boolean {
  if (where.kind === 'none') return false;
  return where.kind === 'dir' || dropFolderOf(where.dir) === null || isTemporaryName(where.name);
}

/** The drop folder a directory is, or null when uploads are not allowed there. */
export function dropFolderOf(dir: TreeDir | ''): DropFolder | null {
  const match = /^in\/(.+)$/.exec(dir);
  return match && (DROP_FOLDERS as readonly string[]).includes(match[1] ?? '')
    ? (match[1] as DropFolder)
    : null;
}

/** Directories listed inside a directory of the tree (its fixed children). */
export function childDirs(dir: TreeDir | ''): string[] {
  const prefix = dir === '' ? '' : dir + '/';
  return TREE_DIRS.filter((d) => d.startsWith(prefix) && !d.slice(prefix.length).includes('/')).map((d) =>
    d.slice(prefix.length),
  );
}

/**
 * Names announcing an upload still in progress: the client renames them when complete. `.filepart`
 * is WinSCP's default, accepted so that WinSCP works without configuration.
 */
export function isTemporaryName(name: string): boolean {
  return /\.(part|tmp|filepart)$/i.test(name);
}

const NAME_CHARS = /^[\p{L}\p{N}_\-+=@,()~#][\p{L}\p{N} ._\-+=@,()~#]*$/u;
const MAX_NAME_BYTES = 200;

/**
 * Why a name cannot be created, or null when it can. Conservative on purpose: the names travel on to
 * the journal, ACK and error file names and other systems' file systems.
 */
export function fileNameProblem(name: string): string | null {
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) return `name refused: longer than ${MAX_NAME_BYTES} bytes`;
  if (!NAME_CHARS.test(name) || /[. ]$/.test(name)) {
    return 'name refused: use letters, digits, space and . _ - + = @ , ( ) ~ # only, not first a dot or space, not last a dot or space';
  }
  return null;
}
