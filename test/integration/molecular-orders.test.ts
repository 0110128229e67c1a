// A molecular order's round trip (issue 10 item 5 and its proof): created over the API (curl,
// audited, least privilege), sent by the shipped molecular-orders channel as OML^O21 to a real
// OpenSSH server, answered by an ORU^R01 carrying its number that the lab drops with OpenSSH `sftp`
// on the shipped molecular channel's SFTP drop: the order is closed with that result attached.
//
// curl runs asynchronously: the server answering it lives in this process, and a synchronous child
// (execFileSync) would block the event loop that must answer it — the hang of an earlier attempt.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import ssh2 from 'ssh2';
import YAML from 'yaml';
import type { FastifyInstance } from 'fastify';
import { listenDashboard } from '../support/dashboard-listen.ts';
import { acceptedInsOids } from '../../connectors/identity-writer.ts';
import { get, parse } from '../../transformers/hl7v2.ts';
import { addAccount, startEngine, tempDir, until, type Harness } from '../support/engine-harness.ts';
import { openssh } from '../support/openssh-sftp.ts';
import { freePort } from '../support/ports.ts';
import { startSshd, type Sshd } from '../support/sshd.ts';

const LAB = '310000003';
const HOSPITAL = '310000001';
const root = path.resolve(import.meta.dirname, '../..');
const shipped = (id: string): object =>
  YAML.parse(fs.readFileSync(path.join(root, 'config/channels', `${id}.yaml`), 'utf8')) as object;

const users = {
  operator: { login: 'oper1', password: 'oper-pass-1', role: 'operator' },
  viewer: { login: 'view1', password: 'view-pass-1', role: 'viewer' },
  lab: { login: 'lab-mol', password: 'lab-mol-pass', role: 'lab', finess: LAB },
  otherLab: { login: 'lab-other', password: 'lab-other-pass', role: 'lab', finess: '310000002' },
  hospital: { login: 'chu', password: 'chu-pass-1234', role: 'establishment', finess: HOSPITAL },
  stranger: { login: 'other-hosp', password: 'other-pass-1', role: 'establishment', finess: '310000009' },
} as const;
type Who = keyof typeof users;
interface Order {
  id: number;
  orderNumber: string;
  status: string;
  resultDocumentId: number | null;
  resultedAt: string | null;
}
type Answer = Order & { error?: string } & Order[];

const run = promisify(execFile);

/** An HTTP call made by curl, the client an integrator scripts with: status and JSON body. */
async function curl(
  base: string,
  who: Who,
  method: string,
  url: string,
  body?: object,
): Promise<{ status: number; json: Answer }> {
  const args = ['-sS', '-o', '-', '-w', '\n%{http_code}', '-X', method, '-u'];
  args.push(`${users[who].login}:${users[who].password}`);
  if (body !== undefined)
    args.push('-H', 'content-type: application/json', '--data-binary', JSON.stringify(body));
  const { stdout } = await run('curl', [...args, `${base}${url}`], { encoding: 'utf8' });
  const at = stdout.lastIndexOf('\n');
  const text = stdout.slice(0, at);
  return { status: Number(stdout.slice(at + 1)), json: (text === '' ? null : JSON.parse(text)) as Answer };
}

