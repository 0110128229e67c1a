// Lint rules: the type-aware basics plus the layering of DESIGN.md (imports point down).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const layer = (from, forbidden) => ({
  files: [`${from}/**/*.ts`],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: forbidden.map((f) => ({
          // The error catalogue is the one module of config/ every layer may use (see its header).
          group: [`**/${f}/*`, `../${f}/*`, ...(f === 'config' ? ['!**/config/errors.ts'] : [])],
          message: `${from}/ must not import ${f}/ (DESIGN.md: imports point down)`,
        })),
      },
    ],
  },
});

export default tseslint.config(
  { ignores: ['node_modules/**', 'data/**', 'coverage/**', 'test-artifacts/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        Buffer: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setImmediate: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        URL: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  layer('transformers', ['channels', 'connectors', 'store', 'config', 'dashboard', 'bin']),
  layer('store', ['channels', 'connectors', 'transformers', 'config', 'dashboard', 'bin']),
  layer('config', ['channels', 'connectors', 'transformers', 'store', 'dashboard', 'bin']),
  layer('connectors', ['channels', 'config', 'dashboard', 'bin']),
  layer('channels', ['dashboard', 'bin']),
  layer('dashboard', ['bin', 'connectors', 'transformers']),
  {
    // Imported by connectors and store alike (the folder fsync): a leaf, so that importing it brings
    // nothing of the store along.
    files: ['store/sync-directory.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['.*', '../*'],
              message: 'store/sync-directory.ts is a leaf: it imports nothing of ours',
            },
          ],
        },
      ],
    },
  },
  {
    // How this process runs (V8's memory): below every layer, so any may import runtime/, and it
    // imports nothing of ours.
    files: ['runtime/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['.*', '../*'], message: 'runtime/ is a leaf: it imports nothing of ours' }] },
      ],
    },
  },
  {
    // The shapes two layers exchange as plain data (the store writes them, transformers read them):
    // every layer may import contracts/, so it imports nothing and holds types only.
    files: ['contracts/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['*'], message: 'contracts/ is a leaf: it imports nothing' }] },
      ],
    },
  },
  {
    // Imported by every layer, so it must import nothing: a leaf cannot make a cycle or a layering hole.
    files: ['config/errors.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['*'], message: 'config/errors.ts is a leaf: it imports nothing' }] },
      ],
    },
  },
);
