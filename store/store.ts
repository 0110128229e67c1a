// The store facade: one database file, every module's migrations, one group-commit writer (in a
// thread of its own by default), and this thread's connection for reads.
import path from 'node:path';
import { openDatabase, migrate, READER_CACHE_MIB, type Db, type Migration, type OpenOptions } from './db.ts';
import { InlineWriter, type WriteMode, type Writer } from './group-commit.ts';
import { ThreadWriter, type RestartPolicy, type WriterHealth, type WriterLog } from './writer-thread.ts';
import { Journal, journalMigrations } from './journal.ts';
import { Accounts, accountMigrations } from './accounts.ts';
import { Audit, auditKeying, auditMigrations, type AuditKeying } from './audit.ts';
import { AuthService, LoginLedger, type AuthPolicy } from './auth.ts';
import { Sessions, sessionMigrations } from './sessions.ts';
import { MessageSearch, messageSearchMigrations } from './message-search.ts';
import { Stats } from './stats.ts';
import { PatientStore, patientMigrations, type ActionContext } from './patients.ts';
import { Vigilance } from './vigilance.ts';
import { Documents, documentMigrations, flattenDocumentShards } from './documents.ts';
import { Orders, orderMigrations } from './orders.ts';
import { writesThrough, type Writes } from './writes.ts';
import { BlobFiles } from './blob-files.ts';
import { ContextualCalls, actxMigrations } from './actx.ts';
import { IdentityFiling } from './identity-filing.ts';
import { Deliveries } from './filing.ts';
import { Outbox, outboxMigrations } from './outbox.ts';
import { Rcp, rcpMigrations } from './rcp.ts';
import { MailTracking, mailTrackingMigrations } from './mail-tracking.ts';

export const allMigrations: readonly Migration[] = [
  ...journalMigrations,
  ...accountMigrations,
  ...sessionMigrations,
  ...auditMigrations,
  ...messageSearchMigrations,
  ...patientMigrations,
  ...documentMigrations,
  ...orderMigrations,
  ...outboxMigrations,
  ...rcpMigrations,
  ...mailTrackingMigrations,
  ...actxMigrations,
];

export interface StoreOptions extends OpenOptions {
  /** Directory holding `onco-relay.db`, or `:memory:` for tests of pure store logic. */
  dataDir: string;
  /** Throttling and audit aggregation of failed logins (tests shorten the windows). */
  auth?: Partial<AuthPolicy>;
  /**
   * `thread` (default): a worker thread owns the write connection, commits never block the event
   * loop, and this thread's connection only reads. `inline`: one connection, commits in this thread
   * (always so for `:memory:`; the benchmark's baseline).
   */
  writer?: 'thread' | 'inline';
  /** Content larger than this many bytes is kept as a file in `<dataDir>/blobs` (default 1 MiB). */
  blobThresholdBytes?: number;
  /** When the writer thread is restarted if it dies (tests shorten the delays). */
  writerRestart?: Partial<RestartPolicy>;
  /** Where the writer thread's death and restart are told (default: stderr). */
  log?: WriterLog;
  /** The store serves a bulk load (`onco-relay import identities`): see BULK_CHECKPOINT_PAGES. */
  bulkLoad?: boolean;
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
  logins: LoginLedger;
  messageSearch: MessageSearch;
  patients: PatientStore;
  vigilance: Vigilance;
  identityFiling: IdentityFiling;
  deliveries: Deliveries;
  documents: Documents;
  outbox: Outbox;
  rcp: Rcp;
  orders: Orders;
  mailTracking: MailTracking;
  actx: ContextualCalls;
}

/** Told after a write committed, with the module written: store-fed sources wake on it. */
export type CommitListener = (module: string) => void;

/**
 * Builds every writer module on one connection: the writer thread does it on the write connection,
 * the main thread on its read connection (the same classes answer reads there).
 */
export function writerModules(db: Db, keying: AuditKeying, documentFiles: BlobFiles | null): WriterModules {
  const audit = new Audit(db, keying);
  const journal = new Journal(db, audit);
  const accounts = new Accounts(db);
  const sessions = new Sessions(db);
  const patients = new PatientStore(db);
  // Documents are kept as files beside the database; a store in memory files none.
  const outbox = new Outbox(db, journal);
  const orders = new Orders(db, patients, outbox, audit);
  const documents = new Documents(db, patients, documentFiles, {
    closeOrder: (orderNumber, documentId, now) => orders.resultArrived(orderNumber, documentId, now),
  });
  const identityFiled = (patientId: number, ctx: ActionContext) => documents.identityFiled(patientId, ctx);
  const vigilance = new Vigilance(patients, identityFiled);
  const modules: WriterModules = {
    journal,
    accounts,
    audit,
    sessions,
    logins: new LoginLedger(db, accounts, audit, sessions),
    messageSearch: new MessageSearch(db),
    patients,
    vigilance,
    identityFiling: new IdentityFiling(patients, vigilance, identityFiled),
    deliveries: new Deliveries(db, journal, () => modules),
    documents,
    outbox,
    rcp: new Rcp(db, patients, outbox, audit),
    orders,
    mailTracking: new MailTracking(db),
    actx: new ContextualCalls(db, { accounts, audit, sessions, vigilance }),
  };
  return modules;
}

/**
 * Documents' bytes are all files (threshold 0); a store in memory keeps none. Bytes the journal holds
 * already (`<data>/blobs`, beside `<data>/documents`) are hard-linked, not written again.
 */
