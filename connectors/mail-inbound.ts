// What the two mail sources (the SMTP inbox and the IMAP poller) journal for one mail: the RFC 5322
// bytes untouched, the envelope as metadata, and a de-duplication key on Message-ID (the journal adds
// the digest), so a mail sent again (a retry after a lost 250, a re-read after UIDVALIDITY changed)
// is recorded as a DUPLICATE instead of filed twice.
import { stageNoting } from '../transformers/contract.ts';
import type { Inbound, Meta, StageFrom, StagedContent } from './contract.ts';

/** The header block of a mail: up to the first empty line, at most this much read. */
const MAX_HEADER_BYTES = 256 * 1024;

/** Value of the first header of that name, unfolded; null when absent. Header names are ASCII. */
export function headerOf(raw: Buffer, name: string): string | null {
  const head = raw.subarray(0, MAX_HEADER_BYTES).toString('latin1');
  const end = head.search(/\r?\n\r?\n/);
  const block = (end < 0 ? head : head.slice(0, end)).replace(/\r?\n[ \t]+/g, ' ');
  const wanted = name.toLowerCase();
  for (const line of block.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0 && line.slice(0, colon).trim().toLowerCase() === wanted)
      return line.slice(colon + 1).trim();
  }
  return null;
}

/** The Message-ID without its angle brackets, or null. */
export function messageIdOf(raw: Buffer): string | null {
  const value = headerOf(raw, 'message-id');
  const id = value?.match(/<([^<>\s]+)>/)?.[1] ?? value?.split(/\s/)[0];
  return id ? id.slice(0, 998) : null;
}

export interface MailEnvelope {
  /** Where the mail was taken: the mailbox address, or the IMAP mailbox URL. */
  mailbox: string;
  /** Who sent it as far as the transport knows (envelope sender, authenticated account). */
  sender: string;
  owner?: string | null;
  meta: Meta;
}

/** A mail as the sources journal it: staged (a file when large), and its first bytes for the headers. */
export interface StagedMail {
  staged: StagedContent;
  /** The start of the mail, up to MAX_HEADER_BYTES: where its Message-ID is read. */
  head: Buffer;
}

/** Stages a mail as it streams in, keeping only its first bytes in memory (the header block). */
export async function stageMail(
  stage: (from: StageFrom) => Promise<StagedContent>,
  chunks: AsyncIterable<Uint8Array>,
): Promise<StagedMail> {
  return stageNoting({ stage }, chunks, MAX_HEADER_BYTES);
}

export function mailInbound(mail: StagedMail, envelope: MailEnvelope): Inbound {
  const messageId = messageIdOf(mail.head);
  return {
    staged: mail.staged,
    contentType: 'message/rfc822',
    meta: {
      ...envelope.meta,
      mailbox: envelope.mailbox,
      messageIdHeader: messageId,
      size: mail.staged.size,
    },
    sender: envelope.sender,
    ...(envelope.owner ? { owner: envelope.owner } : {}),
    // Without a Message-ID the journal keys on the digest alone: a copy is still a copy.
    ...(messageId ? { dedupKey: `mail:${envelope.mailbox}:${messageId}` } : {}),
  };
}
