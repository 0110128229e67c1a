// The order-oml step as a molecular-orders destination builds it: an order from the outbox becomes
// the OML^O21 of its lab; another lab's order passes by.
import assert from 'node:assert/strict';
import { builtinRegistry } from '../../channels/builtins.ts';
import { ORDER_CONTENT_TYPE } from '../../transformers/oml-o21.ts';
import { get, parse } from '../../transformers/hl7v2.ts';

describe('step order-oml (transformers/oml-o21.ts)', () => {
  const step = builtinRegistry().createStep({
    type: 'order-oml',
    lab: '310000003',
    labName: 'Biologie Démo',
  });
  const order = {
    orderNumber: 'DCC-MO-00000001',
    controlId: 'DCC-MO-00000001',
    orderedAt: '2026-01-10T09:00:00.000Z',
    patient: {
      ipp: { value: 'IPP-Q', finess: '310000001' },
      birthName: 'FICTIF',
      birthDate: '1979-03-28',
      sex: 'F',
    },
    analysis: { code: '51969-4', display: 'Génétique moléculaire', system: '2.16.840.1.113883.6.1' },
    lab: { finess: '310000003' },
    prescriber: { rpps: '10000000001', familyName: 'ONCOTEST' },
  };
  const input = (o: object) => ({
    content: Buffer.from(JSON.stringify(o)),
    contentType: ORDER_CONTENT_TYPE,
    meta: {},
  });

  it("writes this lab's order as OML^O21 named after its number", async () => {
    const out = await step(input(order));
    assert.ok(out !== null);
    const oml = parse(out.content);
    assert.equal(get(oml, 'MSH-9.1'), 'OML');
    assert.equal(get(oml, 'MSH-6.1'), 'Biologie Démo');
    assert.equal(get(oml, 'ORC-2.1'), 'DCC-MO-00000001');
    assert.equal(out.meta.fileName, 'DCC-MO-00000001.hl7');
  });

  it("lets another lab's order pass by (FILTERED here) and refuses what is not JSON", async () => {
    assert.equal(await step(input({ ...order, lab: { finess: '310000004' } })), null);
    await assert.rejects(
      async () => step({ content: Buffer.from('{'), contentType: ORDER_CONTENT_TYPE, meta: {} }),
      (e: unknown) => (e as { code?: string }).code === 'ORDER_NOT_JSON',
    );
  });
});
