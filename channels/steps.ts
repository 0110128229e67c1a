// Running a chain of steps, and turning any failure into a sentence the message browser can show.
import {
  inMemory,
  partsOf,
  stagedOf,
  stagedOutput,
  withParts,
  type StagedFile,
  type StageSource,
  type Step,
  type StepContext,
  type StepInput,
} from '../transformers/contract.ts';
import { renderError } from '../config/errors.ts';

/** Where steps stage large content, and how a staged file nobody journals is dropped (BlobFiles). */
export interface Stager {
  /** Content above this many bytes is staged as a file. */
  readonly threshold: number;
  stage(from: StageSource): Promise<StagedFile>;
  discard(staged: StagedFile): Promise<void>;
}

/**
 * Runs steps in order; `null` from any step means filtered, and the chain stops there. With a
 * `stager`, steps stage large content as files: the one the output is (`stagedOf`) and those it
 * names (`partsOf`) are left for the caller to journal, every other is deleted here, whatever the
 * outcome. An output that is bytes above the threshold is staged too, so that the journal keeps
 * it as a file like the content it received. Without a stager, in memory.
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
  const kept = new Set<StagedFile>();
  try {
    for (const step of steps) {
      if (current === null) break;
      current = await step(current, ctx);
    }
    const bytes = stager && steps.length && current ? heldBytes(current, input) : undefined;
    if (current && bytes !== undefined && bytes.length > stager!.threshold) {
      const { contentType, meta } = current;
      current = withParts(
        stagedOutput(await ctx.stage({ buffer: bytes }), { contentType, meta }),
        partsOf(current),
      );
    }
    if (current) {
      const staged = stagedOf(current);
      if (staged) kept.add(staged);
      for (const part of partsOf(current)) kept.add(part.staged);
    }
    return current;
  } finally {
    for (const staged of made) if (!kept.has(staged)) await stager!.discard(staged);
  }
}

/**
 * The bytes an output holds in memory, if that is what it is: not a staged file, not the received
 * file passed on (the journal references those), nor content that would load a file to be read.
 */
function heldBytes(out: StepInput, input: StepInput): Buffer | undefined {
  if (stagedOf(out) !== undefined || (out.file !== undefined && out.file === input.file)) return undefined;
  const content = Object.getOwnPropertyDescriptor(out, 'content');
  return content && 'value' in content ? (content.value as Buffer) : undefined;
}

/**
 * The text journaled for a failure, which MSA-3, ERR-8, `.error.txt`, the dashboard and `status` all
 * show: the catalogue's one rendering (`CODE: message (at …). Hint: …`).
 */
export const describeError = renderError;
