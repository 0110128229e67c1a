// The state-changing acts of the dashboard, shared by the JSON API and the pages: each checks what
// the account may see, does the act, and writes the audit row with the acting user.
import type { FastifyRequest } from 'fastify';
import { EngineError, type Engine } from '../channels/engine.ts';
import { ConfigError } from '../config/loader.ts';
import type { StoredMessage } from '../store/journal.ts';
import type { PatientAct } from '../store/patients.ts';
import { audit } from './audit-log.ts';
import { scopeOf } from './auth.ts';
import { OncoError } from '../config/errors.ts';

export class ActionError extends OncoError {
  constructor(
    readonly status: 404 | 409 | 400,
    code: string,
    message: string,
  ) {
    super(code, { message, protocol: { http: status } });
  }
}

export const channelActions = ['deploy', 'undeploy', 'pause', 'resume'] as const;
export type ChannelAction = (typeof channelActions)[number];

/** The message if this account may see it; another establishment's message is "not found", not "forbidden". */
export function visibleMessage(engine: Engine, req: FastifyRequest, id: number): StoredMessage {
  const m = Number.isSafeInteger(id) ? engine.store.journal.message(id) : undefined;
  const scope = req.user ? scopeOf(req.user) : '-';
  if (!m || (scope !== undefined && m.owner !== scope)) {
    throw new ActionError(404, 'MESSAGE_UNKNOWN', `no message ${id}`);
  }
  return m;
}

function knownChannel(engine: Engine, id: string) {
  const c = engine.channels.get(id);
  if (!c) throw new ActionError(404, 'CHANNEL_UNKNOWN', `no channel "${id}"`);
  return c;
}

/**
 * Deploy re-reads the channel's file (a new, edited or removed file is picked up without a
 * restart); the other acts apply to the running channel. Returns the channel's state after the act
 * (REMOVED for a channel whose file is gone).
 */
export async function controlChannel(
  engine: Engine,
  req: FastifyRequest,
  id: string,
  action: ChannelAction,
): Promise<string> {
  const c = action === 'deploy' ? undefined : knownChannel(engine, id);
  let state: string;
  try {
    if (c) {
      await c[action as Exclude<ChannelAction, 'deploy'>]();
      state = c.state;
    } else {
      const outcome = await engine.deployFromFile(id);
      state = outcome === 'removed' ? 'REMOVED' : engine.channel(id).state;
    }
  } catch (error) {
    await audit(engine.store, req, {
      action: `channel-${action}`,
      object: `channel:${id}`,
      outcome: 'failed',
      detail: { code: (error as { code?: string }).code ?? null },
    });
    if (error instanceof ConfigError) {
      throw new ActionError(
        400,
        'CHANNEL_FILE_INVALID',
        `channel "${id}" not deployed, the running version is unchanged; its file has ${error.problems.length} problem(s):\n${error.message}`,
      );
    }
    if (error instanceof EngineError && error.code === 'CHANNEL_UNKNOWN') {
      throw new ActionError(404, 'CHANNEL_UNKNOWN', error.message);
    }
    throw new ActionError(
      409,
      'CHANNEL_ACTION_FAILED',
      `${action} of channel "${id}" failed: ${(error as Error).message}`,
    );
  }
  await audit(engine.store, req, {
    action: `channel-${action}`,
    object: `channel:${id}`,
    detail: { state },
  });
  return state;
}

export async function replayMessage(engine: Engine, req: FastifyRequest, id: number): Promise<number> {
  const m = visibleMessage(engine, req, id);
  const c = knownChannel(engine, m.channel);
  if (c.state === 'UNDEPLOYED' || c.state === 'FAILED') {
    throw new ActionError(
      409,
      'CHANNEL_STATE',
      `channel "${m.channel}" is ${c.state}: deploy it before replaying`,
    );
  }
  let receipt;
  try {
    receipt = await c.replayMessage(id);
  } catch (error) {
    throw new ActionError(409, 'REPLAY_IMPOSSIBLE', (error as Error).message);
  }
  await audit(engine.store, req, {
    action: 'message-replay',
    object: `message:${id}`,
    establishment: m.owner,
    detail: { newMessageId: receipt.messageId },
  });
  return receipt.messageId;
}

