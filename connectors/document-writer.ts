// Store writer `document-store`: files the reports of the `pathology` and `molecular` steps into the
// core store. Thin on purpose: it checks that the sender speaks for the IPPs it names, maps the
// report model to the store's input, and names `documents.fileReport` as the filing, which the
// store's writer runs (read, decide, write) in the transaction that marks the delivery SENT: a
// report is filed exactly once.
import type { Destination, DestinationContext, DestinationSpec, Filing, Outbound } from './contract.ts';
import { SendError } from './contract.ts';
import type { ClinicalReport, Attachment } from '../transformers/clinical-report.ts';
import { REPORT_CONTENT_TYPE } from '../transformers/clinical-report.ts';
import type { Identifier } from '../transformers/pam-fr.ts';
import { acceptedInsOids, ippRefs, SenderScope } from './identity-writer.ts';
import type { DocumentBytes, DocumentInput, FilingContext } from '../store/documents.ts';
import Type from 'typebox';
import { Default, type OptionsOf } from '../transformers/contract.ts';

const schema = Type.Object({
  acceptTestIns: Default(
    Type.Boolean({ description: 'Match on the INS test and demo OIDs too. Never in production.' }),
    false,
  ),
  strictTraitsMatch: Default(
    Type.Enum(['link', 'review'], {
      description:
        'A report whose strict traits equal those of exactly one patient (no known IPP, no qualified INS): file it there (link), or leave it waiting with a review item (review).',
    }),
    'link',
  ),
  nearMatchThreshold: Default(
    Type.Number({
      minimum: 0,
      maximum: 1,
      description:
        'Score from which close traits open a review item; the report waits, never filed on a guess.',
    }),
    0.9,
  ),
  maxReviews: Default(
    Type.Integer({ minimum: 0, description: 'Most review items one report opens, closest first.' }),
    3,
  ),
});

export type DocumentWriterOptions = OptionsOf<typeof schema>;

// Bytes the step left in the journal travel as their blob's name: the filing links that file.
const bytesOf = (a: Attachment): DocumentBytes =>
  a.base64 === undefined
    ? { mediaType: a.mediaType, blob: { digest: a.sha256, size: a.size ?? 0 } }
    : { mediaType: a.mediaType, bytes: Buffer.from(a.base64, 'base64') };

/**
 * The report's IPPs under their establishment's FINESS; a format that carries none (HPRIM) speaks
 * for the sending account's establishment. An IPP under an OID (a CDA's patientRole id) names no
 * FINESS the DCC could check: it is not used to match, the INS and the traits are.
 */
export function reportIpps(report: ClinicalReport, owner: string | null): Identifier[] {
  return report.patient.identifiers
    .filter((i) => i.type === 'PI' && !i.authority.includes('.'))
    .map((i) => (i.authority === '' && owner !== null ? { ...i, authority: owner } : i));
}

/** The store's input from the report model. */
export function toDocumentInput(report: ClinicalReport, owner: string | null): DocumentInput {
  const p = report.patient;
  return {
    kind: report.kind,
    format: report.format,
    ...(report.documentType ? { documentType: report.documentType } : {}),
    ...(report.template ? { template: report.template } : {}),
    ...(report.title ? { title: report.title } : {}),
    ...(report.reportDate ? { reportDate: report.reportDate } : {}),
    ...(report.author ? { author: report.author } : {}),
    ...(report.lab ? { lab: report.lab } : {}),
    ids: report.document,
    ...(report.order ? { orderNumber: report.order.placerNumber } : {}),
    ...(report.conclusion ? { conclusion: report.conclusion } : {}),
    ...(report.text ? { text: report.text } : {}),
    specimens: report.specimens,
    findings: report.findings,
    variants: report.variants,
    genesAnalysed: report.genesAnalysed,
    patient: {
      identifiers: ippRefs(reportIpps(report, owner)),
      ins: p.ins ? { matricule: p.ins.matricule, oid: p.ins.oid } : null,
      ...(p.birthName ? { birthName: p.birthName } : {}),
      ...(p.firstGivenName ? { firstGivenName: p.firstGivenName } : {}),
      ...(p.givenNames ? { givenNames: p.givenNames } : {}),
      ...(p.birthDate ? { birthDate: p.birthDate } : {}),
      ...(p.sex ? { sex: p.sex } : {}),
      ...(p.birthPlace ? { birthPlace: p.birthPlace } : {}),
    },
    original: bytesOf(report.original),
    attachments: report.attachments.map(bytesOf),
  };
}

const metaText = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);

/** The document-store destination: a thin spec, its filing is `documents.fileReport` in the store's writer. */
export class DocumentWriter implements Destination {
  private readonly insOids: string[];

  constructor(
    private readonly o: DocumentWriterOptions,
    private readonly scope: SenderScope,
    private readonly channelId: string,
  ) {
    this.insOids = acceptedInsOids({ acceptTestIns: o.acceptTestIns });
  }

  filing(msg: Outbound): Filing {
    if (msg.contentType !== REPORT_CONTENT_TYPE)
      throw new SendError(
        'DOCUMENT_NOT_REPORT',
        `document-store files the output of the pathology or molecular step, not ${msg.contentType}`,
        { retryable: false, hint: 'put a `pathology` or `molecular` step before this destination' },
      );
    const report = JSON.parse(msg.content.toString('utf8')) as ClinicalReport;
    const owner = msg.owner ?? null;
    this.scope.checkIdentifiers(reportIpps(report, owner), owner);
    const ctx: FilingContext = {
      insOids: this.insOids,
      rules: {
        strictTraitsMatch: this.o.strictTraitsMatch,
        nearMatchThreshold: this.o.nearMatchThreshold,
        maxReviews: this.o.maxReviews,
      },
      provenance: {
        messageId: msg.messageId,
        channel: this.channelId,
        fileName: metaText(msg.meta['fileName']),
        mail: metaText(msg.meta['mailFrom']),
        sender: metaText(msg.meta['account']),
        owner,
      },
    };
    return { module: 'documents', method: 'fileReport', args: [toDocumentInput(report, owner), ctx] };
  }
}

export const documentWriterSpec: DestinationSpec<DocumentWriterOptions> = {
  kind: 'destination',
  type: 'document-store',
  summary:
    'Files pathology reports and molecular results (output of the `pathology` and `molecular` steps) into the core store, on the patient the identity-vigilance rules designate, in the same transaction as the delivery: exactly once. A report no rule designates waits in the vigilance queue.',
  schema,
  create: (o, ctx: DestinationContext) => {
    if (ctx.directory === undefined)
      throw new Error('document-store needs the directory of establishments: deploy it in an engine');
    return new DocumentWriter(o, new SenderScope(ctx.directory), ctx.channelId);
  },
};
