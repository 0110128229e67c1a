// Options read once (issue 9, item 6): the registry validates, defaults and freezes a component's
// options from its spec's schema when it builds the component.
import assert from 'node:assert/strict';
import Type from 'typebox';
import { Registry } from '../../channels/registry.ts';
import { builtinRegistry } from '../../channels/builtins.ts';
import { OncoError } from '../../config/errors.ts';
import { Default, readOptions, type OptionsOf, type StepSpec } from '../../transformers/contract.ts';

const schema = Type.Object({
  prefix: Default(Type.String({ minLength: 1 }), '>'),
  repeat: Default(Type.Integer({ minimum: 1 }), 2),
  tags: Default(Type.Array(Type.String()), []),
  note: Type.Optional(Type.String()),
});
type EchoOptions = OptionsOf<typeof schema>;

function echoRegistry(seen: EchoOptions[]): Registry {
  const spec: StepSpec<EchoOptions> = {
    kind: 'step',
    type: 'echo',
    summary: 'test step',
    schema,
    create(options) {
      seen.push(options);
      // Typed from the schema: defaulted options are never undefined here.
      const prefix: string = options.prefix.repeat(options.repeat);
      return (input) => ({ ...input, content: Buffer.concat([Buffer.from(prefix), input.content]) });
    },
  };
  return new Registry().register(spec);
}

describe('registry: component options read once', () => {
  it('fills the defaults of the schema and hands the component frozen options', async () => {
    const seen: EchoOptions[] = [];
    const config = { type: 'echo', repeat: 3 };
    const step = echoRegistry(seen).createStep(config);
    const out = await step({ content: Buffer.from('x'), contentType: 'text/plain', meta: {} });
    assert.equal(out?.content.toString(), '>>>x');
    const [options] = seen;
    assert.deepEqual(options, { repeat: 3, prefix: '>', tags: [] });
    assert.ok(Object.isFrozen(options) && Object.isFrozen(options!.tags), 'frozen, nested values too');
    assert.throws(() => (options!.tags as string[]).push('x'), TypeError);
    assert.deepEqual(config, { type: 'echo', repeat: 3 }, 'the channel configuration is left as written');
  });

  it('refuses options the schema refuses, naming the component and the problem', () => {
    assert.throws(
      () => echoRegistry([]).createStep({ type: 'echo', repeat: 0, colour: 'red' }),
      (e: unknown) =>
        e instanceof OncoError &&
        e.code === 'OPTIONS_INVALID' &&
        /step "echo"/.test(e.message) &&
        /repeat/.test(e.message) &&
        /colour/.test(e.message),
    );
  });

  it('reads options the same way for code that builds a component without a registry', () => {
    const input = { repeat: 4 };
    const options = readOptions(schema, input);
    assert.deepEqual(options, { repeat: 4, prefix: '>', tags: [] });
    assert.ok(Object.isFrozen(options));
    assert.deepEqual(input, { repeat: 4 }, 'the input is left as given');
    assert.throws(
      () => readOptions(schema, { repeat: 0 }),
      (e: unknown) => e instanceof OncoError && e.code === 'OPTIONS_INVALID' && /repeat/.test(e.message),
    );
  });

  it('builds a shipped component from its TypeBox schema: the match filter with its defaults', async () => {
    const keep = builtinRegistry().createStep({ type: 'match', pattern: '^MSH' });
    const drop = builtinRegistry().createStep({ type: 'match', pattern: '^MSH', keep: 'non-matching' });
    const input = { content: Buffer.from('MSH|^~\\&|'), contentType: 'application/hl7-v2', meta: {} };
    assert.equal(await keep(input), input);
    assert.equal(await drop(input), null);
  });
});