describe('molecular orders: API → OML^O21 on a real sshd → ORU dropped back over SFTP closes the order', function () {
  this.timeout(120_000);
  let sshd: Sshd;
  let h: Harness;
  let app: FastifyInstance;
  let base = '';
  let dropPort = 0;
  let dir = '';
  let labKey = '';
  let patientId = 0;
  const env: Record<string, string> = {};
  const saved: Record<string, string | undefined> = {};

  before(async () => {
    sshd = await startSshd();
    fs.mkdirSync(path.join(sshd.files, 'orders'));
    dir = tempDir('onco-orders-');
    const dataDir = path.join(dir, 'data');
    fs.mkdirSync(path.join(dataDir, 'keys'), { recursive: true });
    // Where the shipped channel looks by default: the lab's key and host key under data/keys.
    fs.writeFileSync(path.join(dataDir, 'keys', `lab-${LAB}`), sshd.clientPrivateKey, { mode: 0o600 });
    fs.writeFileSync(
      path.join(dataDir, 'keys', 'known_hosts'),
      `[127.0.0.1]:${sshd.port} ${sshd.hostPublicKey}\n`,
    );
    labKey = path.join(dir, 'lab-key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', '', '-f', labKey]);
    dropPort = await freePort();
    Object.assign(env, {
      ONCO_LAB_310000003_SFTP_ENABLED: 'true',
      ONCO_LAB_310000003_SFTP_PORT: String(sshd.port),
      ONCO_LAB_310000003_SFTP_USER: sshd.user,
      ONCO_LAB_310000003_SFTP_PATH: path.join(sshd.files, 'orders'),
      ONCO_SFTP_PORT: String(dropPort),
      ONCO_ACCEPT_TEST_INS: 'true',
    });
    for (const [k, v] of Object.entries(env)) {
      saved[k] = process.env[k];
      process.env[k] = v;
    }
    h = await startEngine({
      dataDir,
      channels: [shipped('molecular-orders'), shipped('molecular')],
      directory: {
        establishments: [
          { finess: HOSPITAL, name: 'CHU Démo', kind: 'hospital' },
          { finess: '310000002', name: 'Anapath Démo', kind: 'pathology-lab', reportsFor: 'all' },
          { finess: LAB, name: 'Biologie moléculaire Démo', kind: 'molecular-lab', reportsFor: 'all' },
        ],
      },
      start: false,
    });
    const parsed = ssh2.utils.parseKey(fs.readFileSync(`${labKey}.pub`, 'utf8'));
    if (parsed instanceof Error) throw parsed;
    for (const u of Object.values(users))
      await addAccount(h.engine.store, {
        ...u,
        ...(u === users.lab ? { publicKeys: [{ algorithm: parsed.type, key: parsed.getPublicSSH() }] } : {}),
      });
    await h.engine.start();
    ({ app, base } = await listenDashboard(h.engine));
    const filed = await h.engine.store.write.vigilance.applyIdentity(
      {
        birthName: 'FICTIF',
        givenNames: ['CAMILLE', 'MARIE'],
        firstGivenName: 'CAMILLE',
        birthDate: '19790328',
        sex: 'F',
        ins: { matricule: '279035121518989', oid: '1.2.250.1.213.1.4.10', status: 'QUAL' },
        reliability: 'QUAL',
        identifiers: [{ finess: HOSPITAL, ipp: 'IPP-000123' }],
      },
      { messageId: null, insOids: acceptedInsOids({ acceptTestIns: true }) },
    );
    patientId = filed.patientId;
  });

  after(async () => {
    await app?.close();
    await h?.stop();
    await sshd?.stop();
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const order = (over: object = {}) => ({
    patientId,
    analysis: {
      code: '51969-4',
      display: 'Analyse de génétique moléculaire',
      system: '2.16.840.1.113883.6.1',
    },
    labFiness: LAB,
    prescriber: { rpps: '10000000001', familyName: 'ONCOTEST', givenName: 'Anne' },
    clinicalInformation: 'Adénocarcinome pulmonaire, recherche EGFR',
    ...over,
  });

  /** The lab's result for an order, as its system writes it: our molecular ORU fixture, renumbered. */
  const resultFor = (orderNumber: string, controlId: string): string =>
    fs
      .readFileSync(path.join(root, 'test/fixtures/clinical/molecular-oru.hl7'), 'utf8')
      .replaceAll('CMD-MOL-0007', orderNumber)
      .replace('MOL-0007-1', controlId);

  const drop = async (name: string, content: string): Promise<void> => {
    const local = path.join(dir, name);
    fs.writeFileSync(local, content);
    const put = await openssh(dropPort, users.lab.login, labKey, [`put ${local} /in/molecular/${name}`]);
    assert.equal(put.code, 0, put.stderr);
  };

  it('sends the order to its lab as OML^O21; the ORU carrying its number closes it with the result', async () => {
    const created = await curl(base, 'hospital', 'POST', '/api/orders', order());
    assert.equal(created.status, 201, JSON.stringify(created.json));
    const { id, orderNumber } = created.json;
    assert.match(orderNumber, /^DCC-MO-\d{8}$/);
    assert.equal(created.json.status, 'ordered');

    // The lab's OpenSSH server received the order under its number, as the lab reads it.
    const file = path.join(sshd.files, 'orders', `${orderNumber}.hl7`);
    await until(() => fs.existsSync(file), `${file} on the lab's SFTP server`, 30_000);
    const oml = parse(fs.readFileSync(file));
    assert.equal(get(oml, 'MSH-9.1'), 'OML');
    assert.equal(get(oml, 'MSH-9.2'), 'O21');
    assert.equal(get(oml, 'MSH-6.2'), LAB);
    assert.equal(get(oml, 'ORC-1'), 'NW');
    assert.equal(get(oml, 'ORC-2.1'), orderNumber);
    assert.equal(get(oml, 'OBR-2.1'), orderNumber);
    assert.equal(get(oml, 'OBR-4.1'), '51969-4');
    assert.equal(get(oml, 'OBR-16.1'), '10000000001');
    assert.equal(get(oml, 'PID-3[1].1'), 'IPP-000123');
    assert.equal(get(oml, 'PID-5.1'), 'FICTIF');

    // The lab answers with the number the OML carried, through the real SFTP drop.
    await drop('result-1.hl7', resultFor(get(oml, 'ORC-2.1'), 'MOL-RT-1'));
    const closed = await until(async () => {
      const read = await curl(base, 'hospital', 'GET', `/api/orders/${id}`);
      return read.json.status === 'resulted' ? read.json : null;
    }, 'the order closed by its result');
    const documentId = closed.resultDocumentId!;
    const docs = h.engine.store.documents.listOfPatient(patientId);
    assert.deepEqual(
      docs.map((d) => [d.id, d.kind, d.source]),
      [[documentId, 'molecular', 'result-1.hl7']],
    );
    const doc = await curl(base, 'operator', 'GET', `/api/documents/${documentId}`);
    assert.equal(doc.status, 200);
    const filed = doc.json as unknown as { versions: Array<{ orderNumber: string }>; patientId: number };
    assert.equal(filed.patientId, patientId);
    assert.equal(filed.versions[0]!.orderNumber, orderNumber);
    // The ACK file tells the lab its result was accepted.
    const ack = path.join(dir, 'result-1.ack');
    const got = await until(async () => {
      const r = await openssh(dropPort, users.lab.login, labKey, [
        `get /out/ack/result-1.hl7.ack.hl7 ${ack}`,
      ]);
      return r.code === 0 ? r : null;
    }, 'the ACK file');
    assert.equal(got.code, 0, got.stderr);
    assert.match(fs.readFileSync(ack, 'utf8'), /MSA\|AA\|MOL-RT-1/);

    // A second result for the same order is filed as an ordinary result: the order keeps the first.
    await drop('result-2.hl7', resultFor(orderNumber, 'MOL-RT-2').replace('c.35G>A', 'c.34G>T'));
    await until(() => h.engine.store.documents.listOfPatient(patientId).length === 2, 'second result');
    const again = await curl(base, 'hospital', 'GET', `/api/orders/${id}`);
    assert.equal(again.json.resultDocumentId, documentId);

    const trail = h.engine.store.audit
      .search({ actor: 'chu' }, {})
      .items.map((r) => `${r.action}:${r.patientId}`);
    assert.ok(trail.includes(`order-create:${patientId}`), trail.join(' '));
    assert.ok(trail.includes(`order-read:${patientId}`), trail.join(' '));
  });

  it('least privilege: the lab reads its orders only, a viewer cannot order, a stranger sees nothing', async () => {
    const created = await curl(base, 'operator', 'POST', '/api/orders', order());
    assert.equal(created.status, 201);
    const id = created.json.id;
    assert.equal((await curl(base, 'lab', 'GET', `/api/orders/${id}`)).status, 200);
    assert.ok((await curl(base, 'lab', 'GET', '/api/orders')).json.length >= 1);
    assert.equal((await curl(base, 'otherLab', 'GET', `/api/orders/${id}`)).status, 404);
    assert.deepEqual((await curl(base, 'otherLab', 'GET', '/api/orders')).json, []);
    assert.equal((await curl(base, 'lab', 'POST', '/api/orders', order())).status, 403);
    assert.equal((await curl(base, 'viewer', 'POST', '/api/orders', order())).status, 403);
    // An establishment orders only for patients it numbered, and sees only its own orders.
    assert.equal((await curl(base, 'stranger', 'POST', '/api/orders', order())).status, 404);
    assert.equal((await curl(base, 'stranger', 'GET', `/api/orders/${id}`)).status, 404);
    assert.equal((await curl(base, 'hospital', 'GET', `/api/orders/${id}`)).status, 404);
  });

  it('refuses an order to a lab that is not a molecular lab of the directory, and a bad RPPS', async () => {
    const wrongLab = await curl(base, 'operator', 'POST', '/api/orders', order({ labFiness: '310000002' }));
    assert.equal(wrongLab.status, 400);
    assert.equal(wrongLab.json.error, 'ORDER_LAB_UNKNOWN');
    const badRpps = await curl(
      base,
      'operator',
      'POST',
      '/api/orders',
      order({ prescriber: { rpps: '123' } }),
    );
    assert.equal(badRpps.status, 400);
  });
});
