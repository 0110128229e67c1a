// The RCP admin API over HTTP (CONTRACT.md): a meeting and a form in the contract's flat JSON,
// validated, corrected (version 2, RPLC), read back with the delivery status of each recipient.
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { listenDashboard } from '../support/dashboard-listen.ts';
import { addAccount, startEngine, until, type Harness } from '../support/engine-harness.ts';
import {
  documentDirectory,
  flatForm,
  flatMeeting,
  INS,
  knownPatient,
  NORD,
  SUD,
} from '../support/documents-out.ts';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';

const shipped = (id: string): object =>
  YAML.parse(fs.readFileSync(path.join(import.meta.dirname, '../../config/channels', `${id}.yaml`), 'utf8'));

const operator = { login: 'oper1', password: 'oper-pass-1', role: 'operator' as const };
const viewer = { login: 'view1', password: 'view-pass-1', role: 'viewer' as const };
const auth = (u: { login: string; password: string }) =>
  `Basic ${Buffer.from(`${u.login}:${u.password}`).toString('base64')}`;

interface Recipient {
  recipient: string;
  status: string | null;
  lastError: string | null;
}
interface FormView {
  id: number;
  version: number;
  status: string;
  documentId: string;
  versions: Array<{ id: number; version: number; status: string; documentId: string }>;
  delivery: { state: string; recipients: Recipient[]; unreachable: string[] };
}

