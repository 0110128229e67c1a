// Inside the writer thread: the one write connection and an instance of every writer module. What
// arrives while a commit runs waits in the port and joins the next group transaction.
import { parentPort, workerData } from 'node:worker_threads';
import { BULK_CHECKPOINT_PAGES, openDatabase, WRITER_CACHE_MIB } from './db.ts';
import { callModule, GroupCommit, reclaim, runOn } from './group-commit.ts';
import { documentFilesIn, writerModules } from './store.ts';
import { startCheckpointer } from './writer-thread-checkpoint.ts';
import {
  asBuffers,
  errorToValue,
  type FromWriter,
  type ToWriter,
  type WriteReply,
  type WriteRequest,
  type WriterInit,
  nameThisThread,
} from './writer-thread.ts';

nameThisThread('onco-writer');
const port = parentPort!;
const init = workerData as WriterInit;
const db = openDatabase(init.file, { synchronous: init.synchronous, cacheMiB: WRITER_CACHE_MIB });
if (init.bulkLoad) db.pragma(`wal_autocheckpoint = ${BULK_CHECKPOINT_PAGES}`);
// The head file of the audit chain is the main thread's business: it reads the committed head.
const modules = writerModules(
  db,
  { key: Buffer.from(init.auditKey), headFile: null },
  documentFilesIn(init.documentsDir),
);
const gc = new GroupCommit(db);
// Beside a bulk load too: with its rare checkpoints (BULK_CHECKPOINT_PAGES) it measured better.
const checkpointer = startCheckpointer(init.file, init.synchronous);

let outbox: WriteReply[] = [];

/** The module method a request names, as an operation of the group commit. */
const call = (r: WriteRequest) => () => callModule(modules, r.module, r.method, asBuffers(r.args));

/** Replies of one commit go back in one message, once its callers' promises have all settled. */
function reply(r: WriteReply): void {
  if (outbox.length === 0) queueMicrotask(send);
  outbox.push(r);
}

function send(): void {
  const replies = outbox;
  outbox = [];
  const stats = { ...gc.stats };
  try {
    port.postMessage({ type: 'replies', replies, stats } satisfies FromWriter);
  } catch {
    // A result that cannot cross (a module returned a function): that one caller is told, not all.
    for (const r of replies) {
      try {
        port.postMessage({ type: 'replies', replies: [r], stats } satisfies FromWriter);
      } catch (error) {
        const failed: WriteReply = { id: r.id, ok: false, error: errorToValue(error) };
        port.postMessage({ type: 'replies', replies: [failed], stats } satisfies FromWriter);
      }
    }
  }
}

port.on('message', (m: ToWriter) => {
  switch (m.type) {
    case 'run':
      for (let i = 0; i < m.requests.length; i++) {
        const r = m.requests[i]!;
        if (r.mode === 'mark') {
          // Marks posted together share one no-fsync commit.
          let end = i + 1;
          while (end < m.requests.length && m.requests[end]!.mode === 'mark') end++;
          const marks = m.requests.slice(i, end);
          i = end - 1;
          let outcomes: Array<{ ok: boolean; value: unknown }>;
          try {
            outcomes = gc.markEach(marks.map(call));
          } catch (error) {
            outcomes = marks.map(() => ({ ok: false, value: error }));
          }
          marks.forEach((q, k) => {
            const o = outcomes[k]!;
            reply(
              o.ok
                ? { id: q.id, ok: true, value: o.value }
                : { id: q.id, ok: false, error: errorToValue(o.value) },
            );
          });
          continue;
        }
        runOn(gc, r.mode, call(r)).then(
          (value) => reply({ id: r.id, ok: true, value }),
          (error: unknown) => reply({ id: r.id, ok: false, error: errorToValue(error) }),
        );
      }
      return;
    case 'reclaim':
      try {
        gc.flush();
        reclaim(db);
        reply({ id: m.id, ok: true, value: undefined });
      } catch (error) {
        reply({ id: m.id, ok: false, error: errorToValue(error) });
      }
      return;
    case 'close':
      gc.close();
      // After the last replies went out (they are sent from a microtask of this turn), and after
      // the checkpointer: the last connection to close checkpoints and removes the WAL.
      setImmediate(async () => {
        await checkpointer.stop();
        db.close();
        port.postMessage({ type: 'closed' } satisfies FromWriter);
        port.close();
      });
      return;
  }
});
