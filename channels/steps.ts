// Running a chain of steps, and turning any failure into a sentence the message browser can show.
import {
  inMemory,
  stagedOf,
  type StagedFile,
  type StageSource,
  type Step,
  type StepContext,
  type StepInput,
} from '../transformers/contract.ts';
import { renderError } from '../config/errors.ts';

/** Where steps stage large content, and how a staged file nobody journals is dropped (BlobFiles). */
export interface Stager {
  stage(from: StageSource): Promise<StagedFile>;
  discard(staged: StagedFile): Promise<void>;
}

/**
 * Runs steps in order; `null` from any step means filtered, and the chain stops there. With a
 * `stager`, steps stage large content as files: the one the output is (`stagedOf`) is left for the
 * caller to journal, every other is deleted here, whatever the outcome. Without one, in memory.
 */
export async function runSteps(
  steps: readonly Step[],
  input: StepInput,
  stager?: Stager,
): Promise<StepInput | null> {
  const made: StagedFile[] = [];
  const ctx: StepContext = stager
    ? {
        stage: async (from) => {
          const staged = await stager.stage(from);
          if (staged.file !== undefined) made.push(staged);
          return staged;
        },
      }
    : inMemory;
  let current: StepInput | null = input;
  let kept: StagedFile | undefined;
  try {
    for (const step of steps) {
      if (current === null) break;
      current = await step(current, ctx);
    }
    kept = current ? stagedOf(current) : undefined;
    return current;
  } finally {
    for (const staged of made) if (staged !== kept) await stager!.discard(staged);
  }
}

/**
 * The text journaled for a failure, which MSA-3, ERR-8, `.error.txt`, the dashboard and `status` all
 * show: the catalogue's one rendering (`CODE: message (at …). Hint: …`).
 */
export const describeError = renderError;
