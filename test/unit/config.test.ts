import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { ValidateFunction } from 'ajv';
import YAML from 'yaml';
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
  validateConfig(loadConfig(dir, env), builtinRegistry(), env).map(formatProblem);

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

  it('documents routes of the directory: a way among four, a mailbox for mssante, a channel that exists', () => {
    const dir = configDir({
      'directory.yaml': [
        'establishments:',
        "  - { finess: '310000001', name: A, documents: { way: sftp-push, channel: documents-sftp-a } }",
        "  - { finess: '310000002', name: B, documents: { way: mssante } }",
        "  - { finess: '310000003', name: C, documents: { way: fax } }",
      ].join('\n'),
    });
    const problems = problemsOf(dir).join('\n');
    assert.match(
      problems,
      /310000001 takes its documents through channel "documents-sftp-a", which does not exist/,
    );
    assert.match(problems, /establishments\/1\/documents.*mailbox/);
    assert.match(problems, /establishments\/2\/documents\/way/);
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

const cli = (args: string[]) =>
  spawnSync(process.execPath, [path.resolve('bin/onco-relay.mjs'), ...args], {
    encoding: 'utf8',
    timeout: 30_000,
  });

describe('configuration tools', function () {
  this.timeout(60_000);

  it('schema: every shipped file, ${NAME:-default} values included, validates against `onco-relay schema`', () => {
    const r = cli(['schema']);
    assert.equal(r.status, 0, r.stderr);
    const schema = JSON.parse(r.stdout) as { $defs: Record<string, object> };
    const ajv = new Ajv2020({ allErrors: true, strict: false });
    const channel = ajv.compile(schema);
    const check = (validate: ValidateFunction, file: string) => {
      const data: unknown = YAML.parse(fs.readFileSync(file, 'utf8'));
      assert.ok(validate(data), `${file}: ${JSON.stringify(validate.errors, null, 1)}`);
    };
    const dir = path.resolve('config/channels');
    const shipped = fs.readdirSync(dir).filter((n) => n.endsWith('.yaml'));
    assert.ok(shipped.length >= 3);
    for (const name of shipped) check(channel, path.join(dir, name));
    check(ajv.compile(schema.$defs.engine!), path.resolve('config/engine.yaml'));
    check(ajv.compile(schema.$defs.directory!), path.resolve('config/directory.yaml'));
    // Interpolation widens a value's type, it does not switch checking off.
    const mllp = (port: string) =>
      YAML.parse(
        `id: x\nsource: { type: mllp-listener, port: ${port} }\ndestinations: [{ name: d, type: file-writer, path: o }]`,
      ) as unknown;
    assert.ok(channel(mllp('"${PORT:-2575}"')), JSON.stringify(channel.errors));
    assert.equal(channel(mllp('soon')), false);
    assert.equal(channel(mllp('70000')), false);
  });

  it('validate: two listeners on one port, the dashboard port included; sftp-drop sources share the SFTP server', () => {
    const channel = (id: string, source: string) =>
      `id: ${id}\nsource: ${source}\ndestinations: [{ name: d, type: file-writer, path: out-${id} }]\n`;
    const dir = configDir({
      'engine.yaml': 'http:\n  port: 18080\n',
      'channels/a.yaml': channel('a', '{ type: mllp-listener, port: 12575 }'),
      'channels/b.yaml': channel('b', '{ type: mllp-listener, port: "${B_PORT:-12575}" }'),
      'channels/c.yaml': channel('c', '{ type: http-listener, port: 18080, bind: 0.0.0.0 }'),
      'channels/d.yaml': channel('d', '{ type: sftp-drop, folder: identity, port: 12222 }'),
      'channels/e.yaml': channel('e', '{ type: sftp-drop, folder: pathology, port: 12222 }'),
      'channels/f.yaml': channel('f', '{ type: mllp-listener }'),
      'channels/g.yaml': channel('g', '{ type: mllp-listener, port: 12575, bind: 10.1.2.3 }'),
    });
    const problems = problemsOf(dir, { ONCO_MLLP_PORT: '12222' });
    const clash = (file: string, what: RegExp) =>
      assert.ok(
        problems.some((p) => p.startsWith(`${dir}/channels/${file}:2: /source/port: port `) && what.test(p)),
        `${file} ${what}:\n${problems.join('\n')}`,
      );
    clash('b.yaml', /port 12575 is already taken by channel a \(mllp-listener\) in .*a\.yaml/);
    clash('c.yaml', /port 18080 is already taken by the dashboard/);
    clash('f.yaml', /port 12222 is already taken by channel d \(sftp-drop\)/);
    assert.equal(problems.length, 3, problems.join('\n'));
  });

  it('validate: a YAML syntax error is one problem with its line, not a cascade', () => {
    const dir = configDir({
      'channels/a.yaml': [
        'id: a',
        'source:',
        '  type: folder',
        '   path: in',
        'destinations:',
        '  - name: "out',
        '    type: file-writer',
      ].join('\n'),
      'engine.yaml': 'http:\n  port: [8080\n',
    });
    const r = cli(['validate', '--config', dir]);
    assert.equal(r.status, 1);
    const lines = r.stderr.trim().split('\n');
    assert.match(lines[0]!, /engine\.yaml:3: \/: YAML syntax: /);
    assert.match(lines[1]!, /channels\/a\.yaml:3: \/: YAML syntax: Nested mappings/);
    assert.match(lines[2]!, /^2 problem\(s\) in /);
  });

  it('docs: channel settings, destination frame and the keys of rules:, every option described', () => {
    const r = cli(['docs']);
    assert.equal(r.status, 0, r.stderr);
    const rows = r.stdout
      .split('\n')
      .filter((l) => /^\| `/.test(l))
      .map((l) => l.split(' | '));
    const option = (row: string[]) => /`([^`]+)`/.exec(row[0]!)![1]!;
    const undescribed = rows.filter((row) => !row[3]!.replace(/\|$/, '').trim()).map(option);
    assert.deepEqual(undescribed, [], 'options without a description');
    const documented = new Set(rows.map(option));
    for (const key of [
      'storage',
      'dedup',
      'queueLimit',
      'enabled',
      'queue',
      'concurrency',
      'retry.maxAttempts',
      'retry.jitter',
      'rules.acceptTestIns',
      'rules.strictTraitsMatch',
      'rules.nearMatchThreshold',
      'http.port',
      'store.pruneAfterDays',
      'defaults.retry.maxAttempts',
    ])
      assert.ok(documented.has(key), `${key} is not in onco-relay docs`);
    assert.match(
      r.stdout,
      /## Channel settings[\s\S]*\| `storage` \| "all" \\\| "production" \\\| "metadata" \| `"all"` \|/,
    );
  });
});
