// Step `mail-attachments`: the documents of an MSSanté mail (RFC 5322, as the smtp-inbox or imap
// source journaled it), each labelled with the flow that owns its kind — pathology, molecular or
// identity — for the `attachment-dispatch` destination to hand over. Read: `IHE_XDM.ZIP` (through
// xdm-read.ts, with its limits), CDA R2, HL7 v2 and PDF attachments. A PDF described by XDM metadata
// gets the JSON sidecar the pdf reader expects (patient, type, date, id); a PDF lying beside an XDM
// archive is its human-readable copy and is not filed twice.
import fs from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { MailParser, type AttachmentStream, type MessageText } from 'mailparser';
import Type from 'typebox';
import yazl from 'yazl';
import {
  Default,
  HEAD_BYTES,
  inMemory,
  stagedOutput,
  stageNoting,
  StepError,
  type OptionsOf,
  type StagedFile,
  type StepContext,
  type StepInput,
  type StepSpec,
} from './contract.ts';
import { DEFAULT_ZIP_LIMITS, isZip, readXdm, type XdmDocument } from './xdm-read.ts';

/**
 * The step's output for a mail of several documents: a zip (entries stored, not compressed) whose
 * first entry `parts.json` is the MailParts list and whose entry `part-N` is the document of part N.
 * One file, so the journal keeps it as one blob however many documents the mail carries; read entry
 * by entry, never whole.
 */
export const MAIL_PARTS_ZIP = 'application/vnd.onco-relay.mail-parts+zip';
export const MAIL_PARTS_ENTRY = 'parts.json';
/**
 * The step's output for a mail of one document (the common case) is that document itself, its
 * MailParts list as JSON in this meta key: the journal keeps the staged file as the output's blob
 * and attachment-dispatch hands that blob on, so a large attachment is written once after the mail
 * instead of three times (staged, copied into the zip, staged again from it).
 */
export const MAIL_PARTS_META = 'mailParts';

export const DOCUMENT_KINDS = ['pathology', 'molecular', 'identity'] as const;
export type DocumentKind = (typeof DOCUMENT_KINDS)[number];

