// Step `mail-attachments`: the documents of an MSSanté mail (RFC 5322, as the smtp-inbox or imap
// source journaled it), each labelled with the flow that owns its kind — pathology, molecular or
// identity — for the `attachment-dispatch` destination to hand over. Read: `IHE_XDM.ZIP` (through
// xdm-read.ts, with its limits), CDA R2, HL7 v2 and PDF attachments. A PDF described by XDM metadata
// gets the JSON sidecar the pdf reader expects (patient, type, date, id); a PDF lying beside an XDM
// archive is its human-readable copy and is not filed twice.
import { simpleParser, type Attachment } from 'mailparser';
import Type from 'typebox';
import { Default, StepError, type OptionsOf, type StepInput, type StepSpec } from './contract.ts';
import { DEFAULT_ZIP_LIMITS, isZip, readXdm, type XdmDocument } from './xdm-read.ts';

export const MAIL_PARTS_JSON = 'application/vnd.onco-relay.mail-parts+json';

export const DOCUMENT_KINDS = ['pathology', 'molecular', 'identity'] as const;
export type DocumentKind = (typeof DOCUMENT_KINDS)[number];

/** One document of the mail, ready to be handed to the channel of its kind. */
export interface MailPart {
  kind: DocumentKind;
  fileName: string;
  contentType: string;
  /** base64 */
  content: string;
  /** Where it was: `attachment` of the mail, or `xdm` (inside IHE_XDM.ZIP). */
  from: 'attachment' | 'xdm';
  /** Metadata the part travels with: its XDM uniqueId, type and format codes, a PDF's sidecar. */
  meta: Record<string, string>;
}

export interface MailParts {
  mail: { messageId: string | null; date: string | null; attachments: number };
  parts: MailPart[];
  /** Attachments not filed, and why (a rendition beside XDM, a picture, INDEX.HTM…). */
  skipped: Array<{ fileName: string; reason: string }>;
}

const schema = Type.Object({
  defaultKind: Type.Enum(DOCUMENT_KINDS, {
    description: "kind of a document whose content does not tell (a PDF, an ORU): usually the mailbox's flow",
  }),
  maxEntries: Default(
    Type.Integer({ minimum: 1, description: 'entries of an XDM archive, nested ones included' }),
    DEFAULT_ZIP_LIMITS.maxEntries,
  ),
  maxTotalBytes: Default(
    Type.Integer({ minimum: 1, description: 'bytes of an XDM archive once inflated' }),
    DEFAULT_ZIP_LIMITS.maxTotalBytes,
  ),
  maxRatio: Default(
    Type.Integer({ minimum: 2, description: 'inflated over compressed size of one entry (zip bombs)' }),
    DEFAULT_ZIP_LIMITS.maxRatio,
  ),
  maxNesting: Default(
    Type.Integer({
      minimum: 0,
      maximum: 3,
      description: 'archives inside the archive read; deeper is refused',
    }),
    DEFAULT_ZIP_LIMITS.maxNesting,
  ),
});

export type MailAttachmentsOptions = OptionsOf<typeof schema>;

const CDA_KIND: Record<string, DocumentKind> = {
  '1.2.250.1.213.1.1.1.57': 'pathology', // CR-ACP
  '1.2.250.1.213.1.1.1.32': 'molecular', // CR-GM
};

type Format = 'cda' | 'hl7' | 'pdf';

function formatOf(content: Buffer, name: string, contentType: string): Format | null {
  const head = content
    .subarray(0, 512)
    .toString('latin1')
    .replace(/^\xEF\xBB\xBF/, '');
  if (/^(MSH|FHS|BHS)\|/.test(head)) return 'hl7';
  if (head.startsWith('%PDF-')) return 'pdf';
  if (/^\s*</.test(head) && /ClinicalDocument/.test(content.subarray(0, 8192).toString('latin1')))
    return 'cda';
  if (/\.hl7$/i.test(name) || /hl7/i.test(contentType)) return 'hl7';
  return null;
}

function kindOf(format: Format, content: Buffer, fallback: DocumentKind): DocumentKind {
  if (format === 'hl7') {
    const msh9 = content.toString('latin1', 0, 2048).split(/\r|\n/)[0]?.split('|')[8] ?? '';
    return msh9.startsWith('ADT') ? 'identity' : fallback;
  }
  if (format === 'cda') {
    const head = content.subarray(0, 16384).toString('latin1');
    for (const [oid, kind] of Object.entries(CDA_KIND)) if (head.includes(`"${oid}"`)) return kind;
  }
  return fallback;
}

const CONTENT_TYPE: Record<Format, string> = {
  cda: 'application/xml',
  hl7: 'application/hl7-v2',
  pdf: 'application/pdf',
};

