// The plain filter: keep (or drop) a message when its text matches a regular expression.
import type { StepSpec } from './contract.ts';

export interface MatchOptions {
  pattern: string;
  flags: string;
  keep: 'matching' | 'non-matching';
}

export const matchStepSpec: StepSpec<MatchOptions> = {
  kind: 'step',
  type: 'match',
  summary:
    'Filter: keeps the messages whose content (read as UTF-8) matches `pattern`, or those that do not.',
  schema: {
    required: ['pattern'],
    properties: {
      pattern: { type: 'string', description: 'JavaScript regular expression.' },
      flags: {
        type: 'string',
        default: '',
        pattern: '^[imsu]*$',
        description: 'Regular expression flags: i (ignore case), m, s, u.',
      },
      keep: {
        enum: ['matching', 'non-matching'],
        default: 'matching',
        description: 'Which messages go on; the others are FILTERED.',
      },
    },
  },
  create: (o) => {
    const re = new RegExp(o.pattern, o.flags);
    return (input) => (re.test(input.content.toString('utf8')) === (o.keep === 'matching') ? input : null);
  },
};
