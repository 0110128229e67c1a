// Large reports (issue 14, the last of item 5): an ORU carrying a 3 MiB PDF in base64, sent over MLLP
// (raw socket), and a 6 MiB PDF dropped with its sidecar over OpenSSH `sftp` on the shipped pathology
// drop. Each is filed byte-identical; the journal's database holds no multi-MiB row (the PDF is a
// journaled part, the report JSON references it by digest); the document's files are hard links to
// the journal's blobs (one inode); pruning removes the journal's names and keeps the documents'; a
// restart's sweeps keep each other's files; the API still shows the transformed stage (curl).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import YAML from 'yaml';
import type { FastifyInstance } from 'fastify';
import { listenDashboard } from '../support/dashboard-listen.ts';
import { frame, MllpFramer } from '../../connectors/mllp-framer.ts';
import { parseAck } from '../../transformers/hl7v2-ack.ts';
import type { ClinicalReport } from '../../transformers/clinical-report.ts';
import { addAccount, startEngine, tempDir, until, type Harness } from '../support/engine-harness.ts';
import { openssh } from '../support/openssh-sftp.ts';
import { freePort } from '../support/ports.ts';
import { setEnv } from '../support/env.ts';
import { oruPatient, oruWithPdf, pdfOf } from '../support/report-oru.ts';
import { keyAccount } from '../support/ssh-account.ts';

const root = path.resolve(import.meta.dirname, '../..');
const MiB = 1024 * 1024;
const run = promisify(execFile);
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const operator = { login: 'oper1', password: 'oper-pass-1', role: 'operator' } as const;

