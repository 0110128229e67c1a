import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { tempDir, until } from '../support/engine-harness.ts';
import { a28, type PamPatient } from '../support/pam.ts';
import { Store } from '../../store/store.ts';

describe('onco-relay import identities', function () {
  this.timeout(30_000);

  it('files every good identity of the files and folders given, and names each refused message', () => {
    const data = tempDir();
    const src = tempDir();
    const p = (i: number, birthDate = '19600101', finess = '310000001') =>
      a28(
        {
          ipp: `I${i}`,
          finess,
          birthName: `NOM${String.fromCharCode(65 + i)}`,
          given: 'ANNE',
          birthDate,
          sex: 'F',
        },
        `C${i}`,
      );
    fs.writeFileSync(path.join(src, 'a.hl7'), p(1) + p(2, '19601399') + p(3));
    fs.mkdirSync(path.join(src, 'more'));
    fs.writeFileSync(path.join(src, 'more', 'b.hl7'), p(4) + p(5, '19600101', '999999999'));
    fs.writeFileSync(path.join(src, 'more', 'c.txt'), 'not an HL7 message\n');
    fs.writeFileSync(path.join(src, 'more', 'd.hl7'), p(6));
    const r = spawnSync(
      process.execPath,
      [
        path.resolve('bin/onco-relay.mjs'),
        'import',
        'identities',
        path.join(src, 'a.hl7'),
        path.join(src, 'more'),
        '--data',
        data,
      ],
      { encoding: 'utf8' },
    );
    assert.equal(r.status, 1, 'a refused message makes the exit code 1');
    assert.match(r.stdout, /4 identities filed, 3 refused, from 4 file\(s\)/);
    assert.match(r.stdout, /refused: .*a\.hl7 message 2: .*PID-7/);
    assert.match(r.stdout, /refused: .*b\.hl7 message 2: .*FINESS 999999999/);
    assert.match(r.stdout, /refused: .*c\.txt: HL7_\w+: /);
    assert.match(r.stderr, /4\/4 files/);
    const store = new Store({ dataDir: data });
    for (const ipp of ['I1', 'I3', 'I4', 'I6'])
      assert.notEqual(store.patients.resolveIdentifier({ finess: '310000001', ipp }), null, ipp);
    assert.equal(store.patients.resolveIdentifier({ finess: '310000001', ipp: 'I2' }), null);
    const imported = store.audit.search({ action: 'identity-import' }).items[0];
    assert.deepEqual(imported?.detail, { files: 4, messages: 6, filed: 4, refused: 3 });
    store.close();
  });

  describe('in a process of its own, with a small young generation', function () {
    this.timeout(120_000);
    // Whatever a failed test left waiting on its pipe.
    const started: number[] = [];
    afterEach(() => {
      for (const pid of started.splice(0)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // Ended as it should.
        }
      }
    });

    /**
     * The command started on a named pipe, which it waits on until the test writes to it: the
     * import is in progress for as long as the test needs, with no timing involved.
     */
    async function importFromPipe() {
      const dir = tempDir();
      const pipe = path.join(dir, 'feed.hl7');
      assert.equal(spawnSync('mkfifo', [pipe]).status, 0);
      const command = spawn(
        process.execPath,
        [path.resolve('bin/onco-relay.mjs'), 'import', 'identities', pipe, '--data', tempDir()],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stdout = '';
      command.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        command.once('exit', (code, signal) => resolve({ code, signal })),
      );
      const pid = command.pid!;
      started.push(pid);
      const cmdline = (p: string | number) =>
        fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').slice(0, -1);
      const own = cmdline(pid).join(' ');
      // Its child that runs the command, once started (not a copy of itself before the exec; tsx's
      // esbuild service is a child too, where tsx is loaded).
      const child = await until(
        () =>
          fs
            .readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
            .trim()
            .split(' ')
            .find((p) => {
              const args = p === '' ? [] : cmdline(p);
              return args.some((a) => a.endsWith('onco-relay.mjs')) && args.join(' ') !== own;
            }),
        'the import process',
      );
      started.push(Number(child));
      return { pid, pipe, child: Number(child), args: cmdline(child), exited, stdout: () => stdout };
    }

    it("files through a child started with --max-semi-space-size=2, whose exit code and output are the command's", async () => {
      const run = await importFromPipe();
      assert.ok(run.args.includes('--max-semi-space-size=2'), run.args.join(' '));
      assert.deepEqual(run.args.slice(-5, -1), ['import', 'identities', run.pipe, '--data']);
      const person: PamPatient = {
        ipp: 'F1',
        finess: '310000001',
        birthName: 'TUBE',
        given: 'ANNE',
        birthDate: '19600101',
        sex: 'F',
      };
      await fs.promises.writeFile(run.pipe, a28(person, 'F1'));
      assert.deepEqual(await run.exited, { code: 0, signal: null });
      assert.match(run.stdout(), /^1 identities filed, 0 refused, from 1 file\(s\)/);
    });

    it('stops the import when the command is sent SIGTERM, then ends by that signal', async () => {
      const run = await importFromPipe();
      process.kill(run.pid, 'SIGTERM');
      assert.deepEqual(await run.exited, { code: null, signal: 'SIGTERM' });
      assert.equal(fs.existsSync(`/proc/${run.child}`), false, 'the import process ended with the command');
    });
  });
});
