// Reading the documents of an MSSanté mail: XDM archives (and the hostile shapes of zip), MIME as
// senders really write it (broken boundaries, 8-bit and encoded-word headers in Latin-1 and UTF-8).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { bytesOf } from '../../transformers/contract.ts';
import { mailParts, type MailAttachmentsOptions } from '../../transformers/mime-attachments.ts';
import { DEFAULT_ZIP_LIMITS, readXdm, unzip } from '../../transformers/xdm-read.ts';
import { metadataXml, xdmZip, zip, type XdmDocument } from '../support/xdm-fixture.ts';

const CDA = fs.readFileSync(path.join(import.meta.dirname, '../fixtures/clinical/cr-acp.xml'));
const PDF = fs.readFileSync(path.join(import.meta.dirname, '../fixtures/clinical/report.pdf'));
const HL7_ADT = Buffer.from(
  'MSH|^~\\&|GAM|CHU|DCC|ONCO|20260101||ADT^A28^ADT_A05|1|P|2.5\rPID|1||123^^^CHU&310000001&ISO^PI\r',
);
const options: MailAttachmentsOptions = { defaultKind: 'pathology', ...DEFAULT_ZIP_LIMITS };

const cdaDoc: XdmDocument = {
  file: 'DOC0001.XML',
  mimeType: 'text/xml',
  content: CDA,
  uniqueId: '1.2.250.1.999.7.1',
  typeCode: '11526-1',
  formatCode: 'urn:asip:ci-sis:cr-acp:2010',
  title: 'CR ACP',
};
const pdfDoc: XdmDocument = {
  file: 'DOC0002.PDF',
  mimeType: 'application/pdf',
  content: PDF,
  uniqueId: '1.2.250.1.999.7.2',
  typeCode: '11526-1',
  formatCode: 'urn:ihe:iti:xds-sd:pdf:2008',
  title: 'CR ACP (PDF)',
};

/** Replaces an entry name in a zip by another of the same length: yazl refuses to write hostile names. */
function renamed(archive: Buffer, from: string, to: string): Buffer {
  assert.equal(from.length, to.length);
  const out = Buffer.from(archive);
  for (let at = out.indexOf(from); at >= 0; at = out.indexOf(from, at + 1)) out.write(to, at, 'latin1');
  return out;
}

function mime(parts: string[], boundary = 'B0UNDARY', headers: string[] = []): Buffer {
  return Buffer.from(
    [
      'From: Labo <labo@labo.mssante.test>',
      'To: pathology@dcc.test',
      'Message-ID: <m-1@labo>',
      ...headers,
      'MIME-Version: 1.0',
      `Content-Type: multipart/mixed; boundary="${boundary}"`,
      '',
      ...parts.flatMap((p) => [`--${boundary}`, p]),
      `--${boundary}--`,
      '',
    ].join('\r\n'),
    'latin1',
  );
}

const attachment = (name: string, type: string, content: Buffer, nameHeader = `filename="${name}"`): string =>
  [
    `Content-Type: ${type}`,
    `Content-Disposition: attachment; ${nameHeader}`,
    'Content-Transfer-Encoding: base64',
    '',
    content.toString('base64').replace(/.{76}/g, '$&\r\n'),
  ].join('\r\n');

