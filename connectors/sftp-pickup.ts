// SFTP pickup destination: puts a document in the `/out/` folder of the built-in SFTP server for
// every establishment account of the recipient's FINESS, to be picked up there (CONTRACT.md). Each
// file is written whole (temporary name, then rename) under a stable name, so a retry rewrites it.
// What the file holds (the CDA, its PDF, an XDM zip, an HL7 v2 message) is the destination steps'
// business: documents-pickup.yaml.
import path from 'node:path';
import Type from 'typebox';
import { FileWriter } from './file-writer.ts';
import { loginUsableAsDirectory } from './sftp-account-tree.ts';
import {
  SendError,
  type Destination,
  type DestinationContext,
  type DestinationSpec,
  type Outbound,
  type SendResult,
} from './contract.ts';
import { Default, type OptionsOf } from '../transformers/contract.ts';

const schema = Type.Object({
  fileName: Default(
    Type.String({
      description:
        'Template: {key}, {messageId}, {meta.fileName}, {meta.fileExtension} (set by the packaging steps) …',
    }),
    '{meta.fileName}.{meta.fileExtension}',
  ),
  root: Default(
    Type.String({
      description: 'The built-in SFTP server’s account trees (relative to the data directory).',
    }),
    'sftp',
  ),
});

export type SftpPickupOptions = OptionsOf<typeof schema>;

export class SftpPickup implements Destination {
  /** One writer per account folder, started once: its start clears temporary files of cut writes. */
  private readonly writers = new Map<string, Promise<FileWriter>>();

  constructor(
    private readonly o: SftpPickupOptions,
    private readonly ctx: DestinationContext,
  ) {}

  async send(msg: Outbound): Promise<SendResult> {
    const finess = msg.meta.finess;
    const accounts = typeof finess === 'string' ? await this.ctx.accounts.ofEstablishment!(finess) : [];
    const logins = accounts.map((a) => a.login).filter(loginUsableAsDirectory);
    if (typeof finess !== 'string' || logins.length === 0)
      throw new SendError('PICKUP_NO_ACCOUNT', `no establishment account for FINESS ${String(finess)}`, {
        retryable: false,
        hint: `create one (onco-relay user add LOGIN --role establishment --finess ${String(finess)}), then replay the delivery`,
      });
    const written = [];
    for (const login of logins) written.push((await (await this.writer(login)).send(msg)).detail);
    return { detail: written.join(', ') };
  }

  private writer(login: string): Promise<FileWriter> {
    let w = this.writers.get(login);
    if (!w) {
      const writer = new FileWriter(
        {
          path: path.join(this.o.root, login, 'out'),
          fileName: this.o.fileName,
          fsync: true,
        },
        this.ctx.dataDir,
      );
      w = writer.start().then(() => writer);
      this.writers.set(login, w);
    }
    return w;
  }
}

export const sftpPickupSpec: DestinationSpec<SftpPickupOptions> = {
  kind: 'destination',
  type: 'sftp-pickup',
  summary:
    'Puts each message in the /out/ folder of the built-in SFTP server of every establishment account of its FINESS (meta.finess), written whole under a stable name.',
  schema,
  create: (o, ctx) => {
    if (!ctx.accounts.ofEstablishment)
      throw new Error('sftp-pickup needs the engine’s accounts: deploy it in an engine');
    return new SftpPickup(o, ctx);
  },
};
