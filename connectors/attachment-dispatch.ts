// Destination `attachment-dispatch`: hands each document of a mail (the `mail-attachments` step's
// parts) to the channel of its kind — pathology, molecular, identity — as that channel's own input,
// with the mail as its provenance. Like channel-writer, each part's dedup key derives from the
// delivery's idempotency key, so a retry after a crash is a recorded duplicate there, not a second filing.
import Type from 'typebox';
import {
  MAIL_PARTS_ENTRY,
  MAIL_PARTS_META,
  MAIL_PARTS_ZIP,
  type MailParts,
} from '../transformers/mime-attachments.ts';
import { bytesOf, type OptionsOf } from '../transformers/contract.ts';
import { zipEntries, type ZipLimits } from '../transformers/xdm-read.ts';
import {
  SendError,
  type Destination,
  type DestinationContext,
  type DestinationSpec,
  type Inbound,
  type Meta,
  type Outbound,
  type SendResult,
} from './contract.ts';

const channel = (kind: string) =>
  Type.Optional(Type.String({ minLength: 1, description: `channel that files ${kind} documents` }));

const schema = Type.Object({
  routes: Type.Object(
    { pathology: channel('pathology'), molecular: channel('molecular'), identity: channel('identity') },
    { additionalProperties: false, description: 'the channel of each kind of document' },
  ),
});

export type AttachmentDispatchOptions = OptionsOf<typeof schema>;

/** The step's own zip: its entries are stored, never nested, as many as the mail's documents. */
const PARTS_ZIP: ZipLimits = {
  maxEntries: 100_000,
  maxTotalBytes: Number.MAX_SAFE_INTEGER,
  maxRatio: Number.MAX_SAFE_INTEGER,
  maxNesting: 0,
};

const metaString = (meta: Meta, key: string): string | null =>
  typeof meta[key] === 'string' && meta[key] !== '' ? (meta[key] as string) : null;

export class AttachmentDispatch implements Destination {
  constructor(
    private readonly o: AttachmentDispatchOptions,
    private readonly ctx: DestinationContext,
  ) {}

  async send(msg: Outbound): Promise<SendResult> {
    const single = metaString(msg.meta, MAIL_PARTS_META);
    if (single !== null) {
      // One document: the step's output is that document, handed on as the blob it already is
      // (one more reference, never copied nor read whole).
      const handed = await this.handOver(msg, JSON.parse(single) as MailParts, async (hand) =>
        hand(
          0,
          msg.file
            ? { staged: { digest: msg.file.digest, size: msg.file.size, file: msg.file.path } }
            : { content: msg.content },
        ),
      );
      return answer(handed);
    }
    if (msg.contentType !== MAIL_PARTS_ZIP)
      throw partsExpected(`message ${msg.messageId} is ${msg.contentType}`);
    // Each part is staged from its entry as it is read, then handed over: one chunk in memory.
    const entries = zipEntries(msg.file?.path ?? msg.content, PARTS_ZIP, {
      stage: (from) => this.ctx.stage(from),
    });
    try {
      const first = await entries.next();
      if (first.done || first.value.path !== MAIL_PARTS_ENTRY)
        throw partsExpected(`message ${msg.messageId} has no ${MAIL_PARTS_ENTRY}`);
      const manifest = JSON.parse(bytesOf(first.value.staged).toString('utf8')) as MailParts;
      const handed = await this.handOver(msg, manifest, async (hand) => {
        for await (const entry of entries) {
          const i = manifest.parts.findIndex((p) => p.entry === entry.path);
          if (i >= 0) await hand(i, { staged: entry.staged });
        }
      });
      return answer(handed);
    } finally {
      await entries.return(undefined);
    }
  }

  /**
   * Routes every part of the mail before any leaves (a mail is handed over whole or not at all),
   * then lets `each` hand each part's content to the channel of its kind; returns what went where.
   */
  private async handOver(
    msg: Outbound,
    { mail, parts }: MailParts,
    each: (hand: (i: number, body: Pick<Inbound, 'staged' | 'content'>) => Promise<void>) => Promise<void>,
  ): Promise<string[]> {
    const targets = parts.map((p) => {
      const target = this.o.routes[p.kind];
      if (!target) {
        throw new SendError(
          'MAIL_KIND_UNROUTED',
          `${p.fileName} is a ${p.kind} document and no channel takes those here`,
          {
            retryable: false,
            hint: `set routes.${p.kind} of this destination, then replay the delivery`,
          },
        );
      }
      return target;
    });
    const sender =
      metaString(msg.meta, 'account') ?? metaString(msg.meta, 'mailFrom') ?? `channel:${this.ctx.channelId}`;
    const handed: string[] = [];
    await each(async (i, body) => {
      const part = parts[i]!;
      const receipt = await this.ctx.dispatch(targets[i]!, {
        ...body,
        contentType: part.contentType,
        meta: {
          ...part.meta,
          fileName: part.fileName,
          mailMessageId: mail.messageId,
          mailFrom: metaString(msg.meta, 'mailFrom'),
          mailbox: metaString(msg.meta, 'mailbox'),
          fromChannel: this.ctx.channelId,
          fromMessage: msg.messageId,
          part: i + 1,
        },
        sender,
        ...(msg.owner ? { owner: msg.owner } : {}),
        dedupKey: `${msg.idempotencyKey}-${i + 1}`,
      });
      handed.push(`${part.fileName} → ${targets[i]} message ${receipt.messageId}`);
    });
    return handed;
  }
}

const partsExpected = (detail: string): SendError =>
  new SendError('MAIL_PARTS_EXPECTED', detail, {
    retryable: false,
    hint: 'put a mail-attachments step before the attachment-dispatch destination',
  });

const answer = (handed: string[]): SendResult => ({
  response: Buffer.from(JSON.stringify(handed)),
  responseType: 'application/json',
  detail: handed.join('; '),
});

export const attachmentDispatchSpec: DestinationSpec<AttachmentDispatchOptions> = {
  kind: 'destination',
  type: 'attachment-dispatch',
  summary:
    'Hands each document of a mail (mail-attachments parts) to the channel of its kind (pathology, molecular, identity), with the mail as provenance in meta.',
  schema,
  create: (o, ctx) => new AttachmentDispatch(o, ctx),
};
