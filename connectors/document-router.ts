// Document routing destination (documents-out): one validated document becomes one message per
// recipient, each handed to the channel of its way (channel dispatch, as the channel writer does),
// so that each recipient has its own delivery status, retries and replay. The recipients are those
// the `rcp-cda` step named in meta (establishments by FINESS, professionals by RPPS with their
// role); how each is reached comes from the directory: an establishment's preferred way, a
// professional's MSSanté mailbox; Mon espace santé only when the store allowed it (qualified INS,
// no opposition). A retry hands the same messages again under the same keys: the target channels
// record them as duplicates, never as new sends.
import Type from 'typebox';
import {
  SendError,
  type Destination,
  type DestinationContext,
  type DestinationSpec,
  type DirectoryEntry,
  type DocumentRoute,
  type Filing,
  type Meta,
  type Outbound,
  type SendResult,
} from './contract.ts';
import { Default, type OptionsOf } from '../transformers/contract.ts';

const ROLES = ['referring', 'gp', 'participant', 'referent', 'contact'] as const;

const schema = Type.Object({
  professionals: Default(
    Type.Array(Type.Enum(ROLES), {
      description:
        'Which professionals named by a document receive it by MSSanté (those with a mailbox in the directory).',
    }),
    ['referring', 'gp', 'referent', 'contact'],
  ),
  establishments: Default(
    Type.Boolean({ description: 'Send to the patient’s establishments (and the RCP’s site).' }),
    true,
  ),
  mes: Default(
    Type.Boolean({ description: 'Send to the patient’s Mon espace santé when the store allows it.' }),
    true,
  ),
  channels: Default(
    Type.Object(
      {
        'sftp-push': Type.String({ description: 'Pushes to the establishment’s SFTP server.' }),
        pickup: Type.String({ description: 'Puts in its /out/ of the built-in SFTP server.' }),
        mllp: Type.String({ description: 'Sends HL7 v2 MDM to its record system.' }),
        mssante: Type.String({ description: 'Mails MSSanté mailboxes (and Mon espace santé).' }),
      },
      { description: 'The channel of each way, unless an establishment’s route names its own.' },
    ),
    {
      'sftp-push': 'documents-sftp',
      pickup: 'documents-pickup',
      mllp: 'documents-mllp',
      mssante: 'documents-mail',
    },
  ),
});

export type DocumentRouterOptions = OptionsOf<typeof schema>;

interface Recipient {
  role: string;
  finess?: string;
  rpps?: string;
}

/** One message to hand over: to which channel, under which key, with what meta. */
interface Target {
  recipient: string;
  channel: string;
  owner?: string;
  meta: Meta;
}

export class DocumentRouter implements Destination {
  constructor(
    private readonly o: DocumentRouterOptions,
    private readonly ctx: DestinationContext,
  ) {}

  /** Who receives this document and how; and who could not be reached, with why. */
  targets(msg: Outbound): { targets: Target[]; unreachable: string[] } {
    const recipients = JSON.parse(String(msg.meta.recipients ?? '[]')) as Recipient[];
    const directory = this.ctx.directory;
    const targets = new Map<string, Target>();
    const unreachable: string[] = [];
    const mailboxes = new Set<string>();
    const mail = (recipient: string, to: string, kind: string, extra: Meta = {}): void => {
      if (mailboxes.has(to.toLowerCase())) return;
      mailboxes.add(to.toLowerCase());
      targets.set(recipient, {
        recipient,
        channel: this.o.channels.mssante,
        meta: { recipientKind: kind, way: 'mssante', to, ...extra },
      });
    };
    for (const r of recipients) {
      if (r.role === 'establishment' && r.finess && this.o.establishments) {
        const key = `finess:${r.finess}`;
        const entry = directory?.establishments.find((e) => e.finess === r.finess);
        if (!entry) unreachable.push(`${key}: not in the directory`);
        else if (!targets.has(key)) this.establishment(key, entry, targets, mail);
      } else if (r.rpps && (this.o.professionals as readonly string[]).includes(r.role)) {
        const key = `rpps:${r.rpps}`;
        const pro = directory?.professionals?.find((p) => p.rpps === r.rpps);
        if (pro?.mssante) mail(key, pro.mssante, r.role, { rpps: r.rpps });
        else if (!targets.has(key))
          unreachable.push(`${key} (${r.role}): no MSSanté mailbox in the directory`);
      }
    }
    if (this.o.mes && msg.meta.mesAllowed === true && typeof msg.meta.mesMailbox === 'string')
      mail('mes', msg.meta.mesMailbox, 'patient');
    return { targets: [...targets.values()], unreachable };
  }