export async function replayDelivery(
  engine: Engine,
  req: FastifyRequest,
  messageId: number,
  deliveryId: number,
): Promise<void> {
  const m = visibleMessage(engine, req, messageId);
  const d = engine.store.journal.delivery(deliveryId);
  if (!d || d.messageId !== m.id)
    throw new ActionError(404, 'DELIVERY_UNKNOWN', `no delivery ${deliveryId} in message ${messageId}`);
  const c = knownChannel(engine, m.channel);
  try {
    await c.replayDelivery(deliveryId);
  } catch (error) {
    throw new ActionError(409, 'REPLAY_IMPOSSIBLE', (error as Error).message);
  }
  await audit(engine.store, req, {
    action: 'delivery-replay',
    object: `delivery:${deliveryId}`,
    establishment: m.owner,
    detail: { messageId, destination: d.destination },
  });
}

export type ReviewDecision = 'merge' | 'link' | 'reject';

export async function resolveReview(
  engine: Engine,
  req: FastifyRequest,
  id: number,
  decision: ReviewDecision,
  note?: string,
): Promise<void> {
  const { vigilance } = engine.store;
  const author = req.user!.login;
  const item = vigilance.getReview(id);
  if (!item) throw new ActionError(404, 'REVIEW_UNKNOWN', `no review item ${id}`);
  let result;
  try {
    result = await (decision === 'reject'
      ? engine.store.write.vigilance.reject(id, { author, note })
      : engine.store.write.vigilance.confirm(id, { author, as: decision }));
  } catch (error) {
    throw new ActionError(
      409,
      (error as { code?: string }).code ?? 'REVIEW_FAILED',
      (error as Error).message,
    );
  }
  await audit(engine.store, req, {
    action: decision === 'reject' ? 'review-reject' : `patient-${decision}`,
    object: `review:${id}`,
    patientId: result.patientId,
    detail: { candidateId: item.candidateId, otherId: item.patientId, decisionId: result.decisionId },
  });
}

export type IdentityAction = PatientAct;

/** What an identity act names besides the patient: the other patient, or the IPP to detach. */
export interface IdentityActBody {
  other?: number;
  finess?: string;
  ipp?: string;
}

/**
 * An identity-vigilance act outside the review queue: merge patient `id` into `other`, undo the
 * merge of `id`, link or unlink the pair, or detach a wrongly linked IPP from `id` (it becomes a
 * patient of its own). Audited with the author and the patient.
 */
export async function identityAction(
  engine: Engine,
  req: FastifyRequest,
  action: IdentityAction,
  id: number,
  body: IdentityActBody,
): Promise<{ decisionId: number; patientId: number }> {
  const ctx = { author: req.user!.login };
  const { other, finess, ipp } = body;
  if ((action === 'merge' || action === 'link' || action === 'unlink') && other === undefined) {
    throw new ActionError(400, 'PATIENT_MISSING', `${action} needs the other patient's id in "other"`);
  }
  if (action === 'detach' && (!finess || !ipp)) {
    throw new ActionError(
      400,
      'IDENTIFIER_MISSING',
      'detach needs the "finess" and "ipp" of the identifier to detach',
    );
  }
  let result;
  try {
    result = await engine.store.write.patients.act(action, id, body, ctx);
  } catch (error) {
    throw new ActionError(
      409,
      (error as { code?: string }).code ?? 'IDENTITY_ACTION_FAILED',
      (error as Error).message,
    );
  }
  await audit(engine.store, req, {
    action: `patient-${action}`,
    object: `patient:${id}`,
    patientId: id,
    detail: { other: other ?? null, finess: finess ?? null, decisionId: result.decisionId },
  });
  return result;
}
