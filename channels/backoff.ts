// Exponential backoff with jitter: spreads the retries of many deliveries that failed together.
// The policy's defaults live in the configuration schema only (config/schema.ts, `retry`).
import type { RetryPolicy } from '../config/config.ts';
import type { Logger } from '../connectors/contract.ts';
import { describeError } from './steps.ts';

/** Delay before attempt `attempt + 1`, given that `attempt` attempts (1-based) have failed. */
export function backoffDelay(
  policy: RetryPolicy,
  attempt: number,
  random: () => number = Math.random,
): number {
  const base = Math.min(
    policy.maxDelayMs,
    policy.initialDelayMs * policy.multiplier ** Math.max(0, attempt - 1),
  );
  const spread = base * policy.jitter;
  return Math.max(0, Math.round(base - spread + random() * 2 * spread));
}

const journalRetry: RetryPolicy = {
  maxAttempts: Infinity,
  initialDelayMs: 500,
  maxDelayMs: 60_000,
  multiplier: 2,
  jitter: 0.2,
};

/**
 * Pacing after failed journal writes (disk full, I/O error): the work is kept and tried again like
 * any retry, with a growing delay, and each step is logged once, never once per message.
 */
export class JournalBackoff {
  private failures = 0;

  constructor(
    private readonly log: Logger,
    private readonly where: string,
    private readonly random: () => number = Math.random,
  ) {}

  /** Records a failure; returns how long to wait before trying again. */
  failed(error: unknown): number {
    this.failures++;
    const delayMs = backoffDelay(journalRetry, this.failures, this.random);
    this.log.error(
      {
        code: 'JOURNAL_WRITE_FAILED',
        where: this.where,
        failures: this.failures,
        delayMs,
        err: describeError(error),
      },
      `${this.where}: the journal cannot be written; the work is kept and tried again after the delay (hint: free disk space or fix the storage, nothing else is needed)`,
    );
    return delayMs;
  }

  succeeded(): void {
    if (this.failures === 0) return;
    this.log.info(
      { where: this.where, failures: this.failures },
      `${this.where}: the journal is writable again`,
    );
    this.failures = 0;
  }

  get failing(): boolean {
    return this.failures > 0;
  }
}
