// Steps the step pool tests run on its threads (channels/step-pool.ts): a pool thread imports this
// module by its URL and finds the spec by type, as it does for the product's own steps.
import { threadId } from 'node:worker_threads';
import Type from 'typebox';
import { Default, StepError, type OptionsOf, type StepSpec } from '../../transformers/contract.ts';

const schema = Type.Object({
  suffix: Default(Type.String({ description: 'appended to the content' }), '!'),
});

/**
 * Upper-cases the content and appends `suffix`; says in meta which thread ran it; filters "drop";
 * refuses "boom" with a StepError (not retryable), as a packaging step refuses a document.
 */
export const poolTestStep: StepSpec<OptionsOf<typeof schema>> = {
  kind: 'step',
  type: 'test-pool',
  summary: 'test step that may run in the step pool',
  schema,
  offThread: import.meta.url,
  create: (o) => (input) => {
    const text = input.content.toString('utf8');
    if (text.includes('boom')) {
      throw new StepError('TEST_POOL_REFUSED', `the pool step refused "${text}"`, {
        hint: 'send something else',
        protocol: { retryable: false },
      });
    }
    if (text.includes('drop')) return null;
    return {
      ...input,
      content: Buffer.from(`${text.toUpperCase()}${o.suffix}`),
      meta: { ...input.meta, threadId },
    };
  },
};

/** The same step, without leave to go off-thread: it runs on the main thread whatever the pool. */
export const mainOnlyTestStep: StepSpec<OptionsOf<typeof schema>> = {
  ...poolTestStep,
  type: 'test-main-only',
  offThread: undefined,
};

let kept: Buffer | undefined;

/** Returns the same bytes every time, as a step that caches its rendering does. */
export const cachingTestStep: StepSpec<OptionsOf<typeof schema>> = {
  ...poolTestStep,
  type: 'test-pool-caching',
  create: () => (input) => {
    kept ??= Buffer.from('x'.repeat(16 * 1024));
    return { ...input, content: kept, meta: { ...input.meta, threadId } };
  },
};