/** The JSON sidecar of pdf-report.ts, from the XDS metadata of the PDF. */
function sidecarOf(doc: XdmDocument): string | null {
  const p = doc.patient;
  if (!p?.ins) return null;
  const time = doc.creationTime ?? '';
  return JSON.stringify({
    patient: {
      ins: p.ins,
      ...(p.insOid ? { insOid: p.insOid } : {}),
      ...(p.birthName ? { birthName: p.birthName } : {}),
      ...(p.firstGivenName ? { firstGivenName: p.firstGivenName } : {}),
      ...(p.birthDate ? { birthDate: p.birthDate } : {}),
      ...(p.sex ? { sex: p.sex } : {}),
    },
    ...(doc.typeCode ? { documentType: doc.typeCode } : {}),
    ...(/^\d{8}/.test(time)
      ? { reportDate: `${time.slice(0, 4)}-${time.slice(4, 6)}-${time.slice(6, 8)}` }
      : {}),
    ...(doc.uniqueId ? { documentId: doc.uniqueId } : {}),
    status: 'final',
  });
}

const baseName = (p: string): string => p.slice(p.lastIndexOf('/') + 1);

export async function mailParts(raw: Buffer, options: MailAttachmentsOptions): Promise<MailParts> {
  // mailparser decodes encoded words and 8-bit headers (UTF-8, ISO-8859-1) and tolerates broken
  // boundaries: what it cannot split stays text, and a mail without a document is refused below.
  const mail = await simpleParser(raw, { skipHtmlToText: true, skipTextToHtml: true, skipImageLinks: true });
  const attachments: Attachment[] = mail.attachments ?? [];
  const parts: MailPart[] = [];
  const skipped: MailParts['skipped'] = [];
  const archives = attachments.filter((a) => isZip(a.content));
  for (const a of attachments) {
    const name = a.filename ?? 'attachment';
    if (isZip(a.content)) {
      const xdm = await readXdm(a.content, options);
      for (const doc of xdm.documents) {
        const format = formatOf(doc.content, doc.path, doc.mimeType);
        if (!format) {
          skipped.push({
            fileName: `${name}/${doc.path}`,
            reason: `not a document this DCC files (${doc.mimeType})`,
          });
          continue;
        }
        const sidecar = format === 'pdf' ? sidecarOf(doc) : null;
        parts.push({
          kind: kindOf(format, doc.content, options.defaultKind),
          fileName: baseName(doc.path),
          contentType: CONTENT_TYPE[format],
          content: doc.content.toString('base64'),
          from: 'xdm',
          meta: {
            xdmPath: doc.path,
            ...(doc.uniqueId ? { xdmUniqueId: doc.uniqueId } : {}),
            ...(doc.typeCode ? { xdmTypeCode: doc.typeCode } : {}),
            ...(doc.formatCode ? { xdmFormatCode: doc.formatCode } : {}),
            ...(doc.classCode ? { xdmClassCode: doc.classCode } : {}),
            ...(sidecar ? { sidecar } : {}),
          },
        });
      }
      for (const other of xdm.others)
        skipped.push({ fileName: `${name}/${other.path}`, reason: 'not described by METADATA.XML' });
      continue;
    }
    const format = formatOf(a.content, name, a.contentType);
    if (!format) {
      skipped.push({ fileName: name, reason: `not a document this DCC files (${a.contentType})` });
    } else if (format === 'pdf' && archives.length > 0) {
      skipped.push({ fileName: name, reason: 'the readable copy of the IHE_XDM.ZIP beside it' });
    } else {
      parts.push({
        kind: kindOf(format, a.content, options.defaultKind),
        fileName: name,
        contentType: CONTENT_TYPE[format],
        content: a.content.toString('base64'),
        from: 'attachment',
        meta: {},
      });
    }
  }
  if (parts.length === 0) {
    throw new StepError('MAIL_NO_DOCUMENT', 'the mail carries no document the DCC files', {
      hint:
        'attach IHE_XDM.ZIP, a CDA, an HL7 file or a PDF with its XDM metadata; skipped: ' +
        (skipped.map((s) => `${s.fileName} (${s.reason})`).join(', ') || 'nothing attached'),
    });
  }
  return {
    mail: {
      messageId: mail.messageId?.replace(/^<|>$/g, '') ?? null,
      date: mail.date?.toISOString() ?? null,
      attachments: attachments.length,
    },
    parts,
    skipped,
  };
}

export const mailAttachmentsStep: StepSpec<MailAttachmentsOptions> = {
  kind: 'step',
  type: 'mail-attachments',
  summary:
    'Reads the documents of a mail (IHE_XDM.ZIP with its METADATA.XML, CDA, HL7, PDF) into a list of parts labelled pathology, molecular or identity, for attachment-dispatch. XDM archives are read with caps on entries, size, compression ratio and nesting; paths leaving the archive are refused.',
  schema,
  create: (options) => async (input: StepInput) => {
    const parts = await mailParts(input.content, options);
    return {
      content: Buffer.from(JSON.stringify(parts)),
      contentType: MAIL_PARTS_JSON,
      meta: { ...input.meta, documents: parts.parts.length, skipped: parts.skipped.length },
    };
  },
};
