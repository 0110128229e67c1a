// Running a chain of steps, and turning any failure into a sentence the message browser can show.
import type { Step, StepInput } from '../transformers/contract.ts';
import { renderError } from '../config/errors.ts';

/** Runs steps in order; `null` from any step means filtered, and the chain stops there. */
export async function runSteps(steps: readonly Step[], input: StepInput): Promise<StepInput | null> {
  let current: StepInput | null = input;
  for (const step of steps) {
    if (current === null) break;
    current = await step(current);
  }
  return current;
}

/**
 * The text journaled for a failure, which MSA-3, ERR-8, `.error.txt`, the dashboard and `status` all
 * show: the catalogue's one rendering (`CODE: message (at …). Hint: …`).
 */
export const describeError = renderError;
