// The step pool: CPU-bound steps (a PDF drawn, an XDM zip packed) run on worker threads, so that
// the engine uses every core while its main thread keeps journaling, acknowledging and serving.
// A step runs here only when its spec says it may (`StepSpec.offThread`: it depends on its options
// and its input alone, no store, no clock, no shared state); any other step runs where it always
// did. The pool changes where a step runs, never what the message goes through: the caller awaits
// the result as it awaited the step, so an ordered queue stays ordered, a failure is the step's own
// error (code, hint, retryable) rebuilt on this side, and a channel that stops drains its in-flight
// messages before the engine closes the pool.
//
// Threads start on the first step sent, so an engine without such steps starts none; until one has
// loaded the step's module, the step runs on the main thread, so a cold pool never delays a message.
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { OncoError } from '../config/errors.ts';
import { errorFromValue, type ErrorValue } from '../store/writer-thread.ts';
import type { Step, StepInput, StepSpec } from '../transformers/contract.ts';
import type { ComponentOptions, Registry } from './registry.ts';

/** What a pool thread is asked: run the step of this spec module, type and options on this input. */
export interface PoolTask {
  kind: 'run';
  id: number;
  module: string;
  type: string;
  options: Record<string, unknown>;
  input: PoolInput;
}

/** A step input as it crosses threads: the content as a plain byte array. */
export type PoolInput = Omit<StepInput, 'content'> & { content: Uint8Array };

/** Load a spec module ahead of its first step; answered by `PoolLoaded`. */
export interface PoolLoad {
  kind: 'load';
  module: string;
}

export interface PoolLoaded {
  loaded: string;
}

export type PoolReply =
  { id: number; ok: true; output: PoolInput | null } | { id: number; ok: false; error: ErrorValue };

/** The pool's threads: the machine's cores unless configured (0: every step on the main thread). */
export function poolThreads(configured: number | undefined): number {
  return configured ?? os.availableParallelism();
}

// Pool threads run TypeScript like the rest of the appliance: each registers tsx itself (loader
// hooks are not inherited by workers on Node 20), as the store's writer thread does.
const bootstrap = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))})
  .then(({ register }) => { register(); return import(${JSON.stringify(new URL('./step-pool-worker.ts', import.meta.url).href)}); })`;

interface Thread {
  worker: Worker;
  pending: Map<number, { resolve: (v: PoolInput | null) => void; reject: (e: unknown) => void }>;
  /** Spec modules this thread has imported: steps from them may run here. */
  loaded: Set<string>;
  loading: Set<string>;
  onLoaded: Map<string, () => void>;
}

export class StepPool {
  private readonly threads: Thread[] = [];
  private readonly loads = new Set<Promise<void>>();
  private nextId = 1;
  private closed = false;

  constructor(private readonly size: number) {}

  /**
   * The step a channel runs for `options`: a proxy to the pool when its spec allows it and the pool
   * has threads, the step itself otherwise. Options are checked here, on the main thread, so that a
   * wrong option fails the deploy as it always did. Until a thread has loaded the step's module
   * (the first use starts the threads: with tsx, seconds on a busy machine), the step runs here.
   */
  createStep(registry: Registry, options: ComponentOptions): Step {
    const step = registry.createStep(options);
    const spec: StepSpec<Record<string, unknown>> = registry.step(options.type);
    if (spec.offThread === undefined || this.size === 0) return step;
    const { type, ...own } = options;
    const task = { module: spec.offThread, type, options: own };
    return async (input, ctx) => {
      if (this.closed) throw new OncoError('STEP_POOL_CLOSED');
      const thread = this.threadFor(task.module);
      if (thread === undefined) return step(input, ctx);
      const output = await this.run(thread, { ...task, input });
      if (output === null) return null;
      const { content } = output;
      return { ...output, content: Buffer.from(content.buffer, content.byteOffset, content.byteLength) };
    };
  }

  /** Resolves once every thread started has loaded every module asked of it (for tests). */
  async settled(): Promise<void> {
    while (this.loads.size > 0) await Promise.all(this.loads);
  }

  private run(thread: Thread, task: Omit<PoolTask, 'id' | 'kind'>): Promise<PoolInput | null> {
    const id = this.nextId++;
    // A copy: the caller keeps its input (a retry runs the step again on it).
    const content = new Uint8Array(task.input.content);
    return new Promise((resolve, reject) => {
      thread.pending.set(id, { resolve, reject });
      if (thread.pending.size === 1) thread.worker.ref();
      thread.worker.postMessage(
        { ...task, kind: 'run', id, input: { ...task.input, content } } satisfies PoolTask,
        [content.buffer],
      );
    });
  }

  /** The least busy thread that has loaded `module`; none yet: the threads are started and load it. */
  private threadFor(module: string): Thread | undefined {
    while (this.threads.length < this.size) this.spawn();
    let best: Thread | undefined;
    for (const t of this.threads) {
      if (t.loaded.has(module)) {
        if (best === undefined || t.pending.size < best.pending.size) best = t;
      } else if (!t.loading.has(module)) this.load(t, module);
    }
    return best;
  }

  private load(thread: Thread, module: string): void {
    thread.loading.add(module);
    const done = new Promise<void>((resolve) => {
      thread.onLoaded.set(module, resolve);
    });
    this.loads.add(done);
    void done.then(() => this.loads.delete(done));
    thread.worker.postMessage({ kind: 'load', module } satisfies PoolLoad);
  }

  private spawn(): Thread {
    const thread: Thread = {
      worker: new Worker(bootstrap, { eval: true }),
      pending: new Map(),
      loaded: new Set(),
      loading: new Set(),
      onLoaded: new Map(),
    };
    thread.worker.unref();
    thread.worker.on('message', (r: PoolReply | PoolLoaded) => {
      if ('loaded' in r) {
        thread.loaded.add(r.loaded);
        thread.onLoaded.get(r.loaded)?.();
        return;
      }
      const waiting = thread.pending.get(r.id);
      if (waiting === undefined) return;
      thread.pending.delete(r.id);
      if (thread.pending.size === 0) thread.worker.unref();
      if (r.ok) waiting.resolve(r.output);
      else waiting.reject(errorFromValue(r.error));
    });
    const ended = (cause?: unknown): void => {
      const at = this.threads.indexOf(thread);
      if (at >= 0) this.threads.splice(at, 1);
      for (const loaded of thread.onLoaded.values()) loaded();
      // Retryable: the message stays queued in the journal and runs again on a new thread.
      for (const w of thread.pending.values()) w.reject(new OncoError('STEP_POOL_THREAD_ENDED', { cause }));
      thread.pending.clear();
    };
    thread.worker.on('error', ended);
    thread.worker.on('exit', () => ended());
    this.threads.push(thread);
    return thread;
  }

  /** After the channels have drained: ends the threads. A step sent later is refused. */
  async close(): Promise<void> {
    this.closed = true;
    const threads = this.threads.splice(0);
    await Promise.all(threads.map((t) => t.worker.terminate()));
  }
}
