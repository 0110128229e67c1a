// Validates CDA documents the way the national agency's test kit does: the CDA XSD (Debian's
// xmllint) and the official ISO schematrons (XSLT 2 bound: Saxon-HE on Java, compiled with the ISO
// skeleton XSLs of Debian's python3-lxml; route of ../shared/ans/SOURCES.md). The kit is read where
// ONCO_ANS_KIT points and never written to: compiled stylesheets live in a temporary copy of its
// layout, where `../jeuxDeValeurs/` (the value sets the rules load with document()) is a symlink.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { attr, element, elements, parseXml, text } from '../../transformers/xml.ts';

const run = promisify(execFile);

export type CdaKind = 'FRCP' | 'PPS';

/** Schematrons by path under the kit's schematrons/ folder (without `.sch`). */
const SCHEMATRON = {
  FRCP: 'CI-SIS_CANCER-FRCP_2022.01',
  PPS: 'CI-SIS_CANCER-PPS_2022.01',
  /** The CI-SIS content models (sections and entries of every CI-SIS document), beyond the document's own rules. */
  contentModels: 'profils/CI-SIS_ModelesDeContenusCDA',
} as const;

const SAXON_JARS = ['/usr/share/java/Saxon-HE.jar', '/usr/share/java/Saxon-HE-9.9.jar'];
const SKELETON_DIRS = [
  '/usr/lib/python3/dist-packages/lxml/isoschematron/resources/xsl/iso-schematron-xslt1',
];
const COMPILER = fileURLToPath(new URL('./compile-schematron.xsl', import.meta.url));

export interface AnsTools {
  /** TestContenuCDA-3-0 folder of the kit. */
  cdaKit: string;
  saxonJar: string;
  skeleton: string;
}

/** Either the tools the suite needs, or what is missing and how to get it. */
export function locateTools(env: NodeJS.ProcessEnv = process.env): AnsTools | { missing: string[] } {
  const missing: string[] = [];
  const kit = env.ONCO_ANS_KIT;
  const cdaKit = kit === undefined || kit === '' ? undefined : path.resolve(kit, 'TestContenuCDA-3-0');
  if (cdaKit === undefined)
    missing.push('ONCO_ANS_KIT is not set (point it at the folder holding TestContenuCDA-3-0/)');
  else if (!existsSync(path.join(cdaKit, 'schematrons')))
    missing.push(`ONCO_ANS_KIT has no TestContenuCDA-3-0/schematrons (looked in ${cdaKit})`);
  if (!onPath('java')) missing.push('java is not on PATH (Debian: default-jre-headless)');
  if (!onPath('xmllint')) missing.push('xmllint is not on PATH (Debian: libxml2-utils)');
  const saxonJar = [env.ONCO_SAXON_JAR, ...SAXON_JARS].find((f) => f !== undefined && existsSync(f));
  if (saxonJar === undefined)
    missing.push('Saxon-HE is not installed (Debian: libsaxonhe-java; or set ONCO_SAXON_JAR)');
  const skeleton = SKELETON_DIRS.find((d) => existsSync(path.join(d, 'iso_svrl_for_xslt1.xsl')));
  if (skeleton === undefined)
    missing.push('the ISO schematron skeleton XSLs are missing (Debian: python3-lxml)');
  if (missing.length > 0 || cdaKit === undefined || saxonJar === undefined || skeleton === undefined)
    return { missing };
  return { cdaKit, saxonJar, skeleton };
}

function onPath(command: string): boolean {
  return (process.env.PATH ?? '')
    .split(path.delimiter)
    .some((dir) => dir !== '' && existsSync(path.join(dir, command)));
}

export interface FailedAssert {
  /** The schematron's XPath test: stable, names the rule that failed. */
  test: string;
  location: string;
  text: string;
}

export interface SchematronResult {
  failedAsserts: FailedAssert[];
  /** Rules that applied: 0 means the document was not even recognised. */
  firedRules: number;
}

export interface CdaReport {
  name: string;
  /** xmllint's schema-validity errors for this document (empty: valid against CDA_extended.xsd). */
  xsdErrors: string[];
  /** The document's own schematron (CANCER-FRCP or CANCER-PPS). */
  document: SchematronResult;
  /** The CI-SIS content-model schematron. */
  contentModels: SchematronResult;
}

export interface CdaDocument {
  /** File name, unique within one validate() call: letters, digits, dot, dash, underscore. */
  name: string;
  kind: CdaKind;
  xml: string;
}

/** Compiles the schematrons once (per AnsValidator: one per test run) and validates batches of documents. */
export class AnsValidator {
  readonly #tools: AnsTools;
  #work: Promise<string> | undefined;

  constructor(tools: AnsTools) {
    this.#tools = tools;
  }

