// Store writers (destinations that file into the core store) name their filing as data: a writer
// module method and its plain arguments. The writer runs it in the transaction that marks the
// delivery SENT, which is what makes store filing exactly-once (README, delivery rule 4).
import { callModule } from './group-commit.ts';
import { isTransientDbError, type Db } from './db.ts';
import type { Journal, ProcessingResult, SentResult, StoragePolicy } from './journal.ts';

/** Which writer module method files a message, with its arguments (structured-cloneable). */
export interface Filing {
  module: string;
  method: string;
  args: unknown[];
}

/** What a filing method returns: the delivery's response (kept as JSON) and its one-line detail. */
export interface Filed {
  response?: unknown;
  detail?: string;
}

/** A store-writer delivery the processing stage files itself, in the transaction of its result. */
export interface InlineFiling {
  deliveryId: number;
  /** An ordered queue: filed only when no earlier delivery of it waits (a retrying head, say). */
  ordered: boolean;
  filing: Filing;
}

export class Deliveries {
  constructor(
    private readonly db: Db,
    private readonly journal: Journal,
    private readonly modules: () => object,
  ) {}

  /**
   * Records a processing result and, for a transformed message, files its store-writer deliveries
   * in the same transaction, each filing in a savepoint: received, processed and filed in two group
   * commits, each journal row written once in its end state (Journal.processedAndSent). A filing
   * refused here stays QUEUED: its destination worker tries it again under its retry rules and
   * journals the refusal. `premarked`: the deliveries whose start the run's mark recorded; those
   * not filed here get it back (their attempt did not happen). Returns the filed ones.
   */
  processedAndFiled(
    result: ProcessingResult,
    policy: StoragePolicy,
    filings: readonly InlineFiling[],
    premarked: readonly number[],
  ): number[] {
    const sent: SentResult[] = [];
    if (result.status === 'TRANSFORMED') {
      for (const f of filings) {
        if (f.ordered && this.journal.queuedBefore(f.deliveryId)) continue;
        try {
          const filed = this.db.transaction(() => this.file(f.filing))();
          sent.push({ ...sentOf(filed), deliveryId: f.deliveryId, policy, now: result.now });
        } catch (error) {
          // A locked database fails the whole result, retried; a refusal is the worker's to journal.
          if (isTransientDbError(error)) throw error;
        }
      }
    }
    this.journal.processedAndSent(result, policy, sent);
    const filed = sent.map((s) => s.deliveryId);
    for (const id of premarked) if (!filed.includes(id)) this.journal.unstartDelivery(id);
    return filed;
  }

  /** Files, then marks the delivery SENT with the filing's response: one transaction, both or neither. */
  fileAndMarkSent(filing: Filing, sent: Omit<SentResult, 'response' | 'detail'>): Filed {
    const filed = this.file(filing);
    this.journal.sent({ ...sent, ...sentOf(filed) });
    return filed;
  }

  private file(filing: Filing): Filed {
    return callModule(this.modules(), filing.module, filing.method, filing.args) as Filed;
  }
}

/** What the journal keeps of a filing: its response as JSON, and its detail. */
function sentOf(filed: Filed): Pick<SentResult, 'response' | 'detail'> {
  return {
    response:
      filed.response === undefined
        ? undefined
        : { content: Buffer.from(JSON.stringify(filed.response)), contentType: 'application/json' },
    detail: filed.detail,
  };
}
