// A mail into the MSSanté inbox, end to end in one engine: smtp-inbox journals it, mail-attachments
// reads its IHE_XDM.ZIP and its HL7 attachment, attachment-dispatch hands each document to the
// channel of its kind with the mail as provenance; a hostile archive leaves the mail in ERROR with
// the archive's code, and nothing reaches the flows.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { builtinRegistry } from '../../channels/builtins.ts';
import { startEngine, tempDir, until, type Harness } from '../support/engine-harness.ts';
import { idleSource, makeSink, type Sink } from '../support/sink.ts';
import { xdmZip, zip } from '../support/xdm-fixture.ts';
import { generate, sha256Of } from '../support/large-file.ts';
import { plainTransport } from '../support/smtp-send.ts';

const MiB = 1024 * 1024;
const CDA = fs.readFileSync(path.join(import.meta.dirname, '../fixtures/clinical/cr-acp.xml'));
const PDF = fs.readFileSync(path.join(import.meta.dirname, '../fixtures/clinical/report.pdf'));
const ADT = Buffer.from(
  'MSH|^~\\&|GAM|CHU|DCC|ONCO|20260101||ADT^A28^ADT_A05|77|P|2.5\rPID|1||123^^^CHU&310000001&ISO^PI\r',
);

describe('MSSanté inbox flow: mail → attachments → the flows of their kinds', function () {
  this.timeout(60_000);
  let dir: string;
  let harness: Harness;
  let sink: Sink;
  let port: number;

  before(async function () {
    dir = tempDir('mss-flow-');
    sink = makeSink();
    const sinkChannel = (id: string) => ({
      id,
      source: { type: 'test-idle' },
      destinations: [{ name: 'out', type: 'test-sink' }],
    });
    harness = await startEngine({
      dataDir: path.join(dir, 'data'),
      registry: builtinRegistry().register(idleSource, sink.spec),
      directory: {
        establishments: [
          {
            finess: '310000002',
            name: 'Labo',
            kind: 'pathology-lab',
            mssante: ['anapath@labo-demo.mssante.fr'],
          },
        ],
      },
      channels: [
        {
          id: 'mss-pathology',
          source: {
            type: 'smtp-inbox',
            mailbox: 'pathology@dcc.test',
            port: 0,
            allowFrom: 'labs',
            // A 50 MB attachment is a mail of about 68 MB once in base64.
            maxMessageBytes: 100 * MiB,
          },
          steps: [{ type: 'mail-attachments', defaultKind: 'pathology' }],
          destinations: [
            {
              name: 'documents',
              type: 'attachment-dispatch',
              routes: { pathology: 'pathology', identity: 'identity' },
            },
          ],
        },
        sinkChannel('pathology'),
        sinkChannel('identity'),
      ],
    });
    const detail = harness.engine.status().find((c) => c.id === 'mss-pathology')?.source.detail ?? '';
    port = Number(/:(\d+) /.exec(detail)?.[1]);
  });

  after(async function () {
    await harness?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const send = (
    messageId: string,
    attachments: Array<{ filename: string; content: Buffer } | { filename: string; path: string }>,
    from = 'anapath@labo-demo.mssante.fr',
  ) =>
    plainTransport(port).sendMail({
      from,
      to: 'pathology@dcc.test',
      subject: 'XDM/1.0/DDM+CR DUPONT Marie 19790328',
      messageId: `<${messageId}>`,
      text: 'CR joint',
      attachments,
    });

  it('each document reaches the channel of its kind, with the mail as provenance', async function () {
    const archive = await xdmZip([
      {
        file: 'DOC0001.XML',
        mimeType: 'text/xml',
        content: CDA,
        uniqueId: '1.2.250.1.999.9.1',
        typeCode: '11526-1',
        formatCode: 'urn:asip:ci-sis:cr-acp:2010',
        title: 'CR ACP',
      },
    ]);
    await send('flow-1@labo', [
      { filename: 'IHE_XDM.ZIP', content: archive },
      { filename: 'CR.pdf', content: PDF },
      { filename: 'adt.hl7', content: ADT },
    ]);
    await until(() => sink.received.length >= 2, 'both documents handed over');
    const cda = sink.received.find((m) => m.meta.fileName === 'DOC0001.XML')!;
    const adt = sink.received.find((m) => m.meta.fileName === 'adt.hl7')!;
    assert.ok(cda && adt);
    assert.deepEqual(cda.content, CDA);
    assert.equal(cda.contentType, 'application/xml');
    assert.equal(cda.meta.mailMessageId, 'flow-1@labo');
    assert.equal(cda.meta.mailFrom, 'anapath@labo-demo.mssante.fr');
    assert.equal(cda.meta.xdmUniqueId, '1.2.250.1.999.9.1');
    assert.equal(cda.meta.fromChannel, 'mss-pathology');
    assert.equal(adt.contentType, 'application/hl7-v2');
    const journal = harness.engine.store.journal;
    assert.equal(journal.message(cda.messageId)?.channel, 'pathology');
    assert.equal(journal.message(adt.messageId)?.channel, 'identity');
    // The readable copy beside the archive is not filed a second time.
    assert.equal(sink.received.filter((m) => m.contentType === 'application/pdf').length, 0);
  });

  it('a 50 MB attachment sent by nodemailer reaches its flow byte-identical, one blob shared with the step output, none left in staging', async function () {
    this.timeout(600_000);
    const file = path.join(dir, 'big.pdf');
    await generate(file, 50 * MiB);
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, Buffer.from('%PDF-1.4\n'), 0, 9, 0);
    fs.closeSync(fd);
    const digest = await sha256Of(file);
    // Nothing on the way may read a blob whole: not the step, not the dispatch, not the flow.
    const { blobs } = harness.engine.store;
    const read = blobs.read.bind(blobs);
    const wholeReads: number[] = [];
    blobs.read = (blob) => (wholeReads.push(blob.size), read(blob));
    const info = await send('big@labo', [{ filename: 'big.pdf', path: file }]).catch((error: unknown) => {
      blobs.read = read;
      throw error;
    });
    assert.match(info.response, /^250 /);
    const got = await until(
      () => sink.received.find((m) => m.meta.mailMessageId === 'big@labo'),
      'the PDF handed to pathology',
      300_000,
    ).finally(() => (blobs.read = read));
    assert.deepEqual(wholeReads, []);
    const { store } = harness.engine;
    // The document, as journaled by the channel it went to: a blob whose bytes are the attachment's.
    assert.equal(store.journal.message(got.messageId)?.channel, 'pathology');
    const raw = store.journal.content(got.messageId, 'raw')!;
    assert.equal(raw.blob?.digest, digest);
    assert.equal(raw.blob?.size, 50 * MiB);
    assert.equal(await sha256Of(store.blobs.path(digest)), digest);
    assert.equal(got.file?.digest, digest, 'the destination reads the file, not a Buffer');
    // The mail is a file too; the step's output, the one document of the mail, is the very blob the
    // flow journaled (no zip of it, no second staging); the intermediate staged copies are gone.
    const mail = store.journal.message(Number(got.meta.fromMessage))!;
    assert.ok(store.journal.content(mail.id, 'raw')?.blob, 'the mail kept as a file');
    const transformed = store.journal.content(mail.id, 'transformed')!;
    assert.equal(transformed.contentType, 'application/pdf');
    assert.equal(transformed.blob?.digest, digest, 'the step output is the attachment, handed on as is');
    assert.deepEqual(fs.readdirSync(path.join(dir, 'data', 'blobs', '.staging')), []);
  });

  it('a zip bomb leaves the mail in ERROR with its code, and nothing reaches the flows', async function () {
    const before = sink.received.length;
    const bomb = await zip([
      { name: 'IHE_XDM/SUBSET01/METADATA.XML', content: Buffer.from('<x/>') },
      { name: 'IHE_XDM/SUBSET01/DOC0001.XML', content: Buffer.alloc(20 * 1024 * 1024) },
    ]);
    const info = await send('bomb@labo', [{ filename: 'IHE_XDM.ZIP', content: bomb }]);
    assert.match(info.response, /^250 /);
    const journal = harness.engine.store.journal;
    // Message ids are small here: look through them for the mail.
    const id = await until(() => {
      for (let i = 1; i < 50; i++) {
        const m = journal.message(i);
        if (m?.meta.messageIdHeader === 'bomb@labo' && m.status === 'ERROR') return m;
      }
      return undefined;
    }, 'the mail in ERROR');
    assert.match(id.error ?? '', /ZIP_RATIO/);
    assert.equal(sink.received.length, before);
  });

  it('a sender outside the directory is refused at RCPT TO', async function () {
    await assert.rejects(
      send('stranger@x', [{ filename: 'adt.hl7', content: ADT }], 'someone@elsewhere.test'),
      (e: { responseCode?: number }) => e.responseCode === 550,
    );
  });

  it('validate: a route to a channel that does not exist is a configuration problem, with its path', async function () {
    await assert.rejects(
      startEngine({
        start: false,
        registry: builtinRegistry().register(idleSource, sink.spec),
        channels: [
          {
            id: 'mss-x',
            source: { type: 'test-idle' },
            steps: [{ type: 'mail-attachments', defaultKind: 'pathology' }],
            destinations: [{ name: 'documents', type: 'attachment-dispatch', routes: { pathology: 'nope' } }],
          },
        ],
      }),
      /\/destinations\/0\/routes\/pathology.*no channel has id "nope"/s,
    );
  });
});
