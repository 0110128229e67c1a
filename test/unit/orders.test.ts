// Molecular orders in the store: one transaction numbers the order, writes the lab's outbox row with
// the patient as known then (the INS only when qualified) and the audit row; a result closes it once.
import assert from 'node:assert/strict';
import { acceptedInsOids } from '../../connectors/identity-writer.ts';
import { MOLECULAR_ORDERS, ORDER_CONTENT_TYPE, type OrderInput } from '../../store/orders.ts';
import { Store } from '../../store/store.ts';

describe('molecular orders (store/orders.ts)', () => {
  let store: Store;
  let qualified = 0;
  let provisional = 0;

  beforeEach(async () => {
    store = new Store({ dataDir: ':memory:' });
    const file = async (ipp: string, status: string) =>
      (
        await store.write.vigilance.applyIdentity(
          {
            birthName: `FICTIF-${ipp}`,
            firstGivenName: 'CAMILLE',
            birthDate: '19790328',
            sex: 'F',
            ins: { matricule: '279035121518989', oid: '1.2.250.1.213.1.4.10', status },
            reliability: status,
            identifiers: [{ finess: '310000001', ipp }],
          },
          { messageId: null, insOids: acceptedInsOids({ acceptTestIns: true }) },
        )
      ).patientId;
    qualified = await file('IPP-Q', 'QUAL');
    provisional = await file('IPP-P', 'PROV');
  });
  afterEach(() => store.close());

  const input = (patientId: number): OrderInput => ({
    patientId,
    analysis: { code: '51969-4', display: 'Génétique moléculaire', system: '2.16.840.1.113883.6.1' },
    labFiness: '310000003',
    prescriber: { rpps: '10000000001', familyName: 'ONCOTEST' },
  });
  const actor = { login: 'oper1', role: 'operator', source: '127.0.0.1' };

  it('numbers the order and writes its outbox row and audit row with it', async () => {
    const order = await store.write.orders.create(
      input(qualified),
      actor,
      Date.parse('2026-01-10T09:00:00Z'),
    );
    assert.match(order.orderNumber, /^DCC-MO-\d{8}$/);
    assert.equal(order.status, 'ordered');
    const row = store.outbox.row(order.outboxId ?? 0);
    assert.ok(row !== undefined);
    assert.equal(row.channel, MOLECULAR_ORDERS);
    assert.equal(row.contentType, ORDER_CONTENT_TYPE);
    assert.equal(row.owner, '310000003');
    const sent = JSON.parse(row.content.toString('utf8')) as {
      orderNumber: string;
      patient: { ipp?: { value: string }; ins?: { matricule: string; kind: string } };
    };
    assert.equal(sent.orderNumber, order.orderNumber);
    assert.deepEqual(sent.patient.ipp, { value: 'IPP-Q', finess: '310000001' });
    assert.equal(sent.patient.ins?.kind, 'INS-NIR-TEST');
    const trail = store.audit.search({ actor: 'oper1' }, {}).items;
    assert.deepEqual(
      trail.map((r) => [r.action, r.patientId, r.object]),
      [['order-create', qualified, `order:${order.id}`]],
    );
  });

  it('sends no INS for an identity that is not qualified', async () => {
    const order = await store.write.orders.create(input(provisional), actor, Date.now());
    const row = store.outbox.row(order.outboxId ?? 0);
    const sent = JSON.parse(row?.content.toString('utf8') ?? '{}') as { patient: { ins?: unknown } };
    assert.equal(sent.patient.ins, undefined);
  });

  it('closes an order with its first result; an unknown number or a second result changes nothing', async () => {
    const order = await store.write.orders.create(input(qualified), actor, Date.now());
    assert.equal(await store.write.orders.resultArrived(order.orderNumber, 12, Date.now()), true);
    assert.equal(await store.write.orders.resultArrived(order.orderNumber, 13, Date.now()), false);
    assert.equal(await store.write.orders.resultArrived('DCC-MO-00009999', 14, Date.now()), false);
    const closed = store.orders.get(order.id);
    assert.equal(closed?.status, 'resulted');
    assert.equal(closed?.resultDocumentId, 12);
  });

  it('refuses an order for a patient the store does not know, writing nothing', async () => {
    await assert.rejects(
      store.write.orders.create(input(999_999), actor, Date.now()),
      (e: unknown) => (e as { code?: string }).code === 'PATIENT_UNKNOWN',
    );
    assert.deepEqual(store.orders.list({}), []);
    assert.equal(store.outbox.waitingCount(MOLECULAR_ORDERS), 0);
  });

  it('lists newest first, by patient, lab, status and creating establishment', async () => {
    const a = await store.write.orders.create(input(qualified), actor, Date.now());
    const b = await store.write.orders.create(
      input(provisional),
      { ...actor, establishment: '310000001' },
      Date.now(),
    );
    assert.deepEqual(
      store.orders.list({}).map((o) => o.id),
      [b.id, a.id],
    );
    assert.deepEqual(
      store.orders.list({ patientId: qualified }).map((o) => o.id),
      [a.id],
    );
    assert.deepEqual(
      store.orders.list({ establishment: '310000001' }).map((o) => o.id),
      [b.id],
    );
    assert.deepEqual(store.orders.list({ labFiness: '310000002' }), []);
    assert.deepEqual(
      store.orders.list({ before: b.id }).map((o) => o.id),
      [a.id],
    );
  });
});
