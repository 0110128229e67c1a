// Identity store writer: files the identity events of the PAM FR step into the core store through the
// identity-vigilance rules. It names its filing (`store/identity-filing.ts`), which the store's writer
// runs inside the delivery's own transaction, so an event is filed exactly once even across a crash,
// and a failure leaves no half-filed identity.
import type {
  Destination,
  DestinationContext,
  DestinationSpec,
  Directory,
  DirectoryEntry,
  Filing,
  Outbound,
} from './contract.ts';
import { SendError } from './contract.ts';
import {
  identitiesOf,
  INS_OIDS,
  type Identifier,
  type IdentityEvent,
  type PatientIdentity,
} from '../transformers/pam-fr.ts';
import type { ActionContext, IdentifierRef, IdentityInput } from '../store/patients.ts';
import type { VigilanceRules } from '../store/vigilance.ts';
import type { IdentityFilingInput, IdentityStep } from '../store/identity-filing.ts';
import Type from 'typebox';
import { Default, type OptionsOf } from '../transformers/contract.ts';

/** The rules of an identity feed: the store's vigilance rules, and which INS OIDs the feed may file. */
export interface IdentityRules extends Partial<VigilanceRules> {
  /** Accept the INS test and demo OIDs (every public example uses them). Never in production. */
  acceptTestIns?: boolean;
}

// The rules have no defaults here: the store completes them with its own (defaultVigilanceRules).
const rules = Type.Object(
  {
    acceptTestIns: Type.Optional(
      Type.Boolean({ description: 'Accept the INS test and demo OIDs. Never in production.' }),
    ),
    strictTraitsMatch: Type.Optional(
      Type.Enum(['link', 'create-and-review'], {
        description:
          'Equal strict traits (birth name, first given name, birth date, sex, birth place): link to that patient (default link), or create one and open a review item.',
      }),
    ),
    nearMatchThreshold: Type.Optional(
      Type.Number({
        minimum: 0,
        maximum: 1,
        description: 'Score from which close traits open a review item (default 0.9).',
      }),
    ),
    maxReviewsPerIdentity: Type.Optional(
      Type.Integer({
        minimum: 0,
        description: 'Most review items one incoming identity may open, closest first (default 3).',
      }),
    ),
  },
  {
    additionalProperties: false,
    description: 'Identity-vigilance rules of this feed (see the README, Identity vigilance).',
  },
);

const schema = Type.Object({
  rules: Default(rules, {}),
  /** The most this feed is trusted with (PROV, RECUP, VALI, QUAL). */
  sourceReliability: Default(
    Type.Unsafe<'PROV' | 'RECUP' | 'VALI' | 'QUAL' | null>({
      type: ['string', 'null'],
      enum: ['PROV', 'RECUP', 'VALI', 'QUAL', null],
      description: 'Cap on the identity status this feed may claim.',
    }),
    null,
  ),
});

export type IdentityWriterOptions = OptionsOf<typeof schema>;

const refused = (code: string, message: string, hint?: string): SendError =>
  new SendError(code, message, hint === undefined ? { retryable: false } : { retryable: false, hint });

/**
 * The INS OIDs the store may file for a feed with these rules, from the one list of pam-fr: the
 * national ones, and the test and demo ones only with `acceptTestIns`. Every caller of the vigilance
 * rules (this writer, the bulk import, tests) passes this list: the store holds no OID of its own.
 */
export function acceptedInsOids(rules: Pick<IdentityRules, 'acceptTestIns'> = {}): string[] {
  const test = rules.acceptTestIns === true;
  return [...INS_OIDS]
    .filter(([, kind]) => test || (kind !== 'INS-NIR-TEST' && kind !== 'INS-NIR-DEMO'))
    .map(([oid]) => oid);
}

/** IPPs of PID-3 (type PI) under their FINESS; other identifiers do not identify a patient here. */
export function ippRefs(identifiers: readonly Identifier[]): IdentifierRef[] {
  return identifiers
    .filter((i) => i.type === 'PI' && i.value)
    .map((i) => {
      if (!/^\d{9}$/.test(i.authority)) {
        throw refused(
          'IDENTITY_IPP_WITHOUT_FINESS',
          `IPP ${i.value} (namespace ${i.namespace || 'empty'}) carries no FINESS in PID-3.4.2: the DCC cannot tell which establishment it belongs to`,
        );
      }
      return { finess: i.authority, ipp: i.value, namespace: i.namespace || null };
    });
}

export function toIdentityInput(p: PatientIdentity): IdentityInput {
  if (!p.birthDate)
    throw refused('IDENTITY_NO_BIRTH_DATE', 'PID-7 (birth date) is empty: a strict trait is missing');
  const r = p.reliability;
  return {
    birthName: p.birthName,
    givenNames: p.givenNames,
    firstGivenName: p.firstGivenName,
    birthDate: p.birthDate,
    sex: p.sex ?? 'U',
    birthPlace: p.birthPlace ?? null,
    usedName: p.usedName ?? null,
    usedGivenName: p.usedGivenName ?? null,
    ins: p.ins ? { matricule: p.ins.matricule, oid: p.ins.oid, status: r.status } : null,
    reliability: r.fictitious ? 'FICT' : r.doubtful ? 'DOUT' : r.status,
    identifiers: ippRefs(p.identifiers),
    collectionMode: p.collectionMode ?? null,
    deathDate: p.deathDate ?? null,
    deceased: p.deceased ?? null,
  };
}

/** A lab reports on the patients of the establishments it serves; an establishment, on its own. */
function grantsOf(entry: DirectoryEntry): 'all' | readonly string[] {
  return entry.reportsFor ?? (entry.kind.endsWith('-lab') ? 'all' : []);
}

