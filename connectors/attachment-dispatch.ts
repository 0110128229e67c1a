// Destination `attachment-dispatch`: hands each document of a mail (the `mail-attachments` step's
// parts) to the channel of its kind — pathology, molecular, identity — as that channel's own input,
// with the mail as its provenance. Like channel-writer, each part's dedup key derives from the
// delivery's idempotency key, so a retry after a crash is a recorded duplicate there, not a second filing.
import Type from 'typebox';
import { MAIL_PARTS_JSON, type MailParts } from '../transformers/mime-attachments.ts';
import type { OptionsOf } from '../transformers/contract.ts';
import {
  SendError,
  type Destination,
  type DestinationContext,
  type DestinationSpec,
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

const metaString = (meta: Meta, key: string): string | null =>
  typeof meta[key] === 'string' && meta[key] !== '' ? (meta[key] as string) : null;

export class AttachmentDispatch implements Destination {
  constructor(
    private readonly o: AttachmentDispatchOptions,
    private readonly ctx: DestinationContext,
  ) {}

  async send(msg: Outbound): Promise<SendResult> {
    if (msg.contentType !== MAIL_PARTS_JSON) {
      throw new SendError('MAIL_PARTS_EXPECTED', `message ${msg.messageId} is ${msg.contentType}`, {
        retryable: false,
        hint: 'put a mail-attachments step before the attachment-dispatch destination',
      });
    }
    const { mail, parts } = JSON.parse(msg.content.toString('utf8')) as MailParts;
    // Every part routed before any leaves: a mail is handed over whole or not at all.
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
    for (const [i, part] of parts.entries()) {
      const receipt = await this.ctx.dispatch(targets[i]!, {
        content: Buffer.from(part.content, 'base64'),
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
    }
    return {
      response: Buffer.from(JSON.stringify(handed)),
      responseType: 'application/json',
      detail: handed.join('; '),
    };
  }
}

export const attachmentDispatchSpec: DestinationSpec<AttachmentDispatchOptions> = {
  kind: 'destination',
  type: 'attachment-dispatch',
  summary:
    'Hands each document of a mail (mail-attachments parts) to the channel of its kind (pathology, molecular, identity), with the mail as provenance in meta.',
  schema,
  create: (o, ctx) => new AttachmentDispatch(o, ctx),
};