export function documentFilesIn(dir: string | null): BlobFiles | null {
  return dir === null ? null : new BlobFiles(dir, 0, undefined, path.join(path.dirname(dir), 'blobs'));
}

export class Store {
  /** This thread's connection: read-only (`query_only`) when the writer runs in its own thread. */
  readonly db: Db;
  readonly writer: Writer;
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
  /**
   * The bytes of filed documents, every size (`<data>/documents`), kept while a document version
   * names them (`documents.holdsBlob`): documents are never pruned, and their files are swept only
   * at the engine's start, when no filing is in flight (the writer thread places them unpinned).
   */
  readonly documentFiles: BlobFiles | null;
  readonly documents: Documents;
  readonly orders: Orders;
  readonly outbox: Outbox;
  readonly rcp: Rcp;
  readonly mailTracking: MailTracking;
  /** Writes in the next group commit: `store.write.journal.receive(m)` settles once it is durable. */
  readonly write: Writes<WriterModules>;
  /** Writes committed in a transaction of their own (work under suspicion: the poison guard). */
  readonly writeAlone: Writes<WriterModules>;
  /**
   * Writes committed at once, alone, without waiting for the disk: the poison guard's "attempt
   * begins" (it survives a crash of the process, which is what it guards against).
   */
  readonly mark: Writes<WriterModules>;
  /**
   * Writes in the next group commit that another write opens (or a few milliseconds later): for a
   * result nobody is waiting for, which then shares the next receipt's fsync.
   */
  readonly writeTrailing: Writes<WriterModules>;
  private closing: Promise<void> | undefined;

  constructor(options: StoreOptions) {
    const memory = options.dataDir === ':memory:';
    const file = memory ? ':memory:' : path.join(options.dataDir, 'onco-relay.db');
    this.db = openDatabase(file, options);
    migrate(this.db, allMigrations);
    const keying = auditKeying(options.dataDir);
    // Built here first, on a connection that may still write: a module's one-off upgrade at start
    // (the audit chain's rekeying, a search reindex) is done before the writer thread opens.
    const documentsDir = memory ? null : path.join(options.dataDir, 'documents');
    if (documentsDir !== null) flattenDocumentShards(documentsDir);
    this.documentFiles = documentFilesIn(documentsDir);
    const modules = writerModules(this.db, keying, this.documentFiles);
    this.blobs = new BlobFiles(
      memory ? null : path.join(options.dataDir, 'blobs'),
      options.blobThresholdBytes ?? DEFAULT_BLOB_THRESHOLD,
      (digest) => modules.journal.blobKnown(digest),
    );
    ({
      journal: this.journal,
      accounts: this.accounts,
      audit: this.audit,
      sessions: this.sessions,
      messageSearch: this.messageSearch,
      patients: this.patients,
      vigilance: this.vigilance,
      documents: this.documents,
      orders: this.orders,
      outbox: this.outbox,
      rcp: this.rcp,
      mailTracking: this.mailTracking,
    } = modules);
    this.stats = new Stats(this.db);
    if (memory || options.writer === 'inline') this.writer = new InlineWriter(this.db, modules);
    else {
      this.db.pragma('query_only = ON');
      this.db.pragma(`cache_size = -${READER_CACHE_MIB * 1024}`);
      this.writer = new ThreadWriter(
        {
          file,
          synchronous: options.synchronous ?? 'FULL',
          auditKey: keying.key,
          documentsDir,
          bulkLoad: options.bulkLoad,
        },
        { log: options.log, restart: options.writerRestart },
      );
    }
    const through = (mode: WriteMode) =>
      writesThrough<WriterModules>((module, method, args) =>
        this.writer.run(module, method, args, mode).then((r) => this.committed(module, r)),
      );
    this.write = through('group');
    this.writeAlone = through('alone');
    this.mark = through('mark');
    this.writeTrailing = through('trailing');
    this.auth = new AuthService(this.db, this.write, this.accounts, options.auth);
  }

  private readonly commitListeners = new Set<CommitListener>();

  /** Calls `listener` after every write through `write`/`writeAlone`/`mark` committed; returns the unsubscribe. */
  onCommit(listener: CommitListener): () => void {
    this.commitListeners.add(listener);
    return () => this.commitListeners.delete(listener);
  }

  private committed<R>(module: string, result: R): R {
    for (const l of this.commitListeners) l(module);
    return result;
  }

  /** Whether writes are taken: a writer thread may be down, restarting, or down for good. */
  writerHealth(): WriterHealth {
    return this.writer instanceof ThreadWriter
      ? this.writer.health()
      : { state: 'up', restarts: 0, lastError: null };
  }

  /** Returns the pages freed by deletions to the file system (auto_vacuum = INCREMENTAL). */
  reclaimSpace(): Promise<void> {
    return this.writer.reclaimSpace();
  }

  /** Writes what waits (the failed-login summaries included), stops the writer, closes the database. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    // Queued first, so that the writer commits them before it stops.
    const summaries = this.auth.close().catch(() => undefined);
    const stopped = this.writer.close();
    const finish = (): void => {
      this.audit.close();
      this.db.close();
    };
    // Inline, everything is committed by now: closed before this returns, as a synchronous caller expects.
    if (this.writer instanceof InlineWriter) finish();
    this.closing = Promise.all([summaries, stopped]).then(() => {
      if (this.db.open) finish();
    });
    return this.closing;
  }
}
