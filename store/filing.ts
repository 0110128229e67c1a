// Store writers (destinations that file into the core store) name their filing as data: a writer
// module method and its plain arguments. The writer runs it in the transaction that marks the
// delivery SENT, which is what makes store filing exactly-once (README, delivery rule 4).
import { callModule } from './group-commit.ts';
import type { Journal, SentResult } from './journal.ts';

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

export class Deliveries {
  constructor(
    private readonly journal: Journal,
    private readonly modules: () => object,
  ) {}

  /** Files, then marks the delivery SENT with the filing's response: one transaction, both or neither. */
  fileAndMarkSent(filing: Filing, sent: Omit<SentResult, 'response' | 'detail'>): Filed {
    const filed = callModule(this.modules(), filing.module, filing.method, filing.args) as Filed;
    this.journal.sent({
      ...sent,
      response:
        filed.response === undefined
          ? undefined
          : { content: Buffer.from(JSON.stringify(filed.response)), contentType: 'application/json' },
      detail: filed.detail,
    });
    return filed;
  }
}