/** One document of the mail, ready to be handed to the channel of its kind. */
export interface MailPart {
  kind: DocumentKind;
  fileName: string;
  contentType: string;
  /** Its entry in the output zip (`part-N`). */
  entry: string;
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

/** A part with its content, staged: what the step writes into its output zip. */
type StagedPart = MailPart & { staged: StagedFile };

interface MailAttachment {
  fileName: string;
  contentType: string;
  staged: StagedFile;
  head: Buffer;
}

/**
 * Reads a mail as it streams (mailparser's MailParser), each attachment staged into its own file as
 * it is decoded: the mail is never held whole, nor any attachment.
 */
async function readMail(
  source: Buffer | string,
  ctx: StepContext,
): Promise<{ messageId: string | null; date: Date | null; attachments: MailAttachment[] }> {
  // mailparser decodes encoded words and 8-bit headers (UTF-8, ISO-8859-1) and tolerates broken
  // boundaries: what it cannot split stays text, and a mail without a document is refused below.
  const parser = new MailParser({ skipHtmlToText: true, skipTextToHtml: true, skipImageLinks: true });
  let messageId: string | null = null;
  let date: Date | null = null;
  const staging: Array<Promise<MailAttachment>> = [];
  parser.on('headers', (headers: Map<string, unknown>) => {
    const id = headers.get('message-id');
    const when = headers.get('date');
    messageId = typeof id === 'string' ? id : null;
    date = when instanceof Date && !Number.isNaN(when.getTime()) ? when : null;
  });
  parser.on('data', (data: AttachmentStream | MessageText) => {
    if (data.type !== 'attachment') return;
    const attachment = data;
    const content = attachment.content as Readable;
    const staged = stageNoting(ctx, content, HEAD_BYTES).then(({ staged, head }) => ({
      fileName: attachment.filename ?? 'attachment',
      contentType: attachment.contentType,
      staged,
      head,
    }));
    // The parser goes on to the next part once this one is released, read or not.
    staged.then(
      () => attachment.release?.(),
      () => {
        content.resume();
        attachment.release?.();
      },
    );
    staging.push(staged);
  });
  const input = typeof source === 'string' ? fs.createReadStream(source) : Readable.from([source]);
  await pipeline(input, parser);
  const attachments = await Promise.all(staging);
  return { messageId, date, attachments };
}

/** The documents of a mail, labelled by kind, each with its content staged. */
export async function mailParts(
  source: Buffer | string,
  options: MailAttachmentsOptions,
  ctx: StepContext = inMemory,
): Promise<Omit<MailParts, 'parts'> & { parts: StagedPart[] }> {
  const mail = await readMail(source, ctx);
  const parts: StagedPart[] = [];
  const skipped: MailParts['skipped'] = [];
  const add = (part: Omit<StagedPart, 'entry'>): number =>
    parts.push({ ...part, entry: `part-${parts.length + 1}` });
  const archives = mail.attachments.filter((a) => isZip(a.head));
  for (const a of mail.attachments) {
    const name = a.fileName;
    if (isZip(a.head)) {
      const xdm = await readXdm(a.staged.file ?? a.staged.content!, options, ctx);
      for (const doc of xdm.documents) {
        const format = formatOf(doc.head, doc.path, doc.mimeType);
        if (!format) {
          skipped.push({
            fileName: `${name}/${doc.path}`,
            reason: `not a document this DCC files (${doc.mimeType})`,
          });
          continue;
        }
        const sidecar = format === 'pdf' ? sidecarOf(doc) : null;
        add({
          kind: kindOf(format, doc.head, options.defaultKind),
          fileName: baseName(doc.path),
          contentType: CONTENT_TYPE[format],
          staged: doc.staged,
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
    const format = formatOf(a.head, name, a.contentType);
    if (!format) {
      skipped.push({ fileName: name, reason: `not a document this DCC files (${a.contentType})` });
    } else if (format === 'pdf' && archives.length > 0) {
      skipped.push({ fileName: name, reason: 'the readable copy of the IHE_XDM.ZIP beside it' });
    } else {
      add({
        kind: kindOf(format, a.head, options.defaultKind),
        fileName: name,
        contentType: CONTENT_TYPE[format],
        staged: a.staged,
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
      messageId: (mail.messageId as string | null)?.replace(/^<|>$/g, '') ?? null,
      date: (mail.date as Date | null)?.toISOString() ?? null,
      attachments: mail.attachments.length,
    },
    parts,
    skipped,
  };
}

/** The output zip: `parts.json` first, then each part's content streamed in from its staged file. */
function partsZip(manifest: MailParts, parts: readonly StagedPart[]): yazl.ZipFile {
  const zip = new yazl.ZipFile();
  zip.addBuffer(Buffer.from(JSON.stringify(manifest)), MAIL_PARTS_ENTRY);
  for (const p of parts) {
    const options = { compress: false, size: p.staged.size };
    if (p.staged.file) zip.addReadStream(fs.createReadStream(p.staged.file), p.entry, options);
    else zip.addBuffer(p.staged.content!, p.entry, { compress: false });
  }
  zip.end();
  return zip;
}

export const mailAttachmentsStep: StepSpec<MailAttachmentsOptions> = {
  kind: 'step',
  type: 'mail-attachments',
  summary:
    'Reads the documents of a mail (IHE_XDM.ZIP with its METADATA.XML, CDA, HL7, PDF) into a list of parts labelled pathology, molecular or identity, for attachment-dispatch. XDM archives are read with caps on entries, size, compression ratio and nesting; paths leaving the archive are refused.',
  schema,
  create:
    (options) =>
    async (input: StepInput, ctx: StepContext = inMemory) => {
      const found = await mailParts(input.file?.path ?? input.content, options, ctx);
      const manifest: MailParts = { ...found, parts: found.parts.map(({ staged: _, ...part }) => part) };
      const meta = { ...input.meta, documents: found.parts.length, skipped: found.skipped.length };
      const [only, ...more] = found.parts;
      if (only && more.length === 0) {
        return stagedOutput(only.staged, {
          contentType: only.contentType,
          meta: { ...meta, [MAIL_PARTS_META]: JSON.stringify(manifest) },
        });
      }
      const zip = partsZip(manifest, found.parts).outputStream as AsyncIterable<Uint8Array>;
      return stagedOutput(await ctx.stage({ stream: zip }), { contentType: MAIL_PARTS_ZIP, meta });
    },
};
