// Store writers (destinations that file into the core store) name their filing as data: a writer
// module method and its plain arguments. The writer runs it in the transaction that marks the
// delivery SENT, which is what makes store filing exactly-once (README, delivery rule 4).
import { callModule } from './group-commit.ts';
import { isTransientDbError, type Db } from './db.ts';
import type {
  FiledPart,
  Journal,
  NewMessage,
  ProcessingResult,
  ReceiveResult,
  SentResult,
  StoragePolicy,
} from './journal.ts';

/** Which writer module method files a message, with its arguments (structured-cloneable). */
export interface Filing {
  module: string;
  method: string;
  args: unknown[];
  /**
   * Where in `args` the message's id goes (the value the destination took from `Outbound.messageId`):
   * a fused receipt names the filing before its message has an id, and the writer puts the id there
   * once it has journaled the message. A filing without it is left to its destination's worker.
   */
  messageIdPath?: ReadonlyArray<string | number>;
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

/** A store-writer filing named before its message was journaled: its delivery is known by destination. */
export interface FusedFiling {
  destination: string;
  ordered: boolean;
  filing: Filing & { messageIdPath: ReadonlyArray<string | number> };
}

/** What a fused receipt committed: the receipt, and the destinations filed in its transaction. */
export interface FusedReceipt {
  receipt: ReceiveResult;
  filed: string[];
}

export class Deliveries {
  /** Built once: a transaction wrapper built per filing costs the writer thread measurably. */
  private readonly inSavepoint: (filing: Filing) => Filed;

  constructor(
    db: Db,
    private readonly journal: Journal,
    private readonly modules: () => object,
  ) {
    this.inSavepoint = db.transaction((filing: Filing) => this.file(filing));
  }

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
        const filed = this.tryFiling(f.filing);
        if (filed) sent.push({ ...sentOf(filed), deliveryId: f.deliveryId, policy, now: result.now });
      }
    }
    this.journal.processedAndSent(result, policy, sent);
    const filed = sent.map((s) => s.deliveryId);
    for (const id of premarked) if (!filed.includes(id)) this.journal.unstartDelivery(id);
    return filed;
  }

  /**
   * The fused receipt (issue 14): a message whose steps ran before it was journaled is received,
   * its result recorded and its store-writer deliveries filed, all in this one write, so in one
   * savepoint of one group commit, each row written once in its end state (Journal.receiveProcessed).
   * A filing refused here leaves its delivery QUEUED for its worker, as processedAndFiled does.
   */
  receivedAndFiled(
    message: NewMessage,
    result: Omit<ProcessingResult, 'messageId'>,
    policy: StoragePolicy,
    filings: readonly FusedFiling[],
  ): FusedReceipt {
    return this.journal.receiveProcessed(message, result, policy, (messageId) => {
      const filed = new Map<string, FiledPart>();
      for (const f of filings) {
        // An ordered queue holding a delivery already (a retrying head): this one waits behind it.
        if (f.ordered && this.journal.queueHolds(message.channel, f.destination)) continue;
        const done = this.tryFiling(withMessageId(f.filing, messageId));
        if (done) filed.set(f.destination, sentOf(done));
      }
      return filed;
    });
  }

  /** Files, then marks the delivery SENT with the filing's response: one transaction, both or neither. */
  fileAndMarkSent(filing: Filing, sent: Omit<SentResult, 'response' | 'detail'>): Filed {
    const filed = this.file(filing);
    this.journal.sent({ ...sent, ...sentOf(filed) });
    return filed;
  }

  /**
   * A filing in a savepoint of its own: null when the store refused it (undone alone; the refusal is
   * the worker's to journal). A locked database fails the whole write, which is retried.
   */
  private tryFiling(filing: Filing): Filed | null {
    try {
      return this.inSavepoint(filing);
    } catch (error) {
      if (isTransientDbError(error)) throw error;
      return null;
    }
  }

  private file(filing: Filing): Filed {
    return callModule(this.modules(), filing.module, filing.method, filing.args) as Filed;
  }
}

/**
 * The filing with the message's id put where it names. In place: the arguments are this write's own
 * (a structured clone in the writer thread; built for this one message by the channel inline).
 */
function withMessageId(filing: FusedFiling['filing'], messageId: number): Filing {
  const path = filing.messageIdPath;
  let at = filing.args as unknown as Record<string | number, unknown>;
  for (const key of path.slice(0, -1)) at = at[key] as Record<string | number, unknown>;
  at[path.at(-1)!] = messageId;
  return filing;
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
