// Conformance against the national agency's public HL7 v2 examples (ansforge/hl7V2-exemples),
// read where ONCO_ANS_KIT points (CI: ../shared/ans). The kit is never copied into the repository.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { parse, encode, get, splitBatch } from '../../transformers/hl7v2.ts';
import { parseAck } from '../../transformers/hl7v2-ack.ts';
import { mapPamFr, PamError } from '../../transformers/pam-fr.ts';

const kit = process.env.ONCO_ANS_KIT;
const root = kit === undefined ? undefined : path.join(kit, 'hl7v2-examples');

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    return statSync(full).isDirectory() ? filesUnder(full) : [full];
  });
}

describe('ANS HL7 v2 kit (hl7V2-exemples)', function () {
  before(function () {
    if (root === undefined) {
      console.log(
        '    skipped: ONCO_ANS_KIT is not set (point it at the folder holding hl7v2-examples/, e.g. ../shared/ans)',
      );
      this.skip();
    }
  });

  const all = (): string[] => filesUnder(root as string).filter((f) => /\.(er7|hl7)$/.test(f));

  it('parses every message of the kit without loss (byte-exact round trip)', () => {
    const files = all();
    assert.ok(files.length >= 20, `expected the kit's 24 files, found ${files.length}`);
    for (const file of files) {
      const bytes = readFileSync(file);
      const messages = splitBatch(bytes).messages;
      assert.equal(messages.length, 1, file);
      const message = parse(messages[0] as Buffer);
      assert.equal(encode(message), bytes.toString('utf8'), file);
    }
  });

  it('maps every PAM FR message to identity events carrying the INS, the IPP and the strict traits', () => {
    const pam = all().filter((f) => get(parse(readFileSync(f)), 'MSH-21.2').includes('PAM'));
    assert.ok(pam.length >= 7, `expected the SGL and consent PAM FR examples, found ${pam.length}`);
    for (const file of pam) {
      const [event, ...rest] = mapPamFr(parse(readFileSync(file)), { acceptTestIns: true });
      assert.equal(rest.length, 0, file);
      assert.equal(event?.kind, 'upsert', file);
      if (event?.kind !== 'upsert') continue;
      const p = event.patient;
      assert.deepEqual(
        p.ins,
        { matricule: '279035121518989', oid: '1.2.250.1.213.1.4.10', kind: 'INS-NIR-TEST' },
        file,
      );
      assert.deepEqual(
        p.identifiers.filter((id) => id.type === 'PI').map((id) => [id.value, id.authority]),
        [['000003', '000897406']],
        file,
      );
      assert.deepEqual(
        [p.birthName, p.firstGivenName, p.birthDate, p.sex, p.birthPlace, p.reliability.status],
        ['PAT-TROIS', 'DOMINIQUE', '1979-03-28', 'F', '63220', 'VALI'],
        file,
      );
    }
  });

  it('refuses the document messages (ORU, MDM) and ACKs as non-identity messages, with AR', () => {
    const others = all().filter((f) => !get(parse(readFileSync(f)), 'MSH-21.2').includes('PAM'));
    assert.ok(others.length >= 15, `expected the ORU/MDM examples and their ACKs, found ${others.length}`);
    for (const file of others) {
      const message = parse(readFileSync(file));
      assert.throws(
        () => mapPamFr(message, { acceptTestIns: true }),
        (e: unknown) => e instanceof PamError && e.code === 'PAM_UNSUPPORTED_MESSAGE' && e.ackCode === 'AR',
        file,
      );
    }
  });

  it('reads the kit ACKs', () => {
    const acks = all().filter((f) => path.basename(f).startsWith('ack.'));
    assert.ok(acks.length >= 4);
    for (const file of acks) {
      const ack = parseAck(readFileSync(file));
      assert.deepEqual([ack.code, ack.controlId, ack.accepted], ['AA', '015', true], file);
    }
  });
});
