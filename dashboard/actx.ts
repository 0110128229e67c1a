// GET /actx/patient and /actx/global (the contract's ACTX section): a hospital's record system opens
// the DCC for one of its professionals. The establishment's verifier vouches for the parameters,
// the clock window bounds a URL's life, and the store decides the rest in one writer call (nonce,
// account, patient, session, audit: store/actx.ts). Every call, accepted or refused, is audited
// with the professional's RPPS, refusals summed per minute beyond the first (store/actx.ts says
// why); a refusal answers its status and why, as JSON or as a page.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { readActxCall } from '../channels/actx-call.ts';
import type { Engine } from '../channels/engine.ts';
import { OncoError } from '../config/errors.ts';
import { REFUSAL_WINDOW_S } from '../store/actx.ts';
import { SESSION_COOKIE, setCookie, type Authenticator } from './auth.ts';
import { html } from './html.ts';
import { safeNext } from './pages/login.ts';
import { actxEstablishments, type ActxEstablishment, type ActxParams } from './actx-verify.ts';

/** Where a browser's accepted call goes first (see the route for why). */
const CONTINUE = '/actx/continue';

/** How far `ts` may be from the DCC clock, either way (the contract's ±300 s). */
export const ACTX_WINDOW_S = 300;

const wantsJson = (req: FastifyRequest): boolean => {
  const accept = req.headers.accept ?? '';
  return accept.includes('application/json') && !accept.includes('text/html');
};

