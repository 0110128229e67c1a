// The second way a contextual call may prove its origin: one signed JWT (RFC 7519) in the query
// parameter `jwt`, whose claims are the contract's parameters (`iat` and `jti` stand for `ts` and
// `nonce` when those are absent). HS256 with the establishment's ACTX secret, or an asymmetric
// algorithm with its public key: the DCC then holds nothing that could sign a call.
import { jwtVerify, SignJWT } from 'jose';
import { OncoError } from '../config/errors.ts';
import type { ActxParams, ActxVerifier } from './actx-verify.ts';

const ASYMMETRIC = ['RS256', 'PS256', 'ES256', 'EdDSA'];

export const jwtVerifier: ActxVerifier = {
  usable: (keys) => keys.secret !== null || keys.publicKey !== null,
  async sign(params, keys) {
    if (keys.secret === null) return null;
    const token = await new SignJWT(params)
      .setProtectedHeader({ alg: 'HS256' })
      .sign(new TextEncoder().encode(keys.secret));
    return new URLSearchParams({ finess: params.finess ?? '', jwt: token }).toString();
  },
  async verify(query, keys) {
    const token = query.jwt;
    if (token === undefined || token === '')
      throw new OncoError('ACTX_PARAM_MISSING', { params: { name: 'jwt' } });
    let claims: Record<string, unknown>;
    try {
      ({ payload: claims } = keys.publicKey
        ? await jwtVerify(token, keys.publicKey, { algorithms: ASYMMETRIC })
        : await jwtVerify(token, new TextEncoder().encode(keys.secret!), { algorithms: ['HS256'] }));
    } catch (error) {
      throw new OncoError('ACTX_TOKEN_INVALID', { params: { reason: (error as Error).message } });
    }
    const params: ActxParams = {};
    for (const [name, value] of Object.entries(claims)) {
      if (typeof value === 'string' || typeof value === 'number') params[name] = String(value);
    }
    if (params.ts === undefined && params.iat !== undefined) params.ts = params.iat;
    if (params.nonce === undefined && params.jti !== undefined) params.nonce = params.jti;
    // The key was chosen by the query's finess: the token must speak for that establishment.
    if (params.finess !== query.finess) {
      throw new OncoError('ACTX_TOKEN_INVALID', {
        params: { reason: `its finess claim is not the finess parameter ${query.finess}` },
      });
    }
    return params;
  },
};
