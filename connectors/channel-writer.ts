// Channel writer destination: hands the message to another channel, which journals it as its own
// input. The target's receipt is the response, so the journal links the two messages.
import Type from 'typebox';
import type {
  Destination,
  DestinationContext,
  DestinationSpec,
  Outbound,
  SendResult,
  SourceSpec,
} from './contract.ts';
import type { OptionsOf } from '../transformers/contract.ts';

const schema = Type.Object({ channel: Type.String({ description: 'Id of the target channel.' }) });

export type ChannelWriterOptions = OptionsOf<typeof schema>;

export class ChannelWriter implements Destination {
  constructor(
    private readonly o: ChannelWriterOptions,
    private readonly ctx: DestinationContext,
  ) {}

  async send(msg: Outbound): Promise<SendResult> {
    // The idempotency key doubles as the target's dedup key: a retry after a crash is recorded as a duplicate there.
    const receipt = await this.ctx.dispatch(this.o.channel, {
      content: msg.content,
      contentType: msg.contentType,
      meta: { ...msg.meta, fromChannel: this.ctx.channelId, fromMessage: msg.messageId },
      sender: `channel:${this.ctx.channelId}`,
      dedupKey: msg.idempotencyKey,
    });
    return {
      response: Buffer.from(JSON.stringify(receipt)),
      responseType: 'application/json',
      detail: `${this.o.channel} message ${receipt.messageId}`,
    };
  }
}

export const channelWriterSpec: DestinationSpec<ChannelWriterOptions> = {
  kind: 'destination',
  type: 'channel-writer',
  summary: 'Hands each message to another channel of this engine, as if its source had received it.',
  schema,
  create: (o, ctx) => new ChannelWriter(o, ctx),
};

/** The receiving end of the channel writer: a channel fed only by other channels of this engine. */
export const channelSourceSpec: SourceSpec<Record<string, never>> = {
  kind: 'source',
  type: 'channel',
  summary:
    'Takes only the messages other channels of this engine hand over (channel-writer, document-router); listens to nothing outside.',
  schema: Type.Object({}),
  create: () => ({ start: async () => undefined, stop: async () => undefined }),
};
