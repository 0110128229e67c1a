// Filing of identity events into the core store through the vigilance rules, as one writer method:
// the identity-store destination (connectors/identity-writer.ts) turns a PAM FR message into these
// steps in its own thread, the writer runs them in the delivery's transaction. The bulk import
// files many messages in one call, a refused one undone alone.
import { OncoError, renderError } from '../config/errors.ts';
import { isTransientDbError } from './db.ts';
import type { ActionContext, Decision, IdentifierRef, IdentityInput, PatientStore } from './patients.ts';
import type { Vigilance, VigilanceRules } from './vigilance.ts';
import type { Filed } from './filing.ts';

/** One identity event, as the store files it. */
export type IdentityStep = { event: string } & (
  | { kind: 'upsert'; identity: IdentityInput }
  /** A40: the survivor's current identity is filed first, then the merged IPP folded into it. */
  | { kind: 'merge'; survivor: IdentityInput; survivorRef: IdentifierRef; mergedRef: IdentifierRef }
  | { kind: 'change-identifier'; from: IdentifierRef; toIpp: string }
  | { kind: 'link' | 'unlink'; a: IdentifierRef; b: IdentifierRef }
);

/** One message's events and the rules of the feed that sent it. */
export interface IdentityFilingInput {
  steps: IdentityStep[];
  ctx: ActionContext;
  rules: Partial<VigilanceRules>;
  /** The INS OIDs this feed may file (see IdentityContext.insOids). */
  insOids: readonly string[];
  sourceReliability: string | null;
}

export type IdentityFilingOutcome = { ok: true; decisions: Decision[] } | { ok: false; error: string };

/** A refusal already worded for the sender: not wrapped again. Never retryable. */
class IdentityRefusal extends OncoError {
  constructor(code: string, message: string) {
    super(code, { message, protocol: { retryable: false } });
  }
}

/** Where a run of messages stopped: the message at `at` was refused with `cause`. */
class StoppedAt {
  constructor(
    readonly at: number,
    readonly cause: unknown,
  ) {}
}

export class IdentityFiling {
  /** Messages `from` to `to` of a list in one savepoint: the first refusal undoes them all and says where. */
  private readonly fileRun;

  constructor(
    private readonly patients: PatientStore,
    private readonly vigilance: Vigilance,
    /**
     * Told, in the transaction, of the patient an A40 or A47 left with other identifiers: documents
     * waiting for that identity are filed then, as after an A28/A31 (vigilance's own hook).
     */
    private readonly identifiersChanged: (patientId: number, ctx: ActionContext) => void = () => {},
  ) {
    this.fileRun = patients.db.transaction(
      (inputs: readonly IdentityFilingInput[], from: number, to: number) => {
        const out: Decision[][] = [];
        for (let i = from; i < to; i++) {
          try {
            out.push(this.file(inputs[i]!).response);
          } catch (error) {
            throw new StoppedAt(i, error);
          }
        }
        return out;
      },
    );
  }

  /**
   * Files the events in order. A store refusal is a non-retryable IDENTITY_REFUSED naming the event;
   * a locked database is thrown as is (the delivery is retried). Runs in the caller's transaction,
   * which must undo what it wrote if it throws (the writer's savepoint per request does).
   */
  file(input: IdentityFilingInput): Filed & { response: Decision[] } {
    const decisions = input.steps.map((step, i) => {
      try {
        return this.fileStep(step, input);
      } catch (error) {
        if (error instanceof IdentityRefusal || isTransientDbError(error)) throw error;
        // The store refuses deterministically (a conflicting IPP, an unknown patient): retrying cannot help.
        const at = input.steps.length > 1 ? `event ${i + 1} of ${input.steps.length} (${step.event}): ` : '';
        throw new OncoError('IDENTITY_REFUSED', {
          message: `${at}${(error as Error).message}`,
          cause: error,
          protocol: { retryable: false },
        });
      }
    });
    return {
      response: decisions,
      detail: decisions.map((d) => `${d.action} patient ${d.patientId} (${d.rule})`).join('; '),
    };
  }

  /**
   * Many messages (the bulk import): a refusal undoes that message alone. A savepoint per message
   * cost a tenth of the writer's time, so runs of messages share one: when a message is refused,
   * its run is undone, the messages before it are filed again in one savepoint (the same decisions:
   * the same state and inputs), the refusal is recorded, and the next run starts after it.
   */
  fileEach(inputs: readonly IdentityFilingInput[]): IdentityFilingOutcome[] {
    const outcomes: IdentityFilingOutcome[] = [];
    let end = inputs.length;
    while (outcomes.length < inputs.length) {
      const from = outcomes.length;
      try {
        for (const decisions of this.fileRun(inputs, from, end)) outcomes.push({ ok: true, decisions });
      } catch (error) {
        if (!(error instanceof StoppedAt)) throw error;
        if (error.at > from) {
          end = error.at;
          continue;
        }
        outcomes.push({ ok: false, error: renderError(error.cause) });
      }
      end = inputs.length;
    }
    return outcomes;
  }

  private fileStep(step: IdentityStep, input: IdentityFilingInput): Decision {
    const { patients } = this;
    const upsert = (identity: IdentityInput) =>
      this.vigilance.applyWithin(identity, {
        ...input.ctx,
        rules: input.rules,
        insOids: input.insOids,
        sourceReliability: input.sourceReliability,
      });
    switch (step.kind) {
      case 'upsert':
        return upsert(step.identity);
      case 'merge':
        upsert(step.survivor);
        return this.changed(patients.mergeIdentifiers(step.survivorRef, step.mergedRef, input.ctx), input);
      case 'change-identifier':
        return this.changed(
          patients.changeIdentifier(step.from.finess, step.from.ipp, step.toIpp, input.ctx),
          input,
        );
      case 'link':
      case 'unlink': {
        const a = this.patientOf(step.a);
        const b = this.patientOf(step.b);
        return step.kind === 'link'
          ? patients.link(a, b, input.ctx, 'pam-a24')
          : patients.unlink(a, b, input.ctx, 'pam-a37');
      }
    }
  }

  private changed(decision: Decision, input: IdentityFilingInput): Decision {
    this.identifiersChanged(decision.patientId, input.ctx);
    return decision;
  }

  private patientOf(ref: IdentifierRef): number {
    const id = this.patients.resolveIdentifier(ref);
    if (id === null)
      throw new IdentityRefusal(
        'IDENTITY_UNKNOWN_IPP',
        `IPP ${ref.ipp} of FINESS ${ref.finess} is not known to the DCC`,
      );
    return id;
  }
}
