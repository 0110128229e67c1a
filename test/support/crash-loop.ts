// The kill -9 loop of the crash tests: a child engine on one configuration and data directory,
// killed with SIGKILL at random moments while a sender streams to it, restarted each time, and the
// sender's next session resending what it holds no acknowledgement for. Then the checks every such
// test makes of the journal: drained, and each acknowledged message filed once, its resends
// recorded as duplicates.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import YAML from 'yaml';
import { startChildEngine } from './child-engine.ts';
import { tempDir, until } from './engine-harness.ts';
import { freePort } from './ports.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * engine.yaml of a crash test. Its kills land on whatever is in flight, and after a restart the
 * suspects of the last kill run first, alone, where the next kill often finds them: a message those
 * kills cut `poisonLimit` times would be quarantined as poison. The kills are the test's, not the
 * message's, so the limit is set above the kills (the poison guard has tests of its own).
 */
export function crashEngineYaml(maxKills: number): string {
  return YAML.stringify({ http: { port: 0 }, defaults: { poisonLimit: maxKills + 1 } });
}

/**
 * Writes a crash test's configuration in `configDir`: engine.yaml (crashEngineYaml) and each of
 * `files`, by its path in the configuration ('channels/x.yaml', 'directory.yaml'), as YAML.
 */
export function writeCrashConfig(configDir: string, maxKills: number, files: Record<string, unknown>): void {
  fs.mkdirSync(path.join(configDir, 'channels'), { recursive: true });
  fs.writeFileSync(path.join(configDir, 'engine.yaml'), crashEngineYaml(maxKills));
  for (const [file, content] of Object.entries(files))
    fs.writeFileSync(path.join(configDir, file), YAML.stringify(content));
}

/** A crash test's new configuration and data directories, and a free port for its source. */
export async function crashDirs(name: string): Promise<{ configDir: string; dataDir: string; port: number }> {
  return {
    configDir: tempDir(`onco-${name}-config-`),
    dataDir: tempDir(`onco-${name}-data-`),
    port: await freePort(),
  };
}

/** A sender that remembers what the engine did not acknowledge (an MTA's queue, an MLLP client's). */
export interface CrashSender {
  /** Connects to the engine at `port`, resends the unacknowledged, produces; returns its end. */
  session(port: number): () => Promise<void>;
  /** Whether a session may produce new messages (false: it only resends). */
  producing: boolean;
  /** Every message sent: how many times, by id. */
  readonly sends: Map<string, number>;
  unacknowledged(): string[];
}

/** Child engines run one after the other on one configuration and data directory. */
export class CrashedEngine {
  private readonly children = new Set<ChildProcess>();

  constructor(
    readonly configDir: string,
    readonly dataDir: string,
  ) {}

