// A transformer step is a pure function of a message's content: no socket, no database, no clock
// it did not receive. The engine runs it in the processing stage and journals what it returns.
import { OncoError, type ProtocolStatus } from '../config/errors.ts';

/** A JSON Schema (draft 2020-12 subset understood by ajv): drives validation, editor hints and docs. */
export type JsonSchema = { [keyword: string]: unknown };

export type MetaValue = string | number | boolean | null;

export interface StepInput {
  content: Buffer;
  contentType: string;
  meta: Record<string, MetaValue>;
}

/** `null` means the step filtered the message out: it is journaled as FILTERED and goes nowhere. */
export type StepOutput = StepInput | null;

export interface Step {
  (input: StepInput): StepOutput | Promise<StepOutput>;
}

/** A step failed on this content; `hint` tells the user what to change. Journaled as the message's error. */
export class StepError extends OncoError {
  constructor(
    code: string,
    message: string,
    options: { hint?: string; location?: string; cause?: unknown; protocol?: ProtocolStatus } = {},
  ) {
    super(code, { ...options, message });
  }

  /** The same failure as a step's: code, hint, location and protocol kept; `prefix` says which part. */
  static from(error: OncoError, prefix = ''): StepError {
    const { code, hint, location, protocol } = error;
    return new StepError(code, `${prefix}${error.message}`, { hint, location, protocol, cause: error });
  }
}

export interface StepSpec<O = Record<string, unknown>> {
  kind: 'step';
  type: string;
  summary: string;
  schema: JsonSchema;
  create(options: O): Step;
}
