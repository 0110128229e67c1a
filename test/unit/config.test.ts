import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../../config/config.ts';
import { formatProblem, interpolate } from '../../config/loader.ts';
import { builtinRegistry } from '../../channels/builtins.ts';
import { validateConfig } from '../../channels/validate.ts';
import { tempDir } from '../support/engine-harness.ts';

function configDir(files: Record<string, string>): string {
  const dir = tempDir('onco-config-');
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

const problemsOf = (dir: string, env: NodeJS.ProcessEnv = {}): string[] =>
  validateConfig(loadConfig(dir, env), builtinRegistry()).map(formatProblem);

describe('configuration', () => {
  it('interpolates ${NAME}, ${NAME:-default} and $$, and reports a missing variable', () => {
    const missing: string[] = [];
    const out = interpolate('${A}:${B:-8080}:$${C}', { A: 'x' }, (n) => missing.push(n));
    assert.equal(out, 'x:8080:${C}');
    assert.equal(missing.length, 0);
    interpolate('${NOPE}', {}, (n) => missing.push(n));
    assert.deepEqual(missing, ['NOPE']);
  });

  it('grants of the directory: all, or FINESS of the directory only', () => {
    const dir = configDir({
      'directory.yaml': [
        'establishments:',
        "  - { finess: '310000001', name: A }",
        "  - { finess: '310000002', name: L, kind: pathology-lab, reportsFor: ['310000001', '999999999'] }",
        "  - { finess: '310000003', name: M, kind: molecular-lab, reportsFor: all }",
      ].join('\n'),
    });
    assert.deepEqual(
      problemsOf(dir).map((p) => /FINESS \d+/.exec(p)?.[0]),
      ['FINESS 999999999'],
    );
  });

  it('accepts the shipped configuration', () => {
    assert.deepEqual(problemsOf(path.resolve('config'), { ONCO_DATA_DIR: tempDir() }), []);
  });

  it('names file, line, path and fix for each problem, and finds them all at once', () => {
    const dir = configDir({
      'engine.yaml': 'http:\n  port: ${ONCO_TEST_PORT}\n',
      'channels/a.yaml': [
        'id: a',
        'source:',
        '  type: folder',
        '  path: in',
        '  stableMs: soon',
        'destinations:',
        '  - name: out',
        '    type: file-writter',
        '    path: out',
        '  - name: relay',
        '    type: channel-writer',
        '    channel: nowhere',
        '    qeue: ordered',
      ].join('\n'),
    });
    const problems = problemsOf(dir);
    const find = (re: RegExp) =>
      problems.find((p) => re.test(p)) ?? assert.fail(`no problem matching ${re} in\n${problems.join('\n')}`);
    assert.match(find(/ONCO_TEST_PORT/), /engine\.yaml:2: .*fix: export ONCO_TEST_PORT/);
    assert.match(find(/stableMs/), /channels\/a\.yaml:5: \/source\/stableMs: must be integer/);
    assert.match(
      find(/file-writter/),
      /a\.yaml:8: \/destinations\/0\/type: unknown destination type .*fix: use one of .*file-writer/,
    );
    assert.match(find(/qeue/), /a\.yaml:13: \/destinations\/1\/qeue: unknown setting/);
  });

  it('refuses two channels with the same id and a channel writer aimed at no channel', () => {
    const ch = (id: string, target = id) =>
      `id: ${id}\nsource: { type: folder, path: in-${id} }\ndestinations: [{ name: d, type: channel-writer, channel: ${target} }]\n`;
    const problems = problemsOf(
      configDir({ 'channels/a.yaml': ch('a', 'ghost'), 'channels/b.yaml': ch('a') }),
    );
    assert.ok(
      problems.some((p) => /b\.yaml:1: \/id: channel id "a" is already used by/.test(p)),
      problems.join('\n'),
    );
    assert.ok(
      problems.some((p) => /a\.yaml:3: \/destinations\/0\/channel: no channel has id "ghost"/.test(p)),
      problems.join('\n'),
    );
  });
});
