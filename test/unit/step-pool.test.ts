// The step pool (channels/step-pool.ts): steps whose spec allows it run on worker threads, with the
// same outputs and the same errors as on the main thread.
import assert from 'node:assert/strict';
import { threadId } from 'node:worker_threads';
import { builtinRegistry } from '../../channels/builtins.ts';
import { StepPool } from '../../channels/step-pool.ts';
import { OncoError } from '../../config/errors.ts';
import type { StepInput } from '../../transformers/contract.ts';
import { renderPdf } from '../../transformers/pdf-render.ts';
import { writeFrcp } from '../../transformers/cda-frcp.ts';
import { fullForm } from '../fixtures/documents/rcp-forms.ts';
import { mainOnlyTestStep, poolTestStep } from '../support/pool-steps.ts';

const input = (text: string): StepInput => ({
  content: Buffer.from(text),
  contentType: 'text/plain',
  meta: { n: 1 },
});

describe('step pool (channels/step-pool.ts)', () => {
  const registry = builtinRegistry().register(poolTestStep, mainOnlyTestStep);
  let pool: StepPool | undefined;
  afterEach(async () => {
    await pool?.close();
    pool = undefined;
  });

  it('runs a step on the main thread while the pool is cold, then on a pool thread', async () => {
    pool = new StepPool(2);
    const step = pool.createStep(registry, { type: 'test-pool', suffix: '?' });
    const cold = await step(input('a'));
    assert.equal(cold!.meta.threadId, threadId, 'a cold pool made the message wait');
    await pool.settled();
    const outs = await Promise.all(['a', 'b', 'c', 'd'].map((t) => step(input(t))));
    assert.deepEqual(
      outs.map((o) => o!.content.toString()),
      ['A?', 'B?', 'C?', 'D?'],
    );
    for (const o of outs) {
      assert.ok(Buffer.isBuffer(o!.content));
      assert.equal(o!.contentType, 'text/plain');
      assert.equal(o!.meta.n, 1);
      assert.notEqual(o!.meta.threadId, threadId, 'ran on the main thread');
    }
    assert.equal(await step(input('drop')), null);
  });

  it('gives the same PDF bytes as the main thread, and leaves the caller its input', async () => {
    pool = new StepPool(1);
    const cda = Buffer.from(writeFrcp(fullForm));
    const step = pool.createStep(registry, { type: 'cda-pdf' });
    await step({ content: cda, contentType: 'application/hl7-cda+xml', meta: {} });
    await pool.settled();
    const out = await step({ content: cda, contentType: 'application/hl7-cda+xml', meta: {} });
    assert.ok(out!.content.equals(renderPdf(cda)));
    assert.equal(cda.toString(), writeFrcp(fullForm), 'the input was moved away');
  });

  it('rebuilds a step’s failure on the main thread: its code, message, hint and retryability', async () => {
    pool = new StepPool(1);
    const step = pool.createStep(registry, { type: 'test-pool' });
    await step(input('warm'));
    await pool.settled();
    await assert.rejects(
      async () => step(input('boom')),
      (e: unknown) => {
        assert.ok(e instanceof OncoError);
        assert.equal(e.code, 'TEST_POOL_REFUSED');
        assert.equal(e.message, 'the pool step refused "boom"');
        assert.equal(e.hint, 'send something else');
        assert.equal(e.protocol.retryable, false);
        return true;
      },
    );
    const pdf = pool.createStep(registry, { type: 'cda-pdf' });
    await pdf(input(writeFrcp(fullForm)));
    await pool.settled();
    await assert.rejects(async () => pdf(input('<html xmlns="urn:hl7-org:v3"/>')), {
      code: 'PDF_CDA_INCOMPLETE',
    });
  });

  it('keeps on the main thread a step whose spec does not allow otherwise, and every step with 0 threads', async () => {
    pool = new StepPool(2);
    const mainOnly = await pool.createStep(registry, { type: 'test-main-only' })(input('x'));
    assert.equal(mainOnly!.meta.threadId, threadId);
    const none = new StepPool(0);
    const onMain = await none.createStep(registry, { type: 'test-pool' })(input('x'));
    assert.equal(onMain!.meta.threadId, threadId);
    await none.close();
  });

  it('refuses wrong options at creation, on the main thread, as without a pool', () => {
    pool = new StepPool(2);
    assert.throws(() => pool!.createStep(registry, { type: 'test-pool', suffix: { not: 'a string' } }), {
      code: 'OPTIONS_INVALID',
    });
  });

  it('refuses a step once closed, with a retryable error', async () => {
    pool = new StepPool(1);
    const step = pool.createStep(registry, { type: 'test-pool' });
    await step(input('x'));
    await pool.close();
    await assert.rejects(
      async () => step(input('y')),
      (e: unknown) => {
        assert.ok(e instanceof OncoError);
        assert.equal(e.code, 'STEP_POOL_CLOSED');
        assert.equal(e.protocol.retryable, true);
        return true;
      },
    );
  });
});
