// Steps `pathology` and `molecular`: raw content of any supported report format → the normalized
// report as JSON. The format is detected from the content (the file name only breaks ties and
// names what was expected), so a lab that sends HL7 in a file called .txt is still understood.
import { Hl7Error } from './hl7v2-error.ts';
import { StepError } from './contract.ts';
import {
  Default,
  inMemory,
  withParts,
  type ContentFile,
  type OptionsOf,
  type StepSpec,
  type Step,
  type StepInput,
} from './contract.ts';
import Type from 'typebox';
import { checkXmlSize, XmlError, XML_DEFAULT_LIMITS } from './xml.ts';
import { handOffBytes, ReportError, REPORT_CONTENT_TYPE } from './clinical-report.ts';
import type { ClinicalReport, ReportFormat, ReportKind } from './clinical-report.ts';
import { readCdaReport } from './cda-report.ts';
import { readHl7Report, requirePdf } from './hl7v2-report.ts';
import { readHprimSante, looksLikeHprimSante } from './hprim-sante.ts';
import { readHprimMedecin, looksLikeHprimMedecin } from './hprim-medecin.ts';
import { readPdfReport, looksLikePdf } from './pdf-report.ts';

export const clinicalStepSchema = Type.Object({
  acceptTestIns: Default(
    Type.Boolean({ description: 'accept the INS test and demo OIDs (test channels only)' }),
    false,
  ),
  maxXmlBytes: Default(
    Type.Integer({
      minimum: 1024,
      description:
        'largest CDA document read, in bytes: a larger one is refused (XML_TOO_LARGE) by its size, before it is read or parsed',
    }),
    XML_DEFAULT_LIMITS.maxBytes,
  ),
  maxReportBytes: Default(
    Type.Integer({
      minimum: 1024,
      description:
        'largest report of another format (HL7, HPRIM, PDF) read, in bytes: readers take a report whole, so a larger one is refused (REPORT_TOO_LARGE) by its size, before it is read',
    }),
    64 * 1024 * 1024,
  ),
  maxXmlDepth: Default(
    Type.Integer({ minimum: 16, description: 'deepest XML element nesting read' }),
    XML_DEFAULT_LIMITS.maxDepth,
  ),
});

export type ClinicalStepOptions = OptionsOf<typeof clinicalStepSchema>;

type Detected = Exclude<ReportFormat, 'hl7v2-oru' | 'hl7v2-mdm'> | 'hl7v2';

/** What the content is; undefined when no reader recognises it. */
export function detectFormat(content: Buffer, fileName = ''): Detected | undefined {
  const head = content
    .subarray(0, 64)
    .toString('latin1')
    .replace(/^\xef\xbb\xbf/, '');
  const start = head.trimStart();
  if (start.startsWith('MSH')) return 'hl7v2';
  if (looksLikePdf(content)) return 'pdf';
  if (start.startsWith('<')) return 'cda';
  if (looksLikeHprimSante(content)) return 'hprim-sante';
  if (looksLikeHprimMedecin(content)) return 'hprim-medecin';
  if (/\.pdf$/i.test(fileName)) return 'pdf';
  if (/\.xml$/i.test(fileName)) return 'cda';
  return undefined;
}

const fileNameOf = (input: StepInput): string =>
  typeof input.meta.fileName === 'string' ? input.meta.fileName : '';

/** Formats are told apart by their first bytes. */
const HEAD_BYTES = 4096;

async function headOf(file: ContentFile): Promise<Buffer> {
  // Leaving the loop closes the file: one chunk is read, never the whole file.
  for await (const chunk of file.chunks()) return Buffer.from(chunk.subarray(0, HEAD_BYTES));
  return Buffer.alloc(0);
}

/**
 * Content kept as a file (above the engine's threshold) is refused by its size, from its head
 * alone, before it is loaded whole: every reader needs the whole report in memory. XML has the XML
 * module's limit, every other format `maxReportBytes`.
 */
