// Inside a step pool thread (channels/step-pool.ts): builds each step once from its spec module,
// type and options, and runs every input it is sent on it, replying with the output or the error as
// a value.
import { parentPort } from 'node:worker_threads';
import { OncoError } from '../config/errors.ts';
import { errorToValue, nameThisThread } from '../store/writer-thread.ts';
import { inMemory, readOptions, type Step, type StepSpec } from '../transformers/contract.ts';
import type { TObject } from 'typebox';
import { type PoolLoad, type PoolLoaded, type PoolReply, type PoolTask } from './step-pool.ts';

nameThisThread('onco-steps');
const port = parentPort!;
const steps = new Map<string, Promise<Step>>();

async function load(task: PoolTask): Promise<Step> {
  const exports = (await import(task.module)) as Record<string, unknown>;
  const spec = Object.values(exports).find(
    (v): v is StepSpec => (v as StepSpec | null)?.kind === 'step' && (v as StepSpec).type === task.type,
  );
  if (spec === undefined)
    throw new OncoError('STEP_POOL_NO_SPEC', { params: { type: task.type, module: task.module } });
  return spec.create(readOptions(spec.schema as TObject, task.options));
}

function stepOf(task: PoolTask): Promise<Step> {
  const key = JSON.stringify([task.module, task.type, task.options]);
  let step = steps.get(key);
  if (step === undefined) {
    step = load(task);
    steps.set(key, step);
  }
  return step;
}

port.on('message', (task: PoolTask | PoolLoad) => {
  if (task.kind === 'load') {
    // A module that fails to load is reported by the first step run from it.
    void import(task.module)
      .catch(() => undefined)
      .then(() => port.postMessage({ loaded: task.module } satisfies PoolLoaded));
    return;
  }
  void (async (): Promise<void> => {
    let reply: PoolReply;
    const transfer: ArrayBuffer[] = [];
    try {
      const step = await stepOf(task);
      const { content } = task.input;
      // Staged content stays in memory here: a file staged on this thread could not be handed over.
      const output = await step(
        { ...task.input, content: Buffer.from(content.buffer, content.byteOffset, content.byteLength) },
        inMemory,
      );
      if (output === null) reply = { id: task.id, ok: true, output: null };
      else {
        // A copy moved, never the step's own bytes: a step may keep what it returned (a cache).
        const bytes = new Uint8Array(output.content);
        transfer.push(bytes.buffer);
        reply = { id: task.id, ok: true, output: { ...output, content: bytes } };
      }
    } catch (error) {
      reply = { id: task.id, ok: false, error: errorToValue(error) };
    }
    port.postMessage(reply, transfer);
  })();
});
