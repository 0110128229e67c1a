// The shipped MSSanté mailbox as the appliance runs it: config/channels/mss-pathology.yaml and the
// documents channel it feeds (pathology.yaml), the shipped directory. A lab of the directory sends a
// CR-ACP by mail with swaks; the report is filed by the documents flow, with the mail as its provenance.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { startEngine, tempDir, until, type Harness } from '../support/engine-harness.ts';

const shipped = (name: string): object =>
  YAML.parse(fs.readFileSync(path.join('config', name), 'utf8')) as object;

describe('shipped MSSanté config: pathology@ feeds the pathology flow', function () {
  this.timeout(60_000);
  let dir: string;
  let harness: Harness;
  const saved = { ...process.env };

  before(async function () {
    dir = tempDir('mss-shipped-');
    // Free ports for the shared SMTP and SFTP servers; the kit's CR-ACP carries a test INS.
    Object.assign(process.env, { ONCO_SMTP_PORT: '0', ONCO_SFTP_PORT: '0', ONCO_ACCEPT_TEST_INS: 'true' });
    harness = await startEngine({
      dataDir: path.join(dir, 'data'),
      directory: shipped('directory.yaml'),
      channels: ['mss-pathology.yaml', 'pathology.yaml', 'molecular.yaml', 'identity-feed-mllp.yaml'].map(
        (f) =>
          f === 'identity-feed-mllp.yaml'
            ? { ...shipped(`channels/${f}`), source: { type: 'mllp-listener', port: 0 } }
            : shipped(`channels/${f}`),
      ),
    });
  });

  after(async function () {
    process.env = saved;
    await harness?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a CR-ACP mailed by the pathology lab of the directory is filed, the mail as its provenance', async function () {
    const detail = harness.engine.status().find((c) => c.id === 'mss-pathology')?.source.detail ?? '';
    const port = Number(/:(\d+) /.exec(detail)?.[1]);
    const r = await new Promise<{ code: number; out: string }>((resolve) =>
      execFile(
        'swaks',
        [
          '--hide-all',
          '--server',
          `127.0.0.1:${port}`,
          '--from',
          'anapath@labo-demo.mssante.fr',
          '--to',
          'pathology@dcc-demo.mssante.fr',
          '--attach-type',
          'text/xml',
          '--attach-name',
          'cr-acp.xml',
          '--attach',
          '@test/fixtures/clinical/cr-acp.xml',
        ],
        { timeout: 30_000 },
        (err, stdout, stderr) => resolve({ code: err ? 1 : 0, out: stdout + stderr }),
      ),
    );
    assert.equal(r.code, 0, r.out);
    const { documents } = harness.engine.store;
    const waiting = await until(
      () => documents.listWaiting().items[0],
      'the report filed (waiting for its patient)',
    );
    const doc = documents.get(waiting.id)!;
    assert.equal(doc.kind, 'pathology');
    assert.equal(doc.versions[0]!.provenance.mail, 'anapath@labo-demo.mssante.fr');
    assert.equal(doc.versions[0]!.provenance.channel, 'pathology');
  });
});
