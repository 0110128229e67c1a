// A destination whose behaviour each test scripts: records what it got, fails when told to.
import { SendError, type DestinationSpec, type Outbound } from '../../connectors/contract.ts';
import type { StepSpec } from '../../transformers/contract.ts';

export interface Sink {
  received: Outbound[];
  /** Decides per attempt: undefined sends, an Error fails. */
  behaviour: (msg: Outbound) => Error | undefined | Promise<Error | undefined>;
  spec: DestinationSpec<Record<string, unknown>>;
}

export function makeSink(type = 'test-sink'): Sink {
  const sink: Sink = {
    received: [],
    behaviour: () => undefined,
    spec: {
      kind: 'destination',
      type,
      summary: 'test destination',
      schema: { properties: {} },
      create: () => ({
        send: async (msg) => {
          const e = await sink.behaviour(msg);
          if (e) throw e;
          sink.received.push(msg);
          return { response: Buffer.from(`ok ${msg.idempotencyKey}`), responseType: 'text/plain' };
        },
      }),
    },
  };
  return sink;
}

export const transient = (text = 'peer unreachable'): SendError =>
  new SendError('TEST_DOWN', text, { retryable: true });
export const permanent = (text = 'peer refused content'): SendError =>
  new SendError('TEST_REFUSED', text, { retryable: false });

/** A step that upper-cases text, fails on "boom" and filters "drop": the three outcomes of processing. */
export const upperStep: StepSpec<Record<string, unknown>> = {
  kind: 'step',
  type: 'test-upper',
  summary: 'test step',
  schema: { properties: {} },
  create: () => (input) => {
    const text = input.content.toString('utf8');
    if (text.includes('boom')) throw new Error('the test step exploded on purpose');
    if (text.includes('drop')) return null;
    return { ...input, content: Buffer.from(text.toUpperCase()), meta: { ...input.meta, upper: true } };
  },
};

/** A source that never produces anything itself: tests push through engine.dispatch(). */
export const idleSource = {
  kind: 'source' as const,
  type: 'test-idle',
  summary: 'test source',
  schema: { properties: {} },
  create: () => ({ start: async () => undefined, stop: async () => undefined }),
};