  async start(): Promise<ChildProcess> {
    const child = await startChildEngine(['--config', this.configDir, '--data', this.dataDir]);
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  /** The journal, read-only, as it is on disk now (a running engine may be writing). */
  db(): Database.Database {
    return new Database(path.join(this.dataDir, 'onco-relay.db'), { readonly: true });
  }

  /** Reads the journal once and closes it. */
  read<T>(query: (db: Database.Database) => T): T {
    const d = this.db();
    try {
      return query(d);
    } finally {
      d.close();
    }
  }

  duplicates(): number {
    return this.read(
      (d) => d.prepare(`SELECT count(*) FROM messages WHERE status = 'DUPLICATE'`).pluck().get() as number,
    );
  }

  /** Waits until no delivery is waiting and no message is left unprocessed. */
  drained(what: string, ms: number): Promise<unknown> {
    return until(
      () =>
        this.read(
          (d) =>
            d
              .prepare(
                `SELECT (SELECT count(*) FROM deliveries WHERE status IN ('WAITING','QUEUED'))
                      + (SELECT count(*) FROM messages WHERE status = 'RECEIVED')`,
              )
              .pluck()
              .get() === 0,
        ),
      what,
      ms,
    );
  }

  /** For `after()`: whatever a failed test left running. */
  killAll(): void {
    for (const c of this.children) c.kill('SIGKILL');
  }
}

export interface KillLoop {
  /** Kills at least this many… */
  kills: number;
  /** …and, when given, goes on up to this many until a kill fell between a commit and its acknowledgement. */
  maxKills?: number;
  /** How long each engine life lasts before its kill, at random in [min, max] ms. */
  lifeMs: [number, number];
  /** How long the last session may take to have every message acknowledged. */
  lastAcksMs: number;
  /** How long the journal may take to drain after the last acknowledgement. */
  drainMs: number;
  /** Says what drains, for the timeout's message. */
  draining?: string;
}

/**
 * Runs the sender against engines killed with SIGKILL and restarted, then lets it resend what is
 * left, waits for the journal to drain, and stops the last engine with SIGTERM (it must exit 0).
 * Returns the number of kills.
 */
export async function killLoop(
  engine: CrashedEngine,
  sender: CrashSender,
  port: number,
  o: KillLoop,
): Promise<number> {
  let child = await engine.start();
  let endSession = sender.session(port);
  let kills = 0;
  while (kills < o.kills || (o.maxKills !== undefined && kills < o.maxKills && engine.duplicates() === 0)) {
    kills++;
    const [min, max] = o.lifeMs;
    await sleep(min + Math.random() * (max - min));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    await endSession();
    child = await engine.start();
    endSession = sender.session(port);
  }
  sender.producing = false;
  await until(() => sender.unacknowledged().length === 0, 'the last acknowledgements', o.lastAcksMs);
  await endSession();
  await engine.drained(o.draining ?? 'the destination to drain', o.drainMs);
  child.kill('SIGTERM');
  assert.equal(await new Promise((r) => child.once('exit', r)), 0, 'SIGTERM stops the engine with 0');
  return kills;
}

/**
 * The copies of each message in the journal, by its id: asserts that every acknowledged message is
 * journaled (and nothing else), its first copy filed and every later one a duplicate.
 */
export function copiesById<R extends { status: string }>(
  rows: readonly R[],
  idOf: (row: R) => string,
  acknowledged: Iterable<string>,
): Map<string, R[]> {
  const byId = new Map<string, R[]>();
  for (const r of rows) byId.set(idOf(r), [...(byId.get(idOf(r)) ?? []), r]);
  assert.deepEqual(
    [...byId.keys()].sort(),
    [...acknowledged].sort(),
    'every acknowledged message is journaled',
  );
  for (const [id, copies] of byId) {
    assert.notEqual(copies[0]!.status, 'DUPLICATE', `${id}: its first copy is filed`);
    assert.deepEqual(
      copies.slice(1).map((r) => r.status),
      copies.slice(1).map(() => 'DUPLICATE'),
      `${id}: every later copy is recorded as a duplicate, not filed again`,
    );
  }
  return byId;
}

/**
 * The checks of a kill loop whose destination is a file writer to `outDir`: every acknowledged
 * message filed once and its resends recorded as duplicates (copiesById), one written file per filed
 * message, and at least one duplicate, the proof that a kill fell between a commit and its
 * acknowledgement (`ack`, as the protocol says it).
 */
export function filedOnce<R extends { status: string }>(
  rows: readonly R[],
  idOf: (row: R) => string,
  acknowledged: Iterable<string>,
  outDir: string,
  o: { message: string; ack: string },
): { byId: Map<string, R[]>; filed: R[]; duplicates: number } {
  const byId = copiesById(rows, idOf, acknowledged);
  const filed = rows.filter((r) => r.status !== 'DUPLICATE');
  assert.equal(writtenFiles(outDir).length, filed.length, `one written file per filed ${o.message}`);
  const duplicates = rows.length - byId.size;
  assert.ok(duplicates > 0, `some kill fell between a commit and its ${o.ack}: the scenario was exercised`);
  return { byId, filed, duplicates };
}

/** The files a file-writer destination wrote in `dir` (its temporary files start with a dot). */
export const writtenFiles = (dir: string): string[] => fs.readdirSync(dir).filter((n) => !n.startsWith('.'));
