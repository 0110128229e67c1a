// Exponential backoff with jitter: spreads the retries of many deliveries that failed together.
// The policy's defaults live in the configuration schema only (config/schema.ts, `retry`).
import type { RetryPolicy } from '../config/config.ts';
import type { Logger } from '../connectors/contract.ts';
import { describeError } from './steps.ts';
import { OncoError, renderError } from '../config/errors.ts';

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
    const said = new OncoError('JOURNAL_WRITE_FAILED', { params: { where: this.where, delayMs } });
    this.log.error(
      { code: said.code, where: this.where, failures: this.failures, delayMs, err: describeError(error) },
      renderError(said),
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
