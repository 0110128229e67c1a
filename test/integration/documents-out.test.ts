// A validated RCP form, end to end: store outbox → documents-out (CDA) → one message per recipient
// → a real OpenSSH server (CHU Nord: the CDA and its PDF), the pickup folder of CHU Sud's SFTP
// account (the same two files), two professionals and the patient's Mon espace santé by MSSanté
// mail, captured by a real SMTP receiver (aiosmtpd) and read back: the XDM zip opens and its
// METADATA.XML describes the CDA it holds. Two more establishments take the formats their route
// asks: an HL7 v2 MDM file, an XDM zip.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { simpleParser, type ParsedMail } from 'mailparser';
import yauzl from 'yauzl';
import { addAccount, startEngine, tempDir, until, type Harness } from '../support/engine-harness.ts';
import { startSshd, type Sshd } from '../support/sshd.ts';
import { aiosmtpd, type SmtpReceiver } from '../support/aiosmtpd.ts';
import {
  documentChannels,
  documentDirectory,
  GP_MAIL,
  INS,
  knownPatient,
  NORD,
  REFERRING_MAIL,
  SUD,
} from '../support/documents-out.ts';
import { formContent, meetingData } from '../fixtures/documents/rcp-store.ts';
import { get, parse, segmentsNamed } from '../../transformers/hl7v2.ts';
import { attr, element, elements, parseXml, type XmlElement } from '../../transformers/xml.ts';

const actor = { login: 'dr-rcp', role: 'operator' };
const EST = '310000006';
const OUEST = '310000007';
const MES = `${INS}@patient.mssante.fr`;

async function unzip(zip: Buffer): Promise<Map<string, Buffer>> {
  const archive = await yauzl.fromBufferPromise(zip, {});
  const files = new Map<string, Buffer>();
  for await (const entry of archive.eachEntry()) {
    const chunks: Buffer[] = [];
    for await (const chunk of await archive.openReadStreamPromise(entry)) chunks.push(chunk as Buffer);
    files.set(entry.fileName, Buffer.concat(chunks));
  }
  return files;
}

const isPdf = (b: Buffer): boolean =>
  b.subarray(0, 5).toString('latin1') === '%PDF-' && b.subarray(-8).toString('latin1').includes('%%EOF');

/** The XDS values of the document entry of the CDA in a METADATA.XML (ebRS 3.0). */
function cdaEntry(metadata: XmlElement) {
  const entry = elements(metadata, 'RegistryObjectList/ExtrinsicObject').find(
    (e) => attr(e, 'mimeType') === 'text/xml',
  );
  assert.ok(entry, 'a document entry for the CDA');
  const external = (scheme: string) =>
    attr(
      elements(entry, 'ExternalIdentifier').find((x) => attr(x, 'identificationScheme') === scheme),
      'value',
    );
  const code = (scheme: string) =>
    attr(
      elements(entry, 'Classification').find((c) => attr(c, 'classificationScheme') === scheme),
      'nodeRepresentation',
    );
  return {
    patientId: external('urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427'),
    uniqueId: external('urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab'),
    classCode: code('urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a'),
    typeCode: code('urn:uuid:f0306f51-975f-434e-a61c-c59651d33983'),
    formatCode: code('urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d'),
  };
}

interface Mail {
  to: string;
  parsed: ParsedMail;
  files: Map<string, Buffer>;
  cda: string;
}

