// What an MLLP sender relies on: an ACK means "stored". node-hl7-client streams messages to a child
// engine that is killed with SIGKILL at random moments, some of them between the commit and the ACK;
// after each restart the sender resends everything it holds no ACK for, with the same MSH-10. At the
// end each message is filed exactly once, every resend of a stored message is recorded as a
// duplicate, and the destination has written every message.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { Client, Message } from 'node-hl7-client';
import {
  copiesById,
  crashDirs,
  CrashedEngine,
  filedOnce,
  killLoop,
  writeCrashConfig,
  type CrashSender,
} from '../support/crash-loop.ts';
import { until } from '../support/engine-harness.ts';
import { a28 } from '../support/pam.ts';
import net from 'node:net';
import { frame, MllpFramer } from '../../connectors/mllp-framer.ts';
import { Store } from '../../store/store.ts';
import { searchMessages } from '../../channels/message-index.ts';

const KILLS = 6;
const MAX_KILLS = 15;
/** Unacknowledged messages a sender keeps on the wire: the ones a kill can catch after their commit. */
const WINDOW = 20;
const CONNECTIONS = 4;
/** The identity phase: 8 connections at full speed, each with a deeper window, killed at least this often. */
const IDENTITY_KILLS = 10;
const IDENTITY_CONNECTIONS = 8;
const IDENTITY_WINDOW = 50;
const FINESS = '310000001';

function adt(controlId: string): string {
  return (
    `MSH|^~\\&|GAM|CHU-X|DCC|ONCO|20240306111154||ADT^A01^ADT_A01|${controlId}|P|2.5^FRA^2.11|||||FRA|UNICODE UTF-8\r` +
    `PID|||${controlId}^^^CHU-X^PI||DUPONT^Zoé^^^^^L||19700101|F\r`
  );
}

/** A number as six letters: names far apart, so that every A28 is a new patient (no link, no review). */
function letters(n: number): string {
  let v = (n * 7919 + 104_729) % 26 ** 6;
  let out = '';
  for (let i = 0; i < 6; i++, v = Math.floor(v / 26)) out += String.fromCharCode(65 + (v % 26));
  return out;
}

/** An A28 of a new patient, its IPP the control id. */
function a28Of(controlId: string): string {
  const n = Number(controlId.slice(1));
  const birthDate = `${1930 + (n % 80)}${String(1 + (n % 12)).padStart(2, '0')}${String(1 + (n % 28)).padStart(2, '0')}`;
  return a28(
    { ipp: controlId, finess: FINESS, birthName: letters(n), given: letters(n + 1), birthDate, sex: 'F' },
    controlId,
  );
}

function writeIdentityConfig(dir: string, port: number): void {
  writeCrashConfig(dir, MAX_KILLS, {
    'directory.yaml': { establishments: [{ finess: FINESS, name: 'CHU', kind: 'hospital' }] },
    'channels/ids.yaml': {
      id: 'ids',
      source: { type: 'mllp-listener', port, respond: 'on-commit' },
      steps: [{ type: 'pam-fr' }],
      destinations: [{ name: 'identities', type: 'identity-store', queue: 'ordered' }],
    },
  });
}

function writeConfig(dir: string, port: number): void {
  writeCrashConfig(dir, MAX_KILLS, {
    'channels/hl7-in.yaml': {
      id: 'hl7-in',
      source: { type: 'mllp-listener', port, respond: 'on-commit' },
      destinations: [{ name: 'out', type: 'file-writer', path: 'out', fileName: '{key}' }],
    },
  });
}

/** Control ids of the MSA segments in an ACK text (node-hl7-client may hand over two ACKs as one). */
const ackedIds = (text: string) => [...text.matchAll(/(?:^|\r)MSA\|(?:AA|CA)\|([^|\r]*)/g)].map((m) => m[1]!);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A sender that remembers what it has not had an ACK for. Each session is a few connections to one
 * engine life: they resend the unacknowledged messages first, then produce new ones.
 */
class ResendingSender implements CrashSender {
  readonly sends = new Map<string, number>();
  readonly acked = new Set<string>();
  produced = 0;
  producing = true;

  constructor(
    private readonly o: { connections: number; window: number; text: (id: string) => string } = {
      connections: CONNECTIONS,
      window: WINDOW,
      text: adt,
    },
  ) {}

