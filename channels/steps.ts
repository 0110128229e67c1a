// Running a chain of steps, and turning any failure into a sentence the message browser can show.
import type { Step, StepInput } from '../transformers/contract.ts';

/** Runs steps in order; `null` from any step means filtered, and the chain stops there. */
export async function runSteps(steps: readonly Step[], input: StepInput): Promise<StepInput | null> {
  let current: StepInput | null = input;
  for (const step of steps) {
    if (current === null) break;
    current = await step(current);
  }
  return current;
}

/** `CODE: message (hint: …) ← cause`, from any thrown value. */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const e = error as Error & { code?: unknown; hint?: unknown };
  const code = typeof e.code === 'string' ? `${e.code}: ` : '';
  const hint = typeof e.hint === 'string' && e.hint ? ` (hint: ${e.hint})` : '';
  const cause = e.cause instanceof Error ? ` ← ${e.cause.message}` : '';
  return `${code}${e.message}${hint}${cause}`;
}
