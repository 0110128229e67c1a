// The young-generation collection that large content asks for as it is written (runtime/buffer-reclaim.ts):
// forced by us, so told apart from the collections V8 starts by itself.
import assert from 'node:assert/strict';
import { constants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { reclaimAfter } from '../../runtime/buffer-reclaim.ts';
import { until } from '../support/engine-harness.ts';

const forcedMinor = (e: PerformanceEntry): boolean => {
  const detail = (e as PerformanceEntry & { detail: { kind: number; flags: number } }).detail;
  return (
    detail.kind === constants.NODE_PERFORMANCE_GC_MINOR &&
    (detail.flags & constants.NODE_PERFORMANCE_GC_FLAGS_FORCED) !== 0
  );
};

describe('buffer reclaim', () => {
  it('forces a young-generation collection once 4 MiB of content is written, and leaves no gc global', async () => {
    const forced: PerformanceEntry[] = [];
    const observer = new PerformanceObserver((list) => forced.push(...list.getEntries().filter(forcedMinor)));
    observer.observe({ entryTypes: ['gc'] });
    try {
      reclaimAfter(4 * 1024 * 1024);
      await until(() => forced.length > 0, 'a forced young-generation collection');
      assert.equal((globalThis as { gc?: unknown }).gc, undefined);
    } finally {
      observer.disconnect();
    }
  });
});