/**
 * Which assigning authorities a sender may file IPPs under (DESIGN.md rule 9): an establishment of
 * the directory, and for an authenticated sender (`owner`, its FINESS) only its own or those the
 * directory grants it. A message without owner (an unbound listener, the bulk import) may name
 * any establishment of the directory.
 */
export class SenderScope {
  private readonly byFiness: ReadonlyMap<string, DirectoryEntry>;

  constructor(directory: Directory) {
    this.byFiness = new Map(directory.establishments.map((e) => [e.finess, e]));
  }

  check(events: readonly IdentityEvent[], owner: string | null): void {
    this.checkIdentifiers(
      events.flatMap(identitiesOf).flatMap((identity) => identity.identifiers),
      owner,
    );
  }

  /** The same rule for the IPPs of any message (a clinical report's patient). */
  checkIdentifiers(identifiers: readonly Identifier[], owner: string | null): void {
    const sender = owner === null ? undefined : this.byFiness.get(owner);
    const grants = sender === undefined ? [] : grantsOf(sender);
    for (const id of identifiers.filter((i) => i.type === 'PI')) {
      if (!this.byFiness.has(id.authority))
        throw refused(
          'IDENTITY_FINESS_UNKNOWN',
          `IPP ${id.value} is issued under FINESS ${id.authority}, which is not an establishment of the DCC directory`,
          `correct PID-3.4.2, or ask the DCC administrator to add FINESS ${id.authority} to directory.yaml`,
        );
      if (owner === null || id.authority === owner || grants === 'all' || grants.includes(id.authority))
        continue;
      throw refused(
        'IDENTITY_FINESS_NOT_GRANTED',
        `IPP ${id.value} is filed under FINESS ${id.authority}, but the sender speaks for FINESS ${owner} only`,
        `send your own establishment's IPPs, or ask the DCC administrator to grant ${owner} reportsFor ${id.authority} in directory.yaml`,
      );
    }
  }
}

/**
 * The store's filing steps of one message's events, checked in this thread before any write: a
 * sender outside its scope, an IPP without FINESS or a missing birth date is refused here.
 */
export function identitySteps(
  events: readonly IdentityEvent[],
  scope: SenderScope,
  owner: string | null,
): IdentityStep[] {
  scope.check(events, owner);
  return events.map((e): IdentityStep => {
    const event = e.source.event;
    switch (e.kind) {
      case 'upsert':
        return { event, kind: 'upsert', identity: toIdentityInput(e.patient) };
      case 'merge':
        return {
          event,
          kind: 'merge',
          survivor: toIdentityInput(e.survivor),
          survivorRef: single(e.survivor.identifiers, 'PID-3'),
          mergedRef: single(e.merged.identifiers, 'MRG-1'),
        };
      case 'change-identifier': {
        const [from, to] = [ippRefs([e.from])[0], ippRefs([e.to])[0]];
        if (!from || !to) throw refused('IDENTITY_NO_IPP', 'A47 needs an IPP in MRG-1 and in PID-3');
        return { event, kind: 'change-identifier', from, toIpp: to.ipp };
      }
      case 'link':
      case 'unlink':
        return {
          event,
          kind: e.kind,
          a: single(e.a.identifiers, 'PID-3'),
          b: single(e.b.identifiers, 'PID-3'),
        };
    }
  });
}

function single(identifiers: readonly Identifier[], where: string): IdentifierRef {
  const [ref] = ippRefs(identifiers);
  if (!ref) throw refused('IDENTITY_NO_IPP', `${where} carries no IPP (identifier of type PI)`);
  return ref;
}

/** The identity-store destination: a thin spec, its filing is `identityFiling.file` in the store's writer. */
export class IdentityWriter implements Destination {
  private readonly scope: SenderScope;
  private readonly rules: Partial<VigilanceRules>;
  private readonly insOids: readonly string[];

  constructor(
    private readonly o: IdentityWriterOptions,
    directory: Directory,
  ) {
    this.scope = new SenderScope(directory);
    const { acceptTestIns, ...rules } = o.rules;
    this.rules = rules;
    this.insOids = acceptedInsOids({ acceptTestIns });
  }

  filing(msg: Outbound): Filing {
    let events: IdentityEvent[];
    try {
      events = JSON.parse(msg.content.toString('utf8')) as IdentityEvent[];
    } catch (error) {
      throw new SendError('IDENTITY_NOT_JSON', 'expected the JSON output of the pam-fr step', {
        retryable: false,
        cause: error,
      });
    }
    return {
      module: 'identityFiling',
      method: 'file',
      args: [this.input(events, { messageId: msg.messageId }, msg.owner ?? null)],
      messageIdPath: [0, 'ctx', 'messageId'],
    };
  }

  /** What the store's `identityFiling` files for these events; also the bulk import's unit. */
  input(events: readonly IdentityEvent[], ctx: ActionContext, owner: string | null): IdentityFilingInput {
    return {
      steps: identitySteps(events, this.scope, owner),
      ctx,
      rules: this.rules,
      insOids: this.insOids,
      sourceReliability: this.o.sourceReliability,
    };
  }
}

export const identityWriterSpec: DestinationSpec<IdentityWriterOptions> = {
  kind: 'destination',
  type: 'identity-store',
  summary:
    'Files PAM FR identity events (output of the `pam-fr` step) into the core store through the identity-vigilance rules, in the same transaction as the delivery: exactly once.',
  schema,
  create: (o, ctx: DestinationContext) => {
    if (ctx.directory === undefined)
      throw new Error('identity-store needs the directory of establishments: deploy it in an engine');
    return new IdentityWriter(o, ctx.directory);
  },
};
