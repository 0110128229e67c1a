// A transformer step is a pure function of a message's content: no socket, no database, no clock
// it did not receive. The engine runs it in the processing stage and journals what it returns.

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
export class StepError extends Error {
  readonly code: string;
  readonly hint: string | undefined;
  constructor(code: string, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'StepError';
    this.code = code;
    this.hint = options.hint;
  }
}

export interface StepSpec<O = Record<string, unknown>> {
  kind: 'step';
  type: string;
  summary: string;
  schema: JsonSchema;
  create(options: O): Step;
}
