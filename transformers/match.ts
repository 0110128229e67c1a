// The plain filter: keep (or drop) a message when its text matches a regular expression.
import Type from 'typebox';
import { Default, type OptionsOf, type StepSpec } from './contract.ts';

const schema = Type.Object({
  pattern: Type.String({ description: 'JavaScript regular expression.' }),
  flags: Default(
    Type.String({ pattern: '^[imsu]*$', description: 'Regular expression flags: i (ignore case), m, s, u.' }),
    '',
  ),
  keep: Default(
    Type.Enum(['matching', 'non-matching'], {
      description: 'Which messages go on; the others are FILTERED.',
    }),
    'matching',
  ),
});

export type MatchOptions = OptionsOf<typeof schema>;

export const matchStepSpec: StepSpec<MatchOptions> = {
  kind: 'step',
  type: 'match',
  summary:
    'Filter: keeps the messages whose content (read as UTF-8) matches `pattern`, or those that do not.',
  schema,
  create: (o) => {
    const re = new RegExp(o.pattern, o.flags);
    return (input) => (re.test(input.content.toString('utf8')) === (o.keep === 'matching') ? input : null);
  },
};
