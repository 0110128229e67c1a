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
import { Outbox, outboxMigrations } from './outbox.ts';
import { Rcp, rcpMigrations } from './rcp.ts';

export const allMigrations: readonly Migration[] = [
  ...journalMigrations,
  ...accountMigrations,
  ...sessionMigrations,
  ...auditMigrations,
  ...messageSearchMigrations,
  ...patientMigrations,
  ...outboxMigrations,
  ...rcpMigrations,
];

export interface StoreOptions extends OpenOptions {
  /** Directory holding `onco-relay.db`, or `:memory:` for tests of pure store logic. */
  dataDir: string;
  /** Throttling and audit aggregation of failed logins (tests shorten the windows). */
  auth?: Partial<AuthPolicy>;
}

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
  outbox: Outbox;
  rcp: Rcp;
}

/** Told after a write committed, with the module written: store-fed sources wake on it. */
export type CommitListener = (module: string) => void;

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
  readonly outbox: Outbox;
  readonly rcp: Rcp;
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
    this.outbox = new Outbox(this.db, this.journal);
    this.rcp = new Rcp(this.db, this.patients, this.outbox, this.audit);
    this.auth = new AuthService(this.db, this.writer, this.accounts, this.audit, this.sessions, options.auth);
    const modules: WriterModules = {
      journal: this.journal,
      accounts: this.accounts,
      audit: this.audit,
      sessions: this.sessions,
      messageSearch: this.messageSearch,
      patients: this.patients,
      vigilance: this.vigilance,
      outbox: this.outbox,
      rcp: this.rcp,
    };
    const call = (module: string, method: string, args: unknown[]) => () => {
      const target = modules[module as keyof WriterModules] as unknown as Record<string, unknown>;
      const fn = target?.[method];
      if (typeof fn !== 'function') throw new Error(`the store has no write ${module}.${method}`);
      return (fn as (...a: unknown[]) => unknown).apply(target, args);
    };
    this.write = writesThrough<WriterModules>((module, method, args) =>
      this.writer.write(call(module, method, args)).then((r) => this.committed(module, r)),
    );
    this.writeAlone = writesThrough<WriterModules>((module, method, args) =>
      this.writer.writeAlone(call(module, method, args)).then((r) => this.committed(module, r)),
    );
  }

  private readonly commitListeners = new Set<CommitListener>();

  /** Calls `listener` after every write through `write`/`writeAlone` committed; returns the unsubscribe. */
  onCommit(listener: CommitListener): () => void {
    this.commitListeners.add(listener);
    return () => this.commitListeners.delete(listener);
  }

  private committed<R>(module: string, result: R): R {
    for (const l of this.commitListeners) l(module);
    return result;
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