  /** Opens CONNECTIONS connections to the engine at `port`; returns a function that ends them. */
  session(port: number): () => Promise<void> {
    const client = new Client({ host: '127.0.0.1' });
    const resend = this.unacknowledged();
    let alive = true;
    const worker = async (): Promise<void> => {
      const connection = client.createConnection(
        { port, waitAck: false, maxConnectionAttempts: 1, retryLow: 50, retryHigh: 200 },
        (res) => {
          for (const id of ackedIds(res.getMessage().toString())) this.acked.add(id);
        },
      );
      // A killed engine closes the connections: the session ends, the next one resends.
      connection.on('error', () => (alive = false));
      connection.on('close', () => (alive = false));
      const send = async (id: string): Promise<void> => {
        this.sends.set(id, (this.sends.get(id) ?? 0) + 1);
        await connection.sendMessage(new Message({ text: this.o.text(id) }));
      };
      try {
        while (alive && resend.length) await send(resend.shift()!);
        while (alive && this.producing) {
          if (this.sends.size - this.acked.size >= this.o.window * this.o.connections) await sleep(2);
          else await send(`C${String(this.produced++).padStart(5, '0')}`);
        }
      } catch {
        alive = false; // sending on a connection the kill has closed
      }
    };
    const running = Promise.all(Array.from({ length: this.o.connections }, worker));
    return async () => {
      alive = false;
      await running;
      client.closeAll();
    };
  }

  unacknowledged(): string[] {
    return [...this.sends.keys()].filter((id) => !this.acked.has(id));
  }
}

