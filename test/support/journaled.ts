// Messages put straight into a store's journal, as a source would have handed them over before a
// restart: what a test of recovery or of a queue's draining starts from.
import type { Store } from '../../store/store.ts';
import type { BlobRef } from '../../store/blob-files.ts';

/** Journals one received message of `channel` for destination `out`; `processed` also queues it. */
export async function journalOne(
  store: Store,
  channel: string,
  m: { content?: Buffer; blob?: BlobRef; meta?: Record<string, string>; processed?: boolean },
): Promise<number> {
  const { messageId } = await store.write.journal.receive({
    channel,
    content: m.content ?? Buffer.alloc(0),
    blob: m.blob,
    contentType: 'application/octet-stream',
    meta: m.meta ?? {},
    sender: null,
    owner: null,
    dedupKey: null,
    rejected: null,
    destinations: ['out'],
    now: Date.now(),
  });
  if (m.processed)
    await store.write.journal.processed({ messageId, status: 'TRANSFORMED', now: Date.now() }, 'all');
  return messageId;
}
