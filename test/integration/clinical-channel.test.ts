// The pathology and molecular steps inside a real engine (real journal): a report reaches the
// destination as the report model; hostile content ends in ERROR with its code and hint in the
// journal and reaches no destination.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { builtinRegistry } from '../../channels/builtins.ts';
import { startEngine, until, type Harness } from '../support/engine-harness.ts';
import { idleSource, makeSink, type Sink } from '../support/sink.ts';
import type { ClinicalReport } from '../../transformers/clinical-report.ts';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/clinical');

describe('clinical channel: pathology and molecular steps in the engine', () => {
  let h: Harness | undefined;
  let sink: Sink;

  beforeEach(async () => {
    sink = makeSink();
    const registry = builtinRegistry().register(sink.spec, idleSource);
    const channel = (id: string, step: string): object => ({
      id,
      source: { type: 'test-idle' },
      steps: [{ type: step, acceptTestIns: true }],
      destinations: [{ name: 'out', type: 'test-sink' }],
    });
    h = await startEngine({
      channels: [channel('pathology', 'pathology'), channel('molecular', 'molecular')],
      registry,
    });
  });

  afterEach(async () => {
    await h?.stop();
    h = undefined;
  });

  const send = (channel: string, content: Buffer, meta: Record<string, string> = {}) =>
    h!.engine.dispatch(channel, { content, contentType: 'application/octet-stream', meta });

  it('delivers a molecular ORU as the report model, variants included', async () => {
    await send('molecular', readFileSync(path.join(fixtures, 'molecular-oru.hl7')));
    await until(() => sink.received.length === 1, 'delivery');
    const delivered = sink.received[0]!;
    assert.equal(delivered.contentType, 'application/vnd.onco-relay.report+json');
    const report = JSON.parse(delivered.content.toString('utf8')) as ClinicalReport;
    assert.deepEqual(
      report.variants.map((v) => v.gene),
      ['EGFR', 'KRAS'],
    );
    assert.equal(delivered.meta.placerOrderNumber, 'CMD-MOL-0007');
  });

  it('journals hostile content as ERROR with its code and hint, and delivers nothing', async () => {
    const laughs = Buffer.from(
      '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "ha"><!ENTITY b "&a;&a;&a;&a;">]><ClinicalDocument>&b;</ClinicalDocument>',
    );
    const notPdf = Buffer.from('not a pdf at all');
    const badBase64 = Buffer.from(
      'MSH|^~\\&|LAB|LABO|ONCO-RELAY|DCC|20260115103000||ORU^R01^ORU_R01|X1|P|2.5|||||FRA|UNICODE UTF-8\r' +
        'PID|1||IPP-1^^^CHU&310000001&M^PI||FICTIF^Camille^^^^^L\r' +
        'OBX|1|ED|60568-3^CR^LN||^TEXT^XML^Base64^%%%notbase64%%%||||||F\r',
    );
    const cases: Array<[Buffer, Record<string, string>, RegExp]> = [
      [
        laughs,
        { fileName: 'cr.xml' },
        /^XML_DTD_REFUSED: .*DOCTYPE.*Hint: send the document without <!DOCTYPE/,
      ],
      [notPdf, { fileName: 'cr.pdf', sidecar: '{}' }, /^REPORT_NOT_PDF: .*Hint: send the PDF file itself/],
      [
        badBase64,
        { fileName: 'cr.hl7' },
        /^REPORT_BAD_BASE64: .*\(at OBX\[1\]-5\).*Hint: encode the document/,
      ],
    ];
    const channel = h!.engine.channel('pathology');
    for (const [content, meta, expected] of cases) {
      const { messageId } = await send('pathology', content, meta);
      const outcome = await channel.outcome(messageId);
      assert.equal(outcome.status, 'ERROR', meta.fileName);
      assert.match(outcome.error ?? '', expected);
    }
    assert.equal(sink.received.length, 0);
  });
});
