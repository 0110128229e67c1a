// The store facade: one database file, every module's migrations, one group-commit writer.
import path from 'node:path';
import { openDatabase, migrate, type Db, type Migration, type OpenOptions } from './db.ts';
import { GroupCommit } from './group-commit.ts';
import { Journal, journalMigrations } from './journal.ts';
import { Accounts, accountMigrations } from './accounts.ts';
import { Audit, auditKeying, auditMigrations } from './audit.ts';
import { AuthService, type AuthPolicy } from './auth.ts';
import { Sessions, sessionMigrations } from './sessions.ts';
import { MessageSearch, messageSearchMigrations } from './message-search.ts';
import { Stats } from './stats.ts';
import { PatientStore, patientMigrations } from './patients.ts';
import { Vigilance } from './vigilance.ts';
import { writesThrough, type Writes } from './writes.ts';
import { BlobFiles } from './blob-files.ts';

export const allMigrations: readonly Migration[] = [
  ...journalMigrations,
  ...accountMigrations,
  ...sessionMigrations,
  ...auditMigrations,
  ...messageSearchMigrations,
  ...patientMigrations,
];

export interface StoreOptions extends OpenOptions {
  /** Directory holding `onco-relay.db`, or `:memory:` for tests of pure store logic. */
  dataDir: string;
  /** Throttling and audit aggregation of failed logins (tests shorten the windows). */
  auth?: Partial<AuthPolicy>;
  /** Content larger than this many bytes is kept as a file in `<dataDir>/blobs` (default 1 MiB). */
  blobThresholdBytes?: number;
}

export const DEFAULT_BLOB_THRESHOLD = 1024 * 1024;

/**
 * The modules whose methods the writer runs. A write that depends on what it reads (a matching
 * decision, a status change) is one method here, so that it runs in one transaction of the writer.
 */
export interface WriterModules {
  journal: Journal;
  accounts: Accounts;
  audit: Audit;
  sessions: Sessions;
  messageSearch: MessageSearch;
  patients: PatientStore;
  vigilance: Vigilance;
}

export class Store {
  readonly db: Db;
  readonly writer: GroupCommit;
  readonly journal: Journal;
  readonly accounts: Accounts;
  readonly audit: Audit;
  readonly auth: AuthService;
  readonly sessions: Sessions;
  readonly messageSearch: MessageSearch;
  readonly stats: Stats;
  readonly patients: PatientStore;
  readonly vigilance: Vigilance;
  /** Large content's files beside the database; the journal's `blobs` rows say which are referenced. */
  readonly blobs: BlobFiles;
  /** Writes in the next group commit: `store.write.journal.receive(m)` settles once it is durable. */
  readonly write: Writes<WriterModules>;
  /** Writes committed in a transaction of their own (work under suspicion: the poison guard). */
  readonly writeAlone: Writes<WriterModules>;

  constructor(options: StoreOptions) {
    const file = options.dataDir === ':memory:' ? ':memory:' : path.join(options.dataDir, 'onco-relay.db');
    this.db = openDatabase(file, options);
    migrate(this.db, allMigrations);
    this.writer = new GroupCommit(this.db);
    this.journal = new Journal(this.db);
    this.accounts = new Accounts(this.db);
    this.audit = new Audit(this.db, auditKeying(options.dataDir));
    this.sessions = new Sessions(this.db);
    this.messageSearch = new MessageSearch(this.db);
    this.stats = new Stats(this.db);
    this.patients = new PatientStore(this.db);
    this.vigilance = new Vigilance(this.patients);
    this.blobs = new BlobFiles(
      options.dataDir === ':memory:' ? null : path.join(options.dataDir, 'blobs'),
      options.blobThresholdBytes ?? DEFAULT_BLOB_THRESHOLD,
    );
    this.auth = new AuthService(this.db, this.writer, this.accounts, this.audit, this.sessions, options.auth);
    const modules: WriterModules = {
      journal: this.journal,
      accounts: this.accounts,
      audit: this.audit,
      sessions: this.sessions,
      messageSearch: this.messageSearch,
      patients: this.patients,
      vigilance: this.vigilance,
    };
    const call = (module: string, method: string, args: unknown[]) => () => {
      const target = modules[module as keyof WriterModules] as unknown as Record<string, unknown>;
      const fn = target?.[method];
      if (typeof fn !== 'function') throw new Error(`the store has no write ${module}.${method}`);
      return (fn as (...a: unknown[]) => unknown).apply(target, args);
    };
    this.write = writesThrough<WriterModules>((module, method, args) =>
      this.writer.write(call(module, method, args)),
    );
    this.writeAlone = writesThrough<WriterModules>((module, method, args) =>
      this.writer.writeAlone(call(module, method, args)),
    );
  }

  /** Returns the pages freed by deletions to the file system (auto_vacuum = INCREMENTAL). */
  reclaimSpace(): void {
    this.db.pragma('incremental_vacuum');
    this.db.pragma('wal_checkpoint(TRUNCATE)');
  }

  close(): void {
    this.auth.close();
    this.writer.close();
    this.audit.close();
    this.db.close();
  }
}
