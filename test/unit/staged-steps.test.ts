// Steps that stage their output as a file (StepContext.stage, stagedOutput): the chain's result
// keeps the file the output is and those it names (withParts), and every other file a step staged
// is deleted, whatever the outcome; an output of bytes above the threshold is staged as well.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { runSteps } from '../../channels/steps.ts';
import { BlobFiles } from '../../store/blob-files.ts';
import {
  partsOf,
  stagedOf,
  stagedOutput,
  withParts,
  type Step,
  type StepInput,
} from '../../transformers/contract.ts';
import { tempDir } from '../support/engine-harness.ts';

const MiB = 1024 * 1024;
const THRESHOLD = 64 * 1024;

async function* chunks(n: number, fill: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < n; i++) yield Buffer.alloc(MiB, fill);
}

/** Stages 2 MiB it keeps as its output and 1 MiB it drops. */
const staging: Step = async (input, ctx) => {
  await ctx!.stage({ stream: chunks(1, 1) });
  const staged = await ctx!.stage({ stream: chunks(2, 2) });
  return stagedOutput(staged, { contentType: 'application/x-test', meta: input.meta });
};

describe('steps that stage their output', function () {
  let dir: string;
  let blobs: BlobFiles;
  const input: StepInput = { content: Buffer.from('in'), contentType: 'text/plain', meta: {} };
  const stagingFiles = () => fs.readdirSync(path.join(dir, '.staging'));

  beforeEach(function () {
    dir = tempDir('staged-steps-');
    blobs = new BlobFiles(dir, THRESHOLD);
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('the output is the staged file, read in chunks; the file the step dropped is deleted', async function () {
    const out = (await runSteps([staging, (x) => x], input, blobs))!;
    const staged = stagedOf(out);
    assert.ok(staged?.file);
    assert.equal(out.file?.path, staged.file);
    assert.equal(staged.size, 2 * MiB);
    assert.deepEqual(stagingFiles(), [path.basename(staged.file)]);
    let seen = 0;
    for await (const chunk of out.file!.chunks()) seen += chunk.length;
    assert.equal(seen, 2 * MiB);
  });

  it('a later step that replaces the content drops the staged file; a failing step drops them all', async function () {
    const replaced = (await runSteps(
      [staging, (x) => ({ ...x, content: Buffer.from('new') })],
      input,
      blobs,
    ))!;
    assert.equal(stagedOf(replaced), undefined);
    assert.equal(replaced.content.toString(), 'new');
    assert.deepEqual(stagingFiles(), []);
    await assert.rejects(
      runSteps(
        [
          staging,
          () => {
            throw new Error('refused');
          },
        ],
        input,
        blobs,
      ),
      /refused/,
    );
    assert.deepEqual(stagingFiles(), []);
  });

  it('content at most the threshold stays bytes; without a stager a step stages in memory', async function () {
    const small: Step = async (x, ctx) =>
      stagedOutput(
        await ctx!.stage({
          stream: (async function* () {
            yield Buffer.from('tiny');
          })(),
        }),
        x,
      );
    const out = (await runSteps([small], input, blobs))!;
    assert.equal(out.content.toString(), 'tiny');
    assert.equal(stagedOf(out), undefined);
    const inMemory = (await runSteps([staging], input))!;
    assert.equal(inMemory.content.length, 2 * MiB);
    assert.equal(inMemory.file, undefined);
    assert.deepEqual(stagingFiles(), []);
  });

  it('an output of bytes above the threshold is staged: the journal keeps it as a file', async function () {
    const big = Buffer.alloc(THRESHOLD + 1, 7);
    const out = (await runSteps([(x) => ({ ...x, content: big })], input, blobs))!;
    const staged = stagedOf(out);
    assert.ok(staged?.file, 'staged as a file');
    assert.deepEqual(fs.readFileSync(staged.file), big);
    assert.deepEqual(out.content, big);
    const atThreshold = (await runSteps([(x) => ({ ...x, content: big.subarray(1) })], input, blobs))!;
    assert.equal(stagedOf(atThreshold), undefined);
    assert.deepEqual(stagingFiles(), [path.basename(staged.file)]);
  });

  it('keeps the staged files an output names as parts, and drops them when a later step replaces it', async function () {
    /** Stages a 2 MiB part (kept: the output names it) and a 1 MiB file it does not name. */
    const withPart: Step = async (x, ctx) => {
      await ctx!.stage({ stream: chunks(1, 1) });
      const part = await ctx!.stage({ stream: chunks(2, 2) });
      return withParts({ ...x, content: Buffer.from(part.digest) }, [
        { staged: part, contentType: 'application/pdf' },
      ]);
    };
    const out = (await runSteps([withPart], input, blobs))!;
    const [part] = partsOf(out);
    assert.equal(part?.contentType, 'application/pdf');
    assert.equal(part.staged.size, 2 * MiB);
    assert.deepEqual(stagingFiles(), [path.basename(part.staged.file)]);
    await blobs.discard(part.staged);

    await runSteps([withPart, (x) => ({ ...x, content: Buffer.from('replaced') })], input, blobs);
    assert.deepEqual(stagingFiles(), [], 'a replaced output names no part');
  });
});