describe('large reports: bytes once on the disk, none in the journal rows (MLLP, OpenSSH sftp)', function () {
  this.timeout(180_000);
  let dir: string;
  let key: string;
  let sftpPort: number;
  let mllpPort: number;
  let h: Harness;
  let app: FastifyInstance;
  let base: string;
  let patientId: number;
  let restoreEnv: () => void = () => undefined;

  before(async () => {
    dir = tempDir('onco-large-report-');
    sftpPort = await freePort();
    mllpPort = await freePort();
    restoreEnv = setEnv({ ONCO_SFTP_PORT: String(sftpPort), ONCO_ACCEPT_TEST_INS: 'true' });
    const shipped = YAML.parse(
      fs.readFileSync(path.join(root, 'config/channels/pathology.yaml'), 'utf8'),
    ) as { destinations: object[] };
    h = await startEngine({
      channels: [
        shipped,
        {
          id: 'pathology-mllp',
          storage: 'all',
          source: { type: 'mllp-listener', port: mllpPort, establishment: '310000001' },
          steps: [{ type: 'pathology', acceptTestIns: true }],
          destinations: shipped.destinations,
        },
      ],
      directory: { establishments: [{ finess: '310000001', name: 'CHU Demo' }] },
      start: false,
    });
    key = await keyAccount(h.engine.store, dir, 'chu', 'establishment', '310000001');
    await addAccount(h.engine.store, operator);
    await h.engine.start();
    ({ app, base } = await listenDashboard(h.engine));
    patientId = await oruPatient(h.engine.store);
  });

  after(async () => {
    await app?.close();
    await h?.stop();
    restoreEnv();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const journalBlob = (digest: string) => path.join(h.dataDir, 'blobs', digest);

  /** The message's content rows as the database holds them: stage, destination, bytes in the row, blob. */
  const rowsOf = (messageId: number) => {
    const db = new Database(path.join(h.dataDir, 'onco-relay.db'), { readonly: true });
    try {
      return db
        .prepare(
          `SELECT stage, destination, length(content) AS bytes, blob FROM contents WHERE message_id = ?
           ORDER BY stage, destination`,
        )
        .all(messageId) as Array<{ stage: string; destination: string; bytes: number; blob: string | null }>;
    } finally {
      db.close();
    }
  };

  const filed = (source: string) =>
    until(
      () => h.engine.store.documents.listOfPatient(patientId).find((d) => d.source === source),
      `${source} filed`,
      60_000,
    );

  /** Prunes as if the journal's retention had passed for the message (documents are never pruned). */
  const pruneAfter = async (messageId: number) => {
    const m = h.engine.store.journal.message(messageId)!;
    const days = h.engine.config.engine.store.pruneAfterDays * 86_400_000;
    assert.ok((await h.engine.prune(m.receivedAt + 1 + days)) >= 1, 'the message pruned');
    assert.equal(h.engine.store.journal.message(messageId), undefined);
  };

  it('files an ORU with a 3 MiB PDF (MLLP): the PDF a journaled part, no multi-MiB row, the stage shown, pruning deletes the files', async () => {
    const pdf = pdfOf(3 * MiB);
    const oru = oruWithPdf(pdf);
    const socket = net.connect(mllpPort, '127.0.0.1');
    const framer = new MllpFramer();
    const ack = await new Promise<Buffer>((resolve, reject) => {
      socket.on('data', (chunk: Buffer) => {
        for (const e of framer.push(chunk)) if (e.type === 'frame') resolve(e.payload);
      });
      socket.on('error', reject);
      socket.write(frame(oru));
    });
    socket.destroy();
    assert.equal(parseAck(ack).code, 'AA');

    const summary = await filed('pathology-mllp');
    const doc = h.engine.store.documents.get(summary.id)!;
    const messageId = doc.versions.at(-1)!.provenance.messageId!;
    const original = h.engine.store.documents.content(summary.id, 'original')!;
    const filedPdf = h.engine.store.documents.content(summary.id, 'pdf')!;
    assert.deepEqual(fs.readFileSync(original.file), oru, 'the ORU filed byte-identical');
    assert.deepEqual(fs.readFileSync(filedPdf.file), pdf, 'the PDF filed byte-identical');

    // The journal: the ORU and the PDF are blobs; every row holds a few KiB at most.
    const rows = rowsOf(messageId);
    assert.deepEqual(
      rows.map((r) => [r.stage, r.destination, r.blob]),
      [
        ['raw', '', sha256(oru)],
        ['response', 'documents', null],
        ['transformed', '', null],
        ['transformed', `part:${sha256(pdf)}`, sha256(pdf)],
      ],
    );
    for (const r of rows) assert.ok(r.bytes < 64 * 1024, `${r.stage} ${r.destination}: ${r.bytes} bytes`);

    // The API (curl) shows the transformed stage: the report JSON, which names the PDF by digest.
    const { stdout } = await run(
      'curl',
      ['-sS', '-u', `${operator.login}:${operator.password}`, `${base}/api/messages/${messageId}`],
      { encoding: 'utf8', maxBuffer: 16 * MiB },
    );
    const shown = JSON.parse(stdout) as {
      contents: Array<{ stage: string; destination: string; text?: string; sha256?: string; size: number }>;
    };
    const transformed = shown.contents.find((c) => c.stage === 'transformed' && c.destination === '')!;
    const report = JSON.parse(transformed.text!) as ClinicalReport;
    assert.deepEqual(report.attachments, [
      { mediaType: 'application/pdf', sha256: sha256(pdf), size: pdf.length },
    ]);
    assert.deepEqual(report.original, {
      mediaType: 'application/hl7-v2',
      sha256: sha256(oru),
      size: oru.length,
    });
    const part = shown.contents.find((c) => c.destination === `part:${sha256(pdf)}`)!;
    assert.equal(part.size, pdf.length);

    // One copy on the disk: the document's names are links to the journal's files.
    for (const [file, digest] of [
      [original.file, sha256(oru)],
      [filedPdf.file, sha256(pdf)],
    ] as const) {
      const [doc, journal] = [fs.statSync(file), fs.statSync(journalBlob(digest))];
      assert.equal(doc.ino, journal.ino, `${digest}: one inode`);
      assert.equal(doc.nlink, 2);
    }

    await pruneAfter(messageId);
    assert.equal(fs.existsSync(journalBlob(sha256(oru))), false, 'the raw blob deleted');
    assert.equal(fs.existsSync(journalBlob(sha256(pdf))), false, 'the part deleted');
    assert.deepEqual(fs.readFileSync(filedPdf.file), pdf, 'the document keeps its PDF');
    assert.equal(fs.statSync(filedPdf.file).nlink, 1);
  });

  it('files a 6 MiB PDF and its sidecar (OpenSSH sftp) under one inode; pruning and the start sweeps keep the other side', async () => {
    const pdf = pdfOf(6 * MiB);
    const sidecar = fs.readFileSync(path.join(root, 'test/fixtures/clinical/report.json'));
    const commands = (
      [
        ['big.json', sidecar],
        ['big.pdf', pdf],
      ] as const
    ).map(([name, content]) => {
      fs.writeFileSync(path.join(dir, name), content);
      return `put ${path.join(dir, name)} /in/pathology/${name}`;
    });
    const sent = await openssh(sftpPort, 'chu', key, commands);
    assert.equal(sent.code, 0, sent.stderr);

    const summary = await filed('big.pdf');
    const messageId = h.engine.store.documents.get(summary.id)!.versions.at(-1)!.provenance.messageId!;
    const original = h.engine.store.documents.content(summary.id, 'original')!;
    assert.equal(original.sha256, sha256(pdf));
    const [doc, journal] = [fs.statSync(original.file), fs.statSync(journalBlob(sha256(pdf)))];
    assert.equal(doc.ino, journal.ino, 'both names, one inode');
    assert.equal(doc.nlink, 2);
    for (const r of rowsOf(messageId)) assert.ok(r.bytes < 64 * 1024, `${r.stage}: ${r.bytes} bytes`);

    // A restart sweeps both directories: each keeps the file the other holds too.
    await h.stop();
    h = await startEngine({ channels: [], dataDir: h.dataDir, configDir: h.configDir });
    assert.equal(fs.statSync(original.file).nlink, 2, 'both names after the start sweeps');

    await pruneAfter(messageId);
    assert.equal(fs.existsSync(journalBlob(sha256(pdf))), false, "the journal's name pruned");
    assert.deepEqual(fs.readFileSync(original.file), pdf, "the document's file readable");
    await h.stop();
    h = await startEngine({ channels: [], dataDir: h.dataDir, configDir: h.configDir });
    assert.deepEqual(fs.readFileSync(original.file), pdf, 'kept by the next start sweep');
  });
});
