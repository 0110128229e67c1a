// The shipped `pathology` and `molecular` channels (config/channels/*.yaml, as shipped) in a real
// engine, fed by OpenSSH `sftp` on the built-in SFTP drop: our HPRIM Santé, HPRIM Médecin, CR-ACP,
// molecular ORU and PDF + sidecar fixtures filed on the patient; a report before its identity is
// filed when the identity arrives (shipped identity channel, no human act); hostile files refused
// with the reason in the journal, the ACK file and /error, nothing filed.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import ssh2 from 'ssh2';
import YAML from 'yaml';
import { addAccount, startEngine, tempDir, until, type Harness } from '../support/engine-harness.ts';
import { openssh } from '../support/openssh-sftp.ts';
import { freePort } from '../support/ports.ts';
import { setEnv } from '../support/env.ts';
import { a28 } from '../support/pam.ts';
import { parseAck } from '../../transformers/hl7v2-ack.ts';

const root = path.resolve(import.meta.dirname, '../..');
const fixtures = path.join(root, 'test/fixtures/clinical');
const shipped = (id: string): object =>
  YAML.parse(fs.readFileSync(path.join(root, 'config/channels', `${id}.yaml`), 'utf8')) as object;

describe('shipped pathology and molecular channels (real engine, OpenSSH sftp)', function () {
  this.timeout(120_000);
  let h: Harness;
  let dir: string;
  let key: string;
  let port: number;
  let restoreEnv: () => void = () => undefined;

  beforeEach(async () => {
    dir = tempDir('onco-doc-channels-');
    key = path.join(dir, 'id');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', '', '-f', key]);
    port = await freePort();
    // The shipped files read these: the test's port, and the kit's test INS OID accepted.
    restoreEnv = setEnv({ ONCO_SFTP_PORT: String(port), ONCO_ACCEPT_TEST_INS: 'true' });
    // A lone half of a pair waits 5 s here (10 min as shipped), so that its expiry is seen.
    const pathology = shipped('pathology') as { source: Record<string, unknown> };
    pathology.source.pairWaitMs = 5000;
    h = await startEngine({
      channels: [pathology, shipped('molecular'), shipped('identity-feed-sftp')],
      directory: {
        establishments: [
          { finess: '310000001', name: 'CHU Demo' },
          { finess: '310000002', name: 'Laboratoire ACP Demo', kind: 'pathology-lab' },
        ],
      },
      start: false,
    });
    const parsed = ssh2.utils.parseKey(fs.readFileSync(`${key}.pub`, 'utf8'));
    if (parsed instanceof Error) throw parsed;
    await addAccount(h.engine.store, {
      login: 'chu',
      role: 'establishment',
      finess: '310000001',
      publicKeys: [{ algorithm: parsed.type, key: parsed.getPublicSSH() }],
    });
    await h.engine.start();
  });

  afterEach(async () => {
    await h.stop();
    restoreEnv();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const put = async (folder: string, files: Array<[string, Buffer | string]>): Promise<void> => {
    const commands = files.map(([name, content]) => {
      const local = path.join(dir, name);
      fs.writeFileSync(local, content);
      return `put ${local} /in/${folder}/${name}`;
    });
    const run = await openssh(port, 'chu', key, commands);
    assert.equal(run.code, 0, run.stderr);
  };

  const fetch = async (remote: string): Promise<string | null> => {
    const local = path.join(dir, `fetched-${path.basename(remote)}`);
    fs.rmSync(local, { force: true });
    const got = await openssh(port, 'chu', key, [`get ${remote} ${local}`]);
    return got.code === 0 ? fs.readFileSync(local, 'utf8') : null;
  };

  const fixture = (name: string) => fs.readFileSync(path.join(fixtures, name));

  const camille = async () =>
    (
      await h.engine.store.write.vigilance.applyIdentity(
        {
          birthName: 'FICTIF',
          givenNames: ['Camille', 'Marie'],
          firstGivenName: 'Camille',
          birthDate: '1979-03-28',
          sex: 'F',
          identifiers: [{ finess: '310000001', ipp: 'IPP-000123' }],
        },
        { messageId: null, insOids: [] },
      )
    ).patientId;

  it('files every fixture format dropped over SFTP on the patient, PDF and sidecar paired', async () => {
    const patientId = await camille();
    await put('pathology', [
      ['report.hpr', fixture('report.hpr')],
      ['report-medecin.txt', fixture('report-medecin.txt')],
      ['cr-acp.xml', fixture('cr-acp.xml')],
      // A JSON sidecar first, its PDF after; an HL7 sidecar after its PDF.
      ['scan-1.json', fixture('report.json')],
      ['scan-1.pdf', fixture('report.pdf')],
      ['scan-2.pdf', Buffer.concat([fixture('report.pdf'), Buffer.from('\n')])],
      ['scan-2.hl7', fixture('report-sidecar.hl7')],
    ]);
    await put('molecular', [['molecular-oru.hl7', fixture('molecular-oru.hl7')]]);
    const docs = await until(() => {
      const list = h.engine.store.documents.listOfPatient(patientId);
      return list.length === 6 ? list : null;
    }, 'six documents on the patient');
    assert.deepEqual(docs.map((d) => d.source).sort(), [
      'cr-acp.xml',
      'molecular-oru.hl7',
      'report-medecin.txt',
      'report.hpr',
      'scan-1.pdf',
      'scan-2.pdf',
    ]);
    assert.deepEqual(
      docs.filter((d) => d.source.startsWith('scan-')).map((d) => d.hasPdf),
      [true, true],
    );
    const molecular = docs.find((d) => d.kind === 'molecular')!;
    assert.deepEqual(
      h.engine.store.documents.get(molecular.id)!.variants.map((v) => v.gene),
      ['EGFR', 'KRAS'],
    );
    // The message browser's patient filter finds the messages that carried them.
    const carried = h.engine.store.messageSearch
      .search({ patient: patientId })
      .items.map((m) => m.meta.fileName);
    assert.equal(carried.length, 6, carried.join(' '));
    const ack = await until(() => fetch('/out/ack/molecular-oru.hl7.ack.hl7'), 'the ACK file');
    assert.equal(parseAck(Buffer.from(ack)).code, 'AA');
    assert.equal(await fetch('/error/scan-1.pdf.error.txt'), null);
  });

  it('sends a PDF whose sidecar never comes to /error, saying what is missing', async () => {
    await put('pathology', [['lonely.pdf', fixture('report.pdf')]]);
    const note = await until(() => fetch('/error/lonely.pdf.error.txt'), 'the note of the lone PDF');
    assert.match(note, /lonely\.json or lonely\.hl7 did not arrive/);
    assert.notEqual(await fetch('/error/lonely.pdf'), null, 'the PDF itself beside its note');
  });

  it('files a report that came before its identity as soon as the identity arrives, with no human act', async () => {
    await put('pathology', [['early.hpr', fixture('report.hpr')]]);
    const [waiting] = await until(() => {
      const items = h.engine.store.documents.listWaiting().items;
      return items.length === 1 ? items : null;
    }, 'the report waiting for its patient');
    await put('identity', [
      [
        'camille.hl7',
        a28(
          {
            ipp: 'IPP-000123',
            finess: '310000001',
            birthName: 'FICTIF',
            given: 'CAMILLE',
            birthDate: '19790328',
            sex: 'F',
          },
          'ID-1',
        ),
      ],
    ]);
    const doc = await until(() => {
      const d = h.engine.store.documents.get(waiting!.id)!;
      return d.match === 'filed' ? d : null;
    }, 'the report filed');
    assert.equal(doc.matchRule, 'ipp-known');
    assert.equal(
      h.engine.store.patients.resolveIdentifier({ finess: '310000001', ipp: 'IPP-000123' }),
      doc.patientId,
    );
  });

  it('deletes at start the document files of filings that never committed, and keeps the filed ones', async () => {
    const patientId = await camille();
    await put('molecular', [['molecular-oru.hl7', fixture('molecular-oru.hl7')]]);
    const [doc] = await until(() => {
      const list = h.engine.store.documents.listOfPatient(patientId);
      return list.length === 1 ? list : null;
    }, 'the result filed');
    const kept = h.engine.store.documents.content(doc!.id, 'original')!.file;
    await h.stop();
    // What a crash between placing a document's bytes and the commit naming them leaves behind.
    const documents = path.join(h.dataDir, 'documents');
    const orphan = path.join(documents, 'f'.repeat(64));
    fs.writeFileSync(orphan, 'bytes of a filing that never committed');
    fs.writeFileSync(path.join(documents, '.staging', 'half-written'), 'half');

    h = await startEngine({ channels: [], dataDir: h.dataDir, configDir: h.configDir });
    assert.equal(fs.existsSync(orphan), false, 'the orphan is gone');
    assert.deepEqual(fs.readdirSync(path.join(documents, '.staging')), []);
    assert.deepEqual(fs.readFileSync(kept), fixture('molecular-oru.hl7'));
  });

  it('refuses hostile files with the reason in the journal, the ACK file and /error, and files nothing', async () => {
    const laughs =
      '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "ha"><!ENTITY b "&a;&a;&a;&a;">]><ClinicalDocument>&b;</ClinicalDocument>';
    const xxe =
      '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><ClinicalDocument>&x;</ClinicalDocument>';
    const deep = `<ClinicalDocument>${'<a>'.repeat(5000)}${'</a>'.repeat(5000)}</ClinicalDocument>`;
    const badBase64 =
      'MSH|^~\\&|LAB|LABO|ONCO-RELAY|DCC|20260115103000||ORU^R01^ORU_R01|X1|P|2.5|||||FRA|UNICODE UTF-8\r' +
      'PID|1||IPP-1^^^CHU&310000001&M^PI||FICTIF^Camille^^^^^L||19790328|F\r' +
      'OBX|1|ED|60568-3^CR^LN||^TEXT^XML^Base64^%%%notbase64%%%||||||F\r';
    await put('pathology', [
      ['laughs.xml', laughs],
      ['xxe.xml', xxe],
      ['deep.xml', deep],
      ['bad-base64.hl7', badBase64],
      ['fake.json', fixture('report.json')],
      ['fake.pdf', 'this is not a PDF'],
    ]);
    const expected: Array<[string, RegExp]> = [
      ['laughs.xml', /XML_DTD_REFUSED/],
      ['xxe.xml', /XML_DTD_REFUSED/],
      ['deep.xml', /XML_TOO_DEEP/],
      ['bad-base64.hl7', /REPORT_BAD_BASE64/],
      ['fake.pdf', /REPORT_NOT_PDF/],
    ];
    for (const [name, code] of expected) {
      const note = await until(() => fetch(`/error/${name}.error.txt`), `the /error note of ${name}`);
      assert.match(note, code, name);
    }
    const ack = await until(() => fetch('/out/ack/bad-base64.hl7.ack.hl7'), 'the ACK file');
    assert.equal(parseAck(Buffer.from(ack)).code, 'AE');
    assert.match(ack, /REPORT_BAD_BASE64/);
    const { items } = h.engine.store.messageSearch.search({ channel: 'pathology', status: 'ERROR' });
    assert.equal(items.length, 5);
    assert.equal(h.engine.store.documents.listWaiting().items.length, 0, 'nothing filed');

    // 100 MB of XML: taken and journaled (as a file beside the journal), then refused by the XML
    // module for its size before it is read, the reason in the journal and /error, nothing filed.
    const big = path.join(dir, 'big.xml');
    fs.writeFileSync(big, `<ClinicalDocument>${'x'.repeat(100 * 1024 * 1024)}</ClinicalDocument>`);
    const run = await openssh(port, 'chu', key, [`put ${big} /in/pathology/big.xml`]);
    assert.equal(run.code, 0, run.stderr);
    const note = await until(() => fetch('/error/big.xml.error.txt'), 'the /error note of big.xml');
    assert.match(note, /XML_TOO_LARGE/);
    const refused = await until(
      () =>
        h.engine.store.messageSearch
          .search({ channel: 'pathology', status: 'ERROR' })
          .items.find((m) => m.meta.fileName === 'big.xml'),
      'big.xml in the journal',
    );
    assert.match(refused.error ?? '', /XML_TOO_LARGE.*104857637 bytes/s);
    assert.equal(h.engine.store.journal.content(refused.id, 'raw')?.blob?.size, 104857637, 'kept as a blob');
    assert.equal(h.engine.store.documents.listWaiting().items.length, 0, 'nothing filed');
  });
});