  private establishment(
    key: string,
    entry: DirectoryEntry,
    targets: Map<string, Target>,
    mail: (recipient: string, to: string, kind: string, extra?: Meta) => void,
  ): void {
    const route: DocumentRoute = entry.documents ?? { way: 'pickup' };
    const common: Meta = {
      finess: entry.finess,
      format: route.format ?? 'cda',
      ...(route.application ? { receivingApplication: route.application } : {}),
    };
    if (route.way === 'mssante') {
      if (!route.mailbox)
        throw new SendError(
          'DOCUMENT_ROUTE_INVALID',
          `${key} takes documents by MSSanté but names no mailbox`,
          {
            retryable: false,
          },
        );
      mail(key, route.mailbox, 'establishment', common);
      return;
    }
    targets.set(key, {
      recipient: key,
      channel: route.channel ?? this.o.channels[route.way],
      owner: entry.finess,
      meta: { recipientKind: 'establishment', way: route.way, ...common },
    });
  }

  async send(msg: Outbound): Promise<SendResult> {
    const { targets, unreachable } = this.targets(msg);
    const { recipients: _recipients, ...meta } = msg.meta;
    const handed = [];
    for (const t of targets) {
      const receipt = await this.ctx.dispatch(t.channel, {
        content: msg.content,
        contentType: msg.contentType,
        meta: {
          ...meta,
          ...t.meta,
          recipient: t.recipient,
          fromChannel: this.ctx.channelId,
          fromMessage: msg.messageId,
        },
        sender: `channel:${this.ctx.channelId}`,
        owner: t.owner ?? msg.owner ?? undefined,
        // Stable per document and recipient: a retry after a crash is recorded there as a duplicate.
        dedupKey: `${msg.idempotencyKey}:${t.recipient}`,
      });
      handed.push({
        recipient: t.recipient,
        channel: t.channel,
        messageId: receipt.duplicateOf ?? receipt.messageId,
      });
    }
    return {
      response: Buffer.from(JSON.stringify({ recipients: handed, unreachable })),
      responseType: 'application/json',
      detail: `${handed.length} recipient(s)${unreachable.length ? `; unreachable: ${unreachable.join('; ')}` : ''}`,
    };
  }
}

export const documentRouterSpec: DestinationSpec<DocumentRouterOptions> = {
  kind: 'destination',
  type: 'document-router',
  summary:
    'Sends a validated document to each of its recipients, one message per recipient on the channel of its way (directory: establishments’ routes, professionals’ MSSanté mailboxes; Mon espace santé when allowed).',
  schema,
  create: (o, ctx) => new DocumentRouter(o, ctx),
};

/**
 * The document's status in the core store becomes `sent` once documents-out has written it and
 * queued it for its recipients (each recipient's delivery is shown apart): filed in the transaction
 * that marks this delivery SENT.
 */
export const documentStatusSpec: DestinationSpec<Record<string, never>> = {
  kind: 'destination',
  type: 'rcp-status',
  summary:
    'Marks the validated RCP form or PPS (meta documentKind, documentId) sent in the core store, in the transaction of this delivery.',
  schema: Type.Object({}),
  create: () => ({
    filing: (msg: Outbound): Filing => ({
      module: 'rcp',
      method: 'markSent',
      args: [msg.meta.documentKind, msg.meta.documentId, Date.now()],
    }),
  }),
};
