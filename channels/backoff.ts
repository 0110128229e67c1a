// Exponential backoff with jitter: spreads the retries of many deliveries that failed together.
// The policy's defaults live in the configuration schema only (config/schema.ts, `retry`).
import type { RetryPolicy } from '../config/config.ts';

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