describe('mail-attachments and xdm-read', function () {
  it('reads an IHE_XDM.ZIP: the CR-ACP goes to pathology, the PDF gets the sidecar its reader needs; the PDF beside the zip is not filed twice', async function () {
    const archive = await xdmZip([cdaDoc, pdfDoc]);
    const mail = mime([
      ['Content-Type: text/plain; charset=utf-8', '', 'Bonjour'].join('\r\n'),
      attachment('IHE_XDM.ZIP', 'application/zip', archive),
      attachment('CR.pdf', 'application/pdf', PDF),
    ]);
    const out = await mailParts(mail, { ...options, defaultKind: 'molecular' });
    assert.equal(out.mail.messageId, 'm-1@labo');
    assert.deepEqual(
      out.parts.map((p) => [p.fileName, p.kind, p.contentType, p.from]),
      [
        ['DOC0001.XML', 'pathology', 'application/xml', 'xdm'],
        ['DOC0002.PDF', 'molecular', 'application/pdf', 'xdm'],
      ],
    );
    assert.deepEqual(bytesOf(out.parts[0]!.staged), CDA);
    assert.equal(out.parts[0]!.meta.xdmUniqueId, '1.2.250.1.999.7.1');
    const sidecar = JSON.parse(out.parts[1]!.meta.sidecar!);
    assert.deepEqual(sidecar.patient, {
      ins: '1790328123456',
      insOid: '1.2.250.1.213.1.4.8',
      birthName: 'DUPONT',
      firstGivenName: 'MARIE',
      birthDate: '1979-03-28',
      sex: 'F',
    });
    assert.equal(sidecar.documentId, '1.2.250.1.999.7.2');
    assert.deepEqual(out.skipped.map((s) => s.fileName).sort(), [
      'CR.pdf',
      'IHE_XDM.ZIP/INDEX.HTM',
      'IHE_XDM.ZIP/README.TXT',
    ]);
  });

  it('an HL7 ADT attachment goes to identity; a lone CDA by its template', async function () {
    const out = await mailParts(
      mime([
        attachment('adt.hl7', 'application/octet-stream', HL7_ADT),
        attachment('cr.xml', 'text/xml', CDA),
      ]),
      options,
    );
    assert.deepEqual(
      out.parts.map((p) => p.kind),
      ['identity', 'pathology'],
    );
  });

  it('labels a patient id an INS only when its assigning authority is an INS OID: a local IPP is not one', async function () {
    const withPatient = (patient: string) =>
      zip([
        { name: 'IHE_XDM/SUBSET01/METADATA.XML', content: Buffer.from(metadataXml([pdfDoc], patient)) },
        { name: 'IHE_XDM/SUBSET01/DOC0002.PDF', content: PDF },
      ]);
    const nia = (await readXdm(await withPatient('1790328123456^^^&1.2.250.1.213.1.4.9&ISO^NH')))
      .documents[0]!.patient!;
    assert.deepEqual(
      [nia.ins, nia.insOid, nia.idOid],
      ['1790328123456', '1.2.250.1.213.1.4.9', '1.2.250.1.213.1.4.9'],
    );
    const ipp = (await readXdm(await withPatient('IPP00042^^^&1.2.250.1.71.4.2.7.310000001&ISO^PI')))
      .documents[0]!.patient!;
    assert.deepEqual([ipp.ins, ipp.insOid, ipp.idOid], [null, null, '1.2.250.1.71.4.2.7.310000001']);
    const noOid = (await readXdm(await withPatient('1790328123456^^^^NH'))).documents[0]!.patient!;
    assert.deepEqual([noOid.ins, noOid.idOid], [null, null]);
    // Without an INS the PDF gets no sidecar claiming one.
    const mail = mime([
      attachment(
        'IHE_XDM.ZIP',
        'application/zip',
        await withPatient('IPP00042^^^&1.2.250.1.71.4.2.7.310000001&ISO^PI'),
      ),
    ]);
    const out = await mailParts(mail, options);
    assert.equal(out.parts[0]!.meta.sidecar, undefined);
  });

  it('refuses a zip bomb by its ratio before inflating it', async function () {
    const bomb = await zip([
      { name: 'IHE_XDM/SUBSET01/METADATA.XML', content: Buffer.from('<x/>') },
      { name: 'IHE_XDM/SUBSET01/DOC0001.XML', content: Buffer.alloc(50 * 1024 * 1024) },
    ]);
    assert.ok(bomb.length < 200 * 1024, `the bomb is ${bomb.length} bytes`);
    await assert.rejects(readXdm(bomb), { code: 'ZIP_RATIO' });
    await assert.rejects(mailParts(mime([attachment('IHE_XDM.ZIP', 'application/zip', bomb)]), options), {
      code: 'ZIP_RATIO',
    });
  });

  it('refuses an archive that inflates past the total, and one with too many entries', async function () {
    const big = await zip([
      { name: 'a.bin', content: Buffer.alloc(3000, 1), store: true },
      { name: 'b.bin', content: Buffer.alloc(3000, 2), store: true },
    ]);
    await assert.rejects(unzip(big, { ...DEFAULT_ZIP_LIMITS, maxTotalBytes: 5000 }), {
      code: 'ZIP_TOO_LARGE',
    });
    const many = await zip(
      Array.from({ length: 12 }, (_, i) => ({ name: `f${i}.txt`, content: Buffer.from('x') })),
    );
    await assert.rejects(unzip(many, { ...DEFAULT_ZIP_LIMITS, maxEntries: 10 }), {
      code: 'ZIP_TOO_MANY_ENTRIES',
    });
  });

  it('refuses zip-slip paths: parent directories, absolute paths, backslashes', async function () {
    const cases: Array<[placeholder: string, hostile: string]> = [
      ['aa/aa/evil.txt', '../../evil.txt'],
      ['atmp/evil.txt', '/tmp/evil.txt'],
      ['bb/bb/evil.txt', '..\\..\\evil.txt'],
      ['C/evil.txt', 'C:evil.txt'],
    ];
    for (const [placeholder, hostile] of cases) {
      const archive = await zip([{ name: placeholder, content: Buffer.from('owned') }]);
      assert.deepEqual(
        (await unzip(archive)).map((f) => f.path),
        [placeholder],
      );
      await assert.rejects(
        unzip(renamed(archive, placeholder, hostile)),
        { code: 'ZIP_PATH_OUTSIDE' },
        hostile,
      );
    }
  });

  it('reads a zip inside the archive, refuses a zip inside that one', async function () {
    const inner = await zip([{ name: 'doc.txt', content: Buffer.from('hello') }]);
    const once = await zip([{ name: 'inner.zip', content: inner }]);
    assert.deepEqual(
      (await unzip(once)).map((f) => f.path),
      ['inner.zip/doc.txt'],
    );
    const twice = await zip([{ name: 'outer.zip', content: once }]);
    await assert.rejects(unzip(twice), { code: 'ZIP_NESTED' });
    await assert.rejects(unzip(once, { ...DEFAULT_ZIP_LIMITS, maxNesting: 0 }), { code: 'ZIP_NESTED' });
  });

  it('refuses an XDM whose METADATA.XML names a file that is not there, or a path outside the subset', async function () {
    const missing = await zip([
      {
        name: 'IHE_XDM/SUBSET01/METADATA.XML',
        content: Buffer.from((await import('../support/xdm-fixture.ts')).metadataXml([cdaDoc])),
      },
    ]);
    await assert.rejects(readXdm(missing), { code: 'XDM_MISSING_DOCUMENT' });
    const outside = await zip([
      {
        name: 'IHE_XDM/SUBSET01/METADATA.XML',
        content: Buffer.from(metadataXml([{ ...cdaDoc, file: '../../DOC0001.XML' }])),
      },
      { name: 'DOC0001.XML', content: CDA },
    ]);
    await assert.rejects(readXdm(outside), { code: 'XDM_BAD_URI' });
    await assert.rejects(readXdm(await zip([{ name: 'a.txt', content: Buffer.from('x') }])), {
      code: 'XDM_NO_METADATA',
    });
  });

  it('a METADATA.XML with a DTD is refused by the XML module (no entity expansion)', async function () {
    const xml = `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>`;
    const archive = await zip([{ name: 'IHE_XDM/SUBSET01/METADATA.XML', content: Buffer.from(xml) }]);
    await assert.rejects(readXdm(archive), { code: 'XML_DTD_REFUSED' });
  });

  it('broken MIME boundaries: an unterminated multipart still yields its complete part; a wrong boundary yields none and is refused with a code', async function () {
    const unterminated = mime([attachment('cr.xml', 'text/xml', CDA)])
      .toString('latin1')
      .replace(/--B0UNDARY--\r\n$/, '');
    const out = await mailParts(Buffer.from(unterminated, 'latin1'), options);
    assert.equal(out.parts.length, 1);
    const wrong = mime([attachment('cr.xml', 'text/xml', CDA)])
      .toString('latin1')
      .replace('boundary="B0UNDARY"', 'boundary="OTHER"');
    await assert.rejects(mailParts(Buffer.from(wrong, 'latin1'), options), { code: 'MAIL_NO_DOCUMENT' });
  });

  it('8-bit and encoded-word headers, ISO-8859-1 and UTF-8: names decoded, documents found', async function () {
    const mail = mime(
      [
        attachment('x', 'text/xml', CDA, 'filename="=?ISO-8859-1?Q?compte-rendu-h=E9mato.xml?="'),
        attachment('y', 'application/hl7-v2', HL7_ADT, "filename*=UTF-8''r%C3%A9sultat.hl7"),
        attachment(
          'z',
          'text/xml',
          CDA,
          'filename="=?UTF-8?B?' + Buffer.from('bilan-é.xml').toString('base64') + '?="',
        ),
      ],
      'B0UNDARY',
      [
        'Subject: =?ISO-8859-1?Q?Compte_rendu_h=E9matologie?=',
        // Raw 8-bit Latin-1 in a header, as old mail software writes it.
        Buffer.from("X-Labo: Laboratoire d'anatomie pathologique Démo", 'latin1').toString('latin1'),
      ],
    );
    const out = await mailParts(mail, options);
    assert.deepEqual(
      out.parts.map((p) => p.fileName),
      ['compte-rendu-hémato.xml', 'résultat.hl7', 'bilan-é.xml'],
    );
  });
});