export function registerActx(
  app: FastifyInstance,
  engine: Engine,
  auth: Authenticator,
  clock: () => number = () => Math.floor(Date.now() / 1000),
): void {
  const { directory, dir } = engine.config;
  const establishments = actxEstablishments(directory.establishments ?? [], dir);
  // A minute of refusals is audited as its count once it is over, even if no call follows; a tick
  // that fails (the writer down) leaves the count in the store for the next one.
  const summaries = setInterval(
    () => void engine.store.write.actx.closeRefusalWindows(clock()).catch(() => undefined),
    REFUSAL_WINDOW_S * 1000,
  );
  summaries.unref();
  app.addHook('onClose', async () => clearInterval(summaries));

  const establishmentOf = (query: ActxParams): ActxEstablishment => {
    const finess = query.finess;
    if (finess === undefined || finess === '')
      throw new OncoError('ACTX_PARAM_MISSING', { params: { name: 'finess' } });
    if (!/^\d{9}$/.test(finess))
      throw new OncoError('ACTX_PARAM_INVALID', { params: { name: 'finess', reason: 'not 9 digits' } });
    const e = establishments.get(finess);
    if (e === undefined) throw new OncoError('ACTX_ESTABLISHMENT_UNKNOWN', { params: { finess } });
    if (!e.verifier.usable(e.keys)) throw new OncoError('ACTX_NOT_ENABLED', { params: { finess } });
    return e;
  };

  const handle = (kind: 'patient' | 'global') => async (req: FastifyRequest, reply: FastifyReply) => {
    const query = req.query as ActxParams;
    const now = clock();
    // The FINESS the call claims, for the audit row of a refusal (unknown establishments included).
    const finess = /^\d{9}$/.test(query.finess ?? '') ? query.finess! : null;
    try {
      const e = establishmentOf(query);
      const signed = await e.verifier.verify(query, e.keys);
      const call = readActxCall(kind, signed, e.finess, e.settings.acceptTestIns);
      const skew = call.ts - now;
      if (Math.abs(skew) > ACTX_WINDOW_S) {
        throw new OncoError('ACTX_TS_OUT_OF_WINDOW', {
          params: { ts: call.ts, skew: skew > 0 ? `+${skew}` : skew, window: ACTX_WINDOW_S },
        });
      }
      const outcome = await engine.store.write.actx.enter({
        kind,
        finess: e.finess,
        nonce: call.nonce,
        ts: call.ts,
        now,
        windowS: ACTX_WINDOW_S,
        professional: call.professional,
        identity: call.identity,
        insOids: call.insOids,
        createAccounts: e.settings.createAccounts,
        accountRole: e.settings.accountRole,
        source: req.ip,
      });
      // Refused inside the store: already audited there, with the spent nonce or the account's state.
      if (!outcome.ok)
        throw Object.assign(new OncoError(outcome.code, { params: outcome.params }), { audited: true });
      setCookie(req, reply, auth.options, SESSION_COOKIE, outcome.session.token);
      if (wantsJson(req)) {
        return {
          patientId: outcome.patientId,
          patientCreated: outcome.patientCreated,
          userCreated: outcome.userCreated,
        };
      }
      const target = outcome.patientId === null ? '/' : `/patients/${outcome.patientId}`;
      return reply.redirect(`${CONTINUE}?to=${encodeURIComponent(target)}`, 302);
    } catch (error) {
      if (!(error as { audited?: boolean }).audited) {
        const rpps = /^\d{11}$/.test(query.rpps ?? '') ? query.rpps! : null;
        await engine.store.write.actx.refused({
          kind,
          finess,
          rpps,
          source: req.ip,
          code: error instanceof OncoError ? error.code : 'INTERNAL',
          now,
          scope: finess !== null && establishments.has(finess) ? `finess:${finess}` : `address:${req.ip}`,
        });
      }
      throw error;
    }
  };

  // The session cookie is SameSite=Strict: a browser does not send it along a redirect chain that a
  // click on another site (the record system) started. This page, of our own site, moves on to the
  // target itself, so the next request is same-site and carries the session the call just opened.
  app.get(
    CONTINUE,
    {
      config: { public: true },
      schema: { summary: 'Continues a contextual call to its page', tags: ['actx'] },
    },
    async (req, reply) => {
      const to = safeNext((req.query as { to?: string }).to);
      return reply.type('text/html; charset=utf-8').send(
        html`<!doctype html>
          <html lang="en">
            <head>
              <meta charset="utf-8" />
              <meta http-equiv="refresh" content="0;url=${to}" />
              <title>Onco-Relay</title>
            </head>
            <body>
              <p><a href="${to}">Continue to the DCC</a></p>
            </body>
          </html>`.value,
      );
    },
  );

  const config = { public: true };
  // A HEAD (a link checker, a mail scanner's preview) must not spend the nonce of the clinician's click.
  const exposeHeadRoute = false;
  // Documentation only (OpenAPI): nothing is required here, so that each refusal keeps its own code.
  const parameter = (description: string) => ({ type: 'string', description });
  const querystring = {
    type: 'object',
    properties: {
      finess: parameter('calling establishment (FINESS), in the directory'),
      ipp: parameter("patient's identifier in that establishment (patient call)"),
      nom: parameter('birth name (patient call)'),
      prenom: parameter('first given name (patient call)'),
      ddn: parameter('birth date YYYYMMDD (patient call)'),
      sexe: parameter('M, F or I (patient call)'),
      lieu: parameter('INSEE code of the birth place (optional)'),
      ins: parameter('INS matricule, only for a qualified identity (optional)'),
      ins_oid: parameter('OID of the INS (with ins)'),
      rpps: parameter("the professional's RPPS"),
      pro_nom: parameter("the professional's family name"),
      pro_prenom: parameter("the professional's given name"),
      ts: parameter('Unix time in seconds, within ±300 s of the DCC clock'),
      nonce: parameter('random, 8 to 128 of A-Z a-z 0-9 - . _ ~, single use'),
      sig: parameter(
        'lowercase hex HMAC-SHA256 of the other parameters sorted by name, name=value RFC 3986-encoded, joined by &',
      ),
      jwt: parameter('instead of the others but finess, for a jwt establishment: a signed token of them'),
    },
  };
  const schema = (summary: string) => ({ summary, tags: ['actx'], querystring });
  app.get(
    '/actx/patient',
    {
      config,
      exposeHeadRoute,
      schema: schema(
        "Contextual call in a patient's context: signed by the establishment; opens a session on the patient's page (or JSON)",
      ),
    },
    handle('patient'),
  );
  app.get(
    '/actx/global',
    {
      config,
      exposeHeadRoute,
      schema: schema("Contextual call without a patient: opens a session on the professional's home page"),
    },
    handle('global'),
  );
}