  /** The temporary kit layout holding `schematrons/<PATH>.xsl`; compiled on first call only. */
  compile(): Promise<string> {
    this.#work ??= this.#compile();
    return this.#work;
  }

  async #compile(): Promise<string> {
    const work = await mkdtemp(path.join(os.tmpdir(), 'onco-ans-'));
    await mkdir(path.join(work, 'schematrons'));
    await symlink(path.join(this.#tools.cdaKit, 'jeuxDeValeurs'), path.join(work, 'jeuxDeValeurs'));
    await this.#saxon([
      '-it',
      `-xsl:${COMPILER}`,
      `skeleton=${pathToFileURL(this.#tools.skeleton).href}`,
      `base=${pathToFileURL(path.join(this.#tools.cdaKit, 'schematrons')).href}`,
      `schemas=${Object.values(SCHEMATRON)
        .map((n) => `${n}.sch`)
        .join(' ')}`,
      `out=${pathToFileURL(path.join(work, 'schematrons')).href}`,
    ]);
    return work;
  }

  /**
   * Validates every document against the XSD, its kind's schematron and the content models: one
   * xmllint and three Saxon processes for the whole batch.
   */
  async validate(documents: readonly CdaDocument[]): Promise<CdaReport[]> {
    const work = await this.compile();
    const batch = await mkdtemp(path.join(work, 'batch-'));
    const dir = (name: string): string => path.join(batch, name);
    for (const name of ['all', 'FRCP', 'PPS', 'svrl-FRCP', 'svrl-PPS', 'svrl-all']) await mkdir(dir(name));
    for (const doc of documents) {
      if (!/^[\w.-]+$/.test(doc.name))
        throw new Error(`document name "${doc.name}" is not a plain file name`);
      await writeFile(path.join(dir('all'), doc.name), doc.xml);
      await writeFile(path.join(dir(doc.kind), doc.name), doc.xml);
    }
    const compiled = (n: string): string => path.join(work, 'schematrons', `${n}.xsl`);
    const runs: Array<[string, string]> = [
      ['all', SCHEMATRON.contentModels],
      ...(['FRCP', 'PPS'] as const)
        .filter((kind) => documents.some((d) => d.kind === kind))
        .map((kind): [string, string] => [kind, SCHEMATRON[kind]]),
    ];
    const [xsd] = await Promise.all([
      this.#xsd(documents.map((d) => path.join(dir('all'), d.name))),
      ...runs.map(([input, schematron]) =>
        this.#saxon([`-s:${dir(input)}`, `-xsl:${compiled(schematron)}`, `-o:${dir(`svrl-${input}`)}`]),
      ),
    ]);
    const reports: CdaReport[] = [];
    for (const doc of documents) {
      reports.push({
        name: doc.name,
        xsdErrors: xsd.get(path.join(dir('all'), doc.name)) ?? [],
        document: await svrl(path.join(dir(`svrl-${doc.kind}`), doc.name)),
        contentModels: await svrl(path.join(dir('svrl-all'), doc.name)),
      });
    }
    await rm(batch, { recursive: true, force: true });
    return reports;
  }

  /** xmllint errors grouped by file (one process for the whole batch). */
  async #xsd(files: string[]): Promise<Map<string, string[]>> {
    const schema = path.join(this.#tools.cdaKit, 'infrastructure', 'cda', 'CDA_extended.xsd');
    let stderr: string;
    try {
      stderr = (
        await run('xmllint', ['--noout', '--nonet', '--schema', schema, ...files], { maxBuffer: 64 << 20 })
      ).stderr;
    } catch (error) {
      // xmllint exits 3 when a document is invalid: its findings are on stderr all the same.
      const failed = error as { code?: unknown; stderr?: string };
      if (failed.code !== 3 || failed.stderr === undefined) throw error;
      stderr = failed.stderr;
    }
    const byFile = new Map<string, string[]>();
    for (const line of stderr.split('\n')) {
      const file = files.find((f) => line.startsWith(`${f}:`));
      if (file === undefined) continue;
      byFile.set(file, [...(byFile.get(file) ?? []), line.slice(file.length + 1)]);
    }
    return byFile;
  }

  async #saxon(args: string[]): Promise<void> {
    await run('java', ['-cp', this.#tools.saxonJar, 'net.sf.saxon.Transform', ...args], {
      maxBuffer: 64 << 20,
    });
  }

  async dispose(): Promise<void> {
    const work = this.#work;
    this.#work = undefined;
    const dir = await work?.catch(() => undefined);
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  }
}

async function svrl(file: string): Promise<SchematronResult> {
  const report = parseXml(await readFile(file, 'utf8'));
  return {
    failedAsserts: elements(report, 'failed-assert').map((f) => ({
      test: attr(f, 'test') ?? '',
      location: attr(f, 'location') ?? '',
      text: text(element(f, 'text')),
    })),
    firedRules: elements(report, 'fired-rule').length,
  };
}