describe('MLLP crash safety (kill -9 between receipt and ACK)', function () {
  this.timeout(90_000);
  const engines: CrashedEngine[] = [];
  after(() => {
    for (const e of engines) e.killAll();
  });

  it(`files every message exactly once across ${KILLS} or more kills, resends recorded as duplicates`, async () => {
    const { configDir, dataDir, port } = await crashDirs('mllp-crash');
    writeConfig(configDir, port);
    const sender = new ResendingSender();
    const engine = new CrashedEngine(configDir, dataDir);
    engines.push(engine);
    // A kill lands between a commit and its ACK only now and then: go on past KILLS until one has.
    const kills = await killLoop(engine, sender, port, {
      kills: KILLS,
      maxKills: MAX_KILLS,
      lifeMs: [300, 1000],
      lastAcksMs: 20_000,
      drainMs: 20_000,
    });

    const rows = engine.read(
      (d) =>
        d
          .prepare(
            `SELECT id, status, json_extract(meta, '$.controlId') AS controlId FROM messages
             WHERE channel = 'hl7-in' ORDER BY id`,
          )
          .all() as Array<{ id: number; status: string; controlId: string }>,
    );
    const { byId, filed, duplicates } = filedOnce(
      rows,
      (r) => r.controlId,
      sender.acked,
      path.join(dataDir, 'out'),
      { message: 'message', ack: 'ACK' },
    );
    for (const [id, copies] of byId)
      assert.ok(copies.length <= sender.sends.get(id)!, `${id}: no copy the sender did not send`);
    for (const r of filed) {
      const written = fs.readFileSync(path.join(dataDir, 'out', `hl7-in-${r.id}-out`), 'utf8');
      assert.match(written, new RegExp(`\\|ADT\\^A01\\^ADT_A01\\|${r.controlId}\\|`));
    }
    const resent = [...sender.sends.values()].filter((n) => n > 1).length;
    console.log(
      `      ${sender.produced} messages, ${kills} kills, ${resent} resent, ${duplicates} recorded as duplicates`,
    );
  });

  it(`files every acknowledged A28 exactly once under ${IDENTITY_CONNECTIONS}-connection load at full speed across ${IDENTITY_KILLS} kills`, async function () {
    // Ten restarts of a real engine and the filing of every A28: minutes on a loaded CI machine.
    this.timeout(600_000);
    const { configDir, dataDir, port } = await crashDirs('ids-crash');
    writeIdentityConfig(configDir, port);
    const sender = new ResendingSender({
      connections: IDENTITY_CONNECTIONS,
      window: IDENTITY_WINDOW,
      text: a28Of,
    });
    const engine = new CrashedEngine(configDir, dataDir);
    engines.push(engine);
    await killLoop(engine, sender, port, {
      kills: IDENTITY_KILLS,
      lifeMs: [300, 1000],
      lastAcksMs: 30_000,
      drainMs: 60_000,
      draining: 'the identity filing to drain',
    });

    const { rows, identifiers, patients } = engine.read((d) => ({
      rows: d
        .prepare(
          `SELECT m.id, m.status, json_extract(m.meta, '$.controlId') AS controlId,
             (SELECT count(*) FROM identity_decisions WHERE message_id = m.id) AS decisions
           FROM messages m WHERE channel = 'ids' ORDER BY id`,
        )
        .all() as Array<{ id: number; status: string; controlId: string; decisions: number }>,
      identifiers: d
        .prepare(
          `SELECT ipp, count(*) AS n, count(DISTINCT patient_id) AS patients FROM patient_identifiers GROUP BY ipp`,
        )
        .all() as Array<{ ipp: string; n: number; patients: number }>,
      patients: d.prepare('SELECT count(*) FROM patients').pluck().get() as number,
    }));

    const byId = copiesById(rows, (r) => r.controlId, sender.acked);
    for (const [id, [first, ...later]] of byId) {
      assert.equal(first!.status, 'SENT', `${id}: its first copy is filed`);
      assert.equal(first!.decisions, 1, `${id}: filed exactly once (one identity decision)`);
      for (const copy of later) assert.equal(copy.decisions, 0, `${id}: a duplicate files nothing`);
    }
    assert.equal(identifiers.length, sender.acked.size, 'one IPP per acknowledged message');
    assert.ok(
      identifiers.every((i) => i.n === 1 && i.patients === 1),
      'each IPP attached once, to one patient',
    );
    assert.equal(patients, sender.acked.size, 'one patient per acknowledged A28');
    const resent = [...sender.sends.values()].filter((n) => n > 1).length;
    console.log(
      `      ${sender.produced} A28, ${IDENTITY_KILLS} kills, ${resent} resent, ${rows.length - byId.size} recorded as duplicates`,
    );
  });

  it('finds a message by search once indexing catches up after a kill -9 between its receipt and its indexing', async () => {
    const { configDir, dataDir, port } = await crashDirs('index-crash');
    writeConfig(configDir, port);
    const engine = new CrashedEngine(configDir, dataDir);
    engines.push(engine);
    const db = () => new Database(path.join(dataDir, 'onco-relay.db'), { readonly: true });
    const state = (controlId: string) => {
      const d = db();
      const mark = d.prepare('SELECT high_water FROM message_index_state').pluck().get() as number;
      const id = d
        .prepare(`SELECT id FROM messages WHERE json_extract(meta, '$.controlId') = ?`)
        .pluck()
        .get(controlId) as number | undefined;
      d.close();
      return { mark, id };
    };
    /** Sends one message and kills the engine the moment its ACK arrives. */
    const sendAndKill = async (child: ChildProcess, controlId: string): Promise<void> => {
      const socket = net.connect(port, '127.0.0.1');
      const framer = new MllpFramer();
      await new Promise<void>((resolve, reject) => {
        socket.on('data', (chunk) => {
          if (framer.push(chunk).some((e) => e.type === 'frame')) {
            child.kill('SIGKILL');
            resolve();
          }
        });
        socket.on('error', reject);
        socket.write(frame(Buffer.from(adt(controlId))));
      });
      await new Promise((r) => child.once('exit', r));
      socket.destroy();
    };

    // The indexer may have caught the message before the kill: try again until a kill fell between.
    let found: { controlId: string; id: number } | undefined;
    let child: ChildProcess;
    for (let attempt = 0; attempt < 10 && !found; attempt++) {
      child = await engine.start();
      const controlId = `IDX${attempt}`;
      await sendAndKill(child, controlId);
      const { mark, id } = state(controlId);
      assert.ok(id !== undefined, `${controlId} was acknowledged, so it is journaled`);
      if (id > mark) found = { controlId, id };
    }
    assert.ok(found, 'a kill fell between a receipt and its indexing');
    child = await engine.start();
    await until(() => state(found!.controlId).mark >= found!.id, 'the indexer to resume past it', 20_000);
    child.kill('SIGTERM');
    assert.equal(await new Promise((r) => child.once('exit', r)), 0);
    const store = new Store({ dataDir, writer: 'inline' });
    try {
      const hits = searchMessages(store, { text: found.controlId }).items.map((m) => m.id);
      assert.deepEqual(hits, [found.id]);
    } finally {
      await store.close();
    }
  });
});