describe('documents out: a validated RCP form reaches each of its recipients', function () {
  this.timeout(180_000);
  let sshd: Sshd;
  let smtp: SmtpReceiver;
  let h: Harness;
  let remote: string;
  let meetingId: number;

  before(async () => {
    sshd = await startSshd();
    smtp = await aiosmtpd(tempDir('onco-mail-'));
    remote = path.join(sshd.files, 'nord-in');
    fs.mkdirSync(remote);
    h = await startEngine({
      channels: documentChannels(sshd, remote, smtp.port),
      directory: {
        ...documentDirectory,
        establishments: [
          ...documentDirectory.establishments,
          {
            finess: EST,
            name: 'CH Est',
            kind: 'hospital',
            documents: { way: 'pickup', format: 'hl7v2', application: 'DPI-EST' },
          },
          { finess: OUEST, name: 'CH Ouest', kind: 'hospital', documents: { way: 'pickup', format: 'xdm' } },
        ],
      },
    });
    for (const [login, finess] of [
      ['chu-sud', SUD],
      ['ch-est', EST],
      ['ch-ouest', OUEST],
    ] as const)
      await addAccount(h.engine.store, {
        login,
        role: 'establishment',
        finess,
        password: 'a long test password',
      });
    meetingId = (await h.engine.store.write.rcp.createMeeting(meetingData, actor, Date.now())).id;
  });
  after(async () => {
    await h?.stop();
    await smtp?.stop();
    await sshd?.stop();
  });

  const validated = async (patientId: number) => {
    const { rcp } = h.engine.store.write;
    const form = await rcp.create('frcp', { patientId, meetingId, content: formContent }, actor, Date.now());
    await rcp.validate('frcp', form.id, actor, Date.now());
    return { id: form.id, name: `FRCP-${form.id}-1` };
  };
  const outFolder = (login: string) => path.join(h.dataDir, 'sftp', login, 'out');
  const filesOf = (dir: string, name: string): string[] =>
    fs.existsSync(dir)
      ? fs
          .readdirSync(dir)
          .filter((f) => f.startsWith(`${name}.`))
          .sort()
      : [];

  /** The mail aiosmtpd received for one document (its XDM holds the CDA of that id), by recipient. */
  const mailsOf = async (name: string): Promise<Mail[]> => {
    const mails: Mail[] = [];
    for (const raw of smtp.mails()) {
      const parsed = await simpleParser(raw);
      const zip = parsed.attachments.find((a) => a.filename === 'IHE_XDM.ZIP');
      if (!zip) continue;
      const files = await unzip(zip.content);
      const cda = files.get('IHE_XDM/SUBSET01/DOC0001.XML')?.toString('utf8') ?? '';
      if (!cda.includes(`extension="${name}"`)) continue;
      const to = Array.isArray(parsed.to) ? parsed.to[0] : parsed.to;
      mails.push({ to: to?.value[0]?.address ?? '', parsed, files, cda });
    }
    return mails.sort((a, b) => a.to.localeCompare(b.to));
  };

  /** The messages handed to the recipients' channels for one form, with their status. */
  const recipients = (formId: number) =>
    h.engine.store.db
      .prepare<[number], { recipient: string; channel: string; status: string; id: number }>(
        `SELECT id, channel, status, json_extract(meta, '$.recipient') AS recipient FROM messages
         WHERE channel != 'documents-out' AND status != 'DUPLICATE' AND json_extract(meta, '$.documentId') = ?
         AND json_extract(meta, '$.documentKind') = 'frcp' ORDER BY id`,
      )
      .all(formId);
  /** Waits until documents-out has routed the form and each of its recipients is SENT; says where each is otherwise. */
  const allSent = (formId: number) =>
    until(
      () => {
        const routed = h.engine.store.db
          .prepare<[number], number>(
            `SELECT count(*) FROM messages WHERE channel = 'documents-out' AND status = 'SENT'
             AND json_extract(meta, '$.documentId') = ? AND json_extract(meta, '$.documentKind') = 'frcp'`,
          )
          .pluck()
          .get(formId);
        const r = recipients(formId);
        return routed === 1 && r.length > 0 && r.every((m) => m.status === 'SENT');
      },
      'every recipient SENT',
      60_000,
    ).catch((e: Error) => {
      const errors = recipients(formId).map((r) => ({
        ...r,
        errors: h.engine.store.journal.deliveries(r.id).map((d) => d.lastError),
      }));
      throw new Error(`${e.message}: ${JSON.stringify(errors)}`);
    });

  it('qualified INS: CDA and PDF pushed and picked up, two professionals and Mon espace santé mailed', async () => {
    const patientId = await knownPatient(h.engine.store, true);
    const { id, name } = await validated(patientId);
    await allSent(id);
    assert.deepEqual(
      recipients(id)
        .map((d) => `${d.recipient} ${d.channel}`)
        .sort(),
      [
        `finess:${SUD} documents-pickup`,
        `finess:${NORD} documents-sftp-nord`,
        'mes documents-mail',
        'rpps:10000000004 documents-mail',
        'rpps:10000000005 documents-mail',
      ],
    );

    // The establishments: NAME.xml (the CDA) and NAME.pdf, on the remote server and in /out/.
    assert.deepEqual(filesOf(remote, name), [`${name}.pdf`, `${name}.xml`]);
    assert.deepEqual(filesOf(outFolder('chu-sud'), name), [`${name}.pdf`, `${name}.xml`]);
    const cda = fs.readFileSync(path.join(remote, `${name}.xml`), 'utf8');
    assert.match(cda, /<ClinicalDocument/);
    assert.match(cda, new RegExp(`extension="${INS}"`));
    assert.equal(fs.readFileSync(path.join(outFolder('chu-sud'), `${name}.xml`), 'utf8'), cda);
    const pdf = fs.readFileSync(path.join(remote, `${name}.pdf`));
    assert.ok(isPdf(pdf));
    assert.ok(fs.readFileSync(path.join(outFolder('chu-sud'), `${name}.pdf`)).equals(pdf));

    // The mail: one per mailbox, the XDM zip and the PDF, its metadata matching the CDA it holds.
    const mails = await mailsOf(name);
    assert.deepEqual(
      mails.map((m) => m.to),
      [MES, REFERRING_MAIL, GP_MAIL].sort(),
    );
    const doc = parseXml(cda);
    const cdaId = `${attr(element(doc, 'id'), 'root')}^${attr(element(doc, 'id'), 'extension')}`;
    for (const m of mails) {
      assert.equal(m.cda, cda, 'the XDM carries the CDA as written');
      assert.equal(m.parsed.subject, 'XDM/1.0/DDM+FRCP PAT-TEST CAMILLE 19790328');
      assert.equal(m.parsed.headers.get('x-mss-codecda'), '34794-8');
      assert.equal(m.parsed.headers.get('x-mss-ins'), 'O');
      assert.equal(m.parsed.headers.get('x-mss-mes'), m.to === MES ? 'FIN' : undefined);
      const metadata = m.files.get('IHE_XDM/SUBSET01/METADATA.XML');
      assert.ok(metadata, 'METADATA.XML in the zip');
      assert.deepEqual(cdaEntry(parseXml(metadata)), {
        patientId: `${INS}^^^&1.2.250.1.213.1.4.10&ISO^NH`,
        uniqueId: cdaId,
        classCode: '10',
        typeCode: '34794-8',
        formatCode: 'urn:asip:ci-sis:frcp:2011',
      });
      assert.ok(isPdf(m.files.get('IHE_XDM/SUBSET01/DOC0002.PDF')!), 'the PDF inside the zip');
      const attached = m.parsed.attachments.find((a) => a.contentType === 'application/pdf');
      assert.equal(attached?.filename, `${name}.pdf`);
      assert.ok(attached.content.equals(pdf), 'the PDF attached is the one the establishments got');
    }
    await until(() => h.engine.store.rcp.document('frcp', id)?.status === 'sent', 'status sent');

    // A delivery sent again (replay) rewrites the same names: no second file, the same bytes.
    const pickup = recipients(id).find((r) => r.channel === 'documents-pickup')!;
    const pushed = recipients(id).find((r) => r.channel === 'documents-sftp-nord')!;
    const replayed = [pickup, pushed].flatMap((r) =>
      h.engine.store.journal.deliveries(r.id).map((d) => ({ channel: r.channel, d })),
    );
    for (const { channel, d } of replayed) await h.engine.channel(channel)!.replayDelivery(d.id);
    await until(
      () =>
        replayed.every(({ d }) => {
          const now = h.engine.store.journal.delivery(d.id)!;
          return now.status === 'SENT' && (now.sentAt ?? 0) > (d.sentAt ?? 0);
        }),
      'the replayed deliveries SENT again',
      60_000,
    );
    assert.deepEqual(filesOf(remote, name), [`${name}.pdf`, `${name}.xml`]);
    assert.deepEqual(filesOf(outFolder('chu-sud'), name), [`${name}.pdf`, `${name}.xml`]);
    assert.equal(fs.readFileSync(path.join(remote, `${name}.xml`), 'utf8'), cda);
    assert.ok(fs.readFileSync(path.join(outFolder('chu-sud'), `${name}.pdf`)).equals(pdf));
  });

  it('an establishment’s route format: MDM^T02 file (hl7v2), IHE_XDM.ZIP (xdm), no PDF beside them', async () => {
    // The same patient (strict traits), now known to CH Est and CH Ouest too.
    const patientId = await knownPatient(h.engine.store, false, 'IPP-FMT', [EST, OUEST]);
    const { id, name } = await validated(patientId);
    await allSent(id);
    assert.deepEqual(filesOf(outFolder('ch-est'), name), [`${name}.hl7`]);
    const mdm = parse(fs.readFileSync(path.join(outFolder('ch-est'), `${name}.hl7`)));
    assert.equal(`${get(mdm, 'MSH-9.1')}^${get(mdm, 'MSH-9.2')}`, 'MDM^T02');
    assert.equal(get(mdm, 'MSH-5'), 'DPI-EST');
    assert.equal(get(mdm, 'MSH-6'), EST);
    assert.equal(segmentsNamed(mdm, 'OBX').length, 2, 'the CDA and the PDF');
    assert.deepEqual(filesOf(outFolder('ch-ouest'), name), [`${name}.zip`]);
    const files = await unzip(fs.readFileSync(path.join(outFolder('ch-ouest'), `${name}.zip`)));
    assert.match(files.get('IHE_XDM/SUBSET01/DOC0001.XML')?.toString('utf8') ?? '', /<ClinicalDocument/);
    assert.ok(isPdf(files.get('IHE_XDM/SUBSET01/DOC0002.PDF')!));
    assert.ok(files.has('IHE_XDM/SUBSET01/METADATA.XML'));
  });

  it('no Mon espace santé without a qualified INS, nor with an opposition recorded', async () => {
    const unqualified = await validated(await knownPatient(h.engine.store, false, 'IPP-UNQ'));
    const opposedId = await knownPatient(h.engine.store, true, 'IPP-OPP');
    await h.engine.store.write.rcp.setOpposition(opposedId, 'mes', true, actor, Date.now());
    const opposed = await validated(opposedId);
    for (const f of [unqualified, opposed]) {
      await allSent(f.id);
      const mails = await mailsOf(f.name);
      assert.deepEqual(
        mails.map((m) => m.to),
        [REFERRING_MAIL, GP_MAIL].sort(),
      );
      assert.equal(
        mails[0]!.parsed.headers.get('x-mss-ins'),
        f === unqualified ? 'N' : 'O',
        'X-MSS-INS says whether the INS is qualified',
      );
    }
    const cda = fs.readFileSync(path.join(remote, `${unqualified.name}.xml`), 'utf8');
    assert.doesNotMatch(cda, new RegExp(INS), 'an unqualified INS is not written');
  });
});