describe('RCP admin API', function () {
  this.timeout(60_000);
  let h: Harness;
  let app: FastifyInstance;
  let base: string;
  let patientId: number;

  before(async () => {
    // CHU Nord picks its documents up too here, and has no SFTP account: its delivery fails alone.
    const directory = {
      ...documentDirectory,
      establishments: documentDirectory.establishments.map((e) => ({ ...e, documents: undefined })),
    };
    h = await startEngine({
      channels: [shipped('documents-out'), shipped('documents-pickup'), shipped('documents-mail')],
      directory,
    });
    for (const u of [operator, viewer]) await addAccount(h.engine.store, u);
    await addAccount(h.engine.store, {
      login: 'chu-sud',
      role: 'establishment',
      finess: SUD,
      password: 'pw-chu-sud-1',
    });
    patientId = await knownPatient(h.engine.store, true);
    ({ app, base } = await listenDashboard(h.engine));
  });
  after(async () => {
    await app?.close();
    await h?.stop();
  });

  const call = async (
    method: string,
    url: string,
    body?: unknown,
    who: { login: string; password: string } = operator,
  ) => {
    const res = await fetch(`${base}${url}`, {
      method,
      headers: {
        authorization: auth(who),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return {
      status: res.status,
      body: text.startsWith('{') || text.startsWith('[') ? JSON.parse(text) : text,
    };
  };

  const meeting = flatMeeting;
  const form = (meetingId: number) => flatForm(patientId, meetingId);

  it('creates, validates and corrects a form; each recipient has its own delivery status', async () => {
    const m = await call('POST', '/api/rcp/meetings', meeting);
    assert.equal(m.status, 200, JSON.stringify(m.body));
    const created = await call('POST', '/api/rcp/forms', form(m.body.id));
    assert.deepEqual(created.body, { id: created.body.id, status: 'draft', version: 1 });
    const id = created.body.id as number;
    assert.equal((await call('POST', `/api/rcp/forms/${id}/validate`)).body.status, 'validated');
    // Each recipient's PDF and XDM are drawn on the way: allow for a loaded machine.
    const view = await until(
      async () => {
        const v = (await call('GET', `/api/rcp/forms/${id}`)).body as FormView;
        return v.delivery.recipients.length === 5 &&
          v.delivery.recipients.every((r) => r.status === 'SENT' || r.status === 'ERROR')
          ? v
          : null;
      },
      'every recipient settled',
      60_000,
    );
    const byRecipient = Object.fromEntries(view.delivery.recipients.map((r) => [r.recipient, r]));
    assert.equal(byRecipient[`finess:${SUD}`]!.status, 'SENT');
    assert.equal(byRecipient[`finess:${NORD}`]!.status, 'ERROR');
    assert.match(byRecipient[`finess:${NORD}`]!.lastError!, /PICKUP_NO_ACCOUNT/);
    assert.equal(byRecipient['rpps:10000000004']!.status, 'SENT');
    assert.equal(byRecipient.mes!.status, 'SENT');
    assert.equal(view.documentId, `FRCP-${id}-1`);

    const cda = await call('GET', `/api/rcp/forms/${id}/cda`);
    assert.match(cda.body, /<code code="C50\.2"[^>]*codeSystem="2\.16\.840\.1\.113883\.6\.3"/);
    assert.match(cda.body, new RegExp(`extension="${INS}"`));

    const v2 = await call('PUT', `/api/rcp/forms/${id}`, {
      ...form(m.body.id),
      question: 'Question corrigée ?',
    });
    assert.deepEqual(v2.body, { id: v2.body.id, status: 'draft', version: 2 });
    await call('POST', `/api/rcp/forms/${v2.body.id}/validate`);
    const corrected = await until(async () => {
      const r = await call('GET', `/api/rcp/forms/${v2.body.id}/cda`);
      return r.status === 200 ? (r.body as string) : null;
    }, 'version 2 written');
    assert.match(
      corrected,
      new RegExp(
        `<relatedDocument typeCode="RPLC"><parentDocument><id root="[0-9.]+" extension="FRCP-${id}-1"/>`,
      ),
    );
    const versions = ((await call('GET', `/api/rcp/forms/${id}`)).body as FormView).versions;
    assert.deepEqual(
      versions.map((v) => [v.version, v.documentId]),
      [
        [1, `FRCP-${id}-1`],
        [2, `FRCP-${id}-2`],
      ],
    );
    const reads = h.engine.store.audit
      .search({ actor: 'oper1' }, {})
      .items.filter((r) => r.action === 'frcp-read');
    assert.ok(reads.length >= 2 && reads.every((r) => r.patientId === patientId));
  });

  it('records an opposition: the next form goes nowhere near Mon espace santé', async () => {
    const m = await call('POST', '/api/rcp/meetings', meeting);
    assert.equal(
      (await call('PUT', `/api/patients/${patientId}/oppositions/mes`, { opposed: true })).status,
      200,
    );
    const f = await call('POST', '/api/rcp/forms', form(m.body.id));
    await call('POST', `/api/rcp/forms/${f.body.id}/validate`);
    const view = await until(async () => {
      const v = (await call('GET', `/api/rcp/forms/${f.body.id}`)).body as FormView;
      return v.delivery.state === 'routed' ? v : null;
    }, 'routed');
    assert.deepEqual(view.delivery.recipients.map((r) => r.recipient).sort(), [
      `finess:${SUD}`,
      `finess:${NORD}`,
      'rpps:10000000004',
      'rpps:10000000005',
    ]);
    await call('PUT', `/api/patients/${patientId}/oppositions/mes`, { opposed: false });
  });

  it('imports forms produced elsewhere, and refuses a viewer’s writes', async () => {
    const m = await call('POST', '/api/rcp/meetings', meeting);
    const imported = await call('POST', '/api/rcp/forms/import', [
      { ...form(m.body.id), externalId: 'EXT-1' },
      { ...form(m.body.id), externalId: 'EXT-1' },
    ]);
    assert.equal(imported.body.items[0].status, 'validated');
    assert.equal(imported.body.items[1].error.code, 'RCP_ALREADY_IMPORTED');
    assert.equal((await call('POST', '/api/rcp/forms', form(m.body.id), viewer)).status, 403);
    const bad = await call('POST', '/api/rcp/forms', { patientId, meetingId: m.body.id });
    assert.equal(bad.status, 422);
    assert.equal(bad.body.error, 'RCP_INVALID');
  });
});