async function refuseBySize(
  file: ContentFile,
  fileName: string,
  options: ClinicalStepOptions,
): Promise<void> {
  try {
    if (detectFormat(await headOf(file), fileName) === 'cda')
      checkXmlSize(file.size, { maxBytes: options.maxXmlBytes ?? XML_DEFAULT_LIMITS.maxBytes });
    else if (file.size > options.maxReportBytes)
      throw new ReportError(
        'REPORT_TOO_LARGE',
        `the report is ${file.size} bytes, above the limit of ${options.maxReportBytes}`,
        'send the report with smaller attachments, or raise maxReportBytes of the step',
        fileName || undefined,
      );
  } catch (error) {
    throw error instanceof XmlError || error instanceof ReportError ? StepError.from(error) : error;
  }
}

/** Read one report, or throw a StepError the journal and the sender's error file can show. */
export function readReport(input: StepInput, kind: ReportKind, options: ClinicalStepOptions): ClinicalReport {
  const fileName = fileNameOf(input);
  const readOptions = {
    acceptTestIns: options.acceptTestIns === true,
    maxBytes: options.maxXmlBytes ?? XML_DEFAULT_LIMITS.maxBytes,
    maxDepth: options.maxXmlDepth ?? XML_DEFAULT_LIMITS.maxDepth,
  };
  try {
    switch (detectFormat(input.content, fileName)) {
      case 'hl7v2':
        return readHl7Report(input.content, kind, readOptions);
      case 'cda':
        return readCdaReport(input.content, kind, readOptions);
      case 'hprim-sante':
        return readHprimSante(input.content, kind, readOptions);
      case 'hprim-medecin':
        return readHprimMedecin(input.content, kind);
      case 'pdf': {
        requirePdf(input.content, fileName || 'the PDF');
        const sidecar = input.meta.sidecar;
        if (typeof sidecar !== 'string' || sidecar === '') {
          throw new ReportError(
            'REPORT_BAD_SIDECAR',
            'a PDF report arrived without the sidecar that names its patient',
            'send NAME.json (or an HL7 ORU/MDM NAME.hl7) beside NAME.pdf',
            fileName || undefined,
          );
        }
        return readPdfReport(input.content, Buffer.from(sidecar, 'utf8'), kind, readOptions);
      }
      default:
        throw new ReportError(
          'REPORT_UNKNOWN_FORMAT',
          `the content${fileName ? ` of ${fileName}` : ''} is not a report format this channel reads`,
          'send HL7 v2 ORU/MDM, CDA R2 (CR-ACP, CR-GM), HPRIM Santé, HPRIM Médecin, or a PDF with its sidecar',
        );
    }
  } catch (error) {
    if (error instanceof ReportError || error instanceof XmlError || error instanceof Hl7Error) {
      throw StepError.from(error);
    }
    throw error;
  }
}

function reportStep(kind: ReportKind, summary: string): StepSpec<ClinicalStepOptions> {
  return {
    kind: 'step',
    type: kind,
    summary,
    schema: clinicalStepSchema,
    create(options: ClinicalStepOptions): Step {
      return async (input, ctx) => {
        if (input.file !== undefined) await refuseBySize(input.file, fileNameOf(input), options);
        const report = readReport(input, kind, options);
        const parts = await handOffBytes(report, ctx ?? inMemory, input.file);
        const out: StepInput = {
          content: Buffer.from(JSON.stringify(report)),
          contentType: REPORT_CONTENT_TYPE,
          // Journaled beside the message: what it is, never who it is about.
          meta: {
            ...input.meta,
            reportFormat: report.format,
            reportKind: report.kind,
            documentStatus: report.document.status,
            findings: report.findings.length,
            variants: report.variants.length,
            ...(report.order === undefined ? {} : { placerOrderNumber: report.order.placerNumber }),
          },
        };
        return withParts(out, parts);
      };
    },
  };
}

export const pathologyStep = reportStep(
  'pathology',
  'Reads a pathology report (HL7 ORU/MDM, CDA CR-ACP, HPRIM Santé, HPRIM Médecin, PDF with a sidecar in meta.sidecar) into the normalized report model as JSON.',
);

export const molecularStep = reportStep(
  'molecular',
  'Reads a molecular biology result (HL7 ORU, CDA CR-GM with its variants, PDF with a sidecar in meta.sidecar) into the normalized report model as JSON.',
);
