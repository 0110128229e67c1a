// Identity acts through the admin API: merge two patients, undo it, link and unlink — each audited.
import assert from 'node:assert/strict';
import { acceptedInsOids } from '../../connectors/identity-writer.ts';
import { basic, startDashboard, type Dashboard, type UserKey } from './dashboard-harness.ts';

describe('patient identity acts over the API', () => {
  let d: Dashboard;
  let a: number;
  let b: number;

  before(async () => {
    d = await startDashboard();
    const { vigilance } = d.h.engine.store.write;
    const person = async (ipp: string, birthName: string) =>
      (
        await vigilance.applyIdentity(
          {
            birthName,
            firstGivenName: 'LOUISE',
            birthDate: '19500203',
            sex: 'F',
            identifiers: [{ finess: '330000001', ipp }],
          },
          { messageId: null, insOids: acceptedInsOids() },
        )
      ).patientId;
    a = await person('X1', 'DOUBLON');
    b = await person('X2', 'AUTRE');
  });
  after(() => d.stop());

  const act = (who: UserKey, id: number, action: string, other?: number | object) =>
    fetch(`${d.base}/api/patients/${id}/${action}`, {
      method: 'POST',
      headers: { authorization: basic(who), 'content-type': 'application/json' },
      body: JSON.stringify(other === undefined ? {} : typeof other === 'number' ? { other } : other),
    });

  it('merges a patient into another, redirects it, and undoes the merge', async () => {
    const { patients, audit } = d.h.engine.store;
    assert.equal((await act('operator', a, 'merge', b)).status, 200);
    assert.equal(patients.resolvePatient(a), b);
    assert.equal(patients.resolveIdentifier({ finess: '330000001', ipp: 'X1' }), b);
    assert.equal((await act('operator', a, 'unmerge')).status, 200);
    assert.equal(patients.resolvePatient(a), a);
    const acts = audit.search({ actor: 'oper1' }, {}).items.map((r) => `${r.action}:${r.patientId}`);
    assert.ok(acts.includes(`patient-merge:${a}`) && acts.includes(`patient-unmerge:${a}`), acts.join(' '));
  });

  it('links and unlinks two patients', async () => {
    assert.equal((await act('operator', a, 'link', b)).status, 200);
    assert.equal((await act('operator', a, 'unlink', b)).status, 200);
  });

  it('detaches an IPP wrongly linked to a patient: it becomes a patient of its own', async () => {
    const { patients, write } = d.h.engine.store;
    // Same strict traits from another hospital: linked by rule, and here that link is wrong.
    const twin = await write.vigilance.applyIdentity(
      {
        birthName: 'DOUBLON',
        firstGivenName: 'LOUISE',
        birthDate: '19500203',
        sex: 'F',
        identifiers: [{ finess: '330000002', ipp: 'Z9' }],
      },
      { messageId: null, insOids: acceptedInsOids() },
    );
    assert.equal(twin.patientId, a);
    assert.equal((await act('operator', a, 'detach', { finess: '330000002', ipp: 'Z9' })).status, 200);
    const own = patients.resolveIdentifier({ finess: '330000002', ipp: 'Z9' });
    assert.ok(own !== null && own !== a);
    assert.equal(patients.resolveIdentifier({ finess: '330000001', ipp: 'X1' }), a);
    assert.equal((await act('operator', a, 'detach', { finess: '330000002', ipp: 'Z9' })).status, 409);
  });

  it('refuses a viewer, a missing other patient, and an impossible act with a reason', async () => {
    assert.equal((await act('viewer', a, 'merge', b)).status, 403);
    const missing = await act('operator', a, 'link');
    assert.equal(missing.status, 400);
    assert.match(await missing.text(), /other patient/);
    const ghost = await act('operator', a, 'merge', 999_999);
    assert.equal(ghost.status, 409);
    assert.match(await ghost.text(), /999999/);
  });

  it('finds a patient by any given name and by any word of the used name, accents aside', async () => {
    const { vigilance } = d.h.engine.store.write;
    const zoe = (
      await vigilance.applyIdentity(
        {
          birthName: 'LÉGER',
          firstGivenName: 'Zoé',
          givenNames: ['Zoé', 'Amélie'],
          usedName: 'MARTIN-DUVAL',
          birthDate: '19850512',
          sex: 'F',
          identifiers: [{ finess: '330000001', ipp: 'S1' }],
        },
        { messageId: null, insOids: acceptedInsOids() },
      )
    ).patientId;
    const found = async (q: string): Promise<number[]> => {
      const res = await fetch(`${d.base}/api/patients?q=${encodeURIComponent(q)}`, {
        headers: { authorization: basic('viewer') },
      });
      assert.equal(res.status, 200, q);
      return ((await res.json()) as { items: Array<{ id: number }> }).items.map((p) => p.id);
    };
    for (const q of ['amelie', 'Zoé', 'duval', 'martin-duval', 'léger'])
      assert.deepEqual(await found(q), [zoe], q);
  });
});
