// How a contextual call proves that its establishment made it. Each establishment names its
// verifier in the directory (`actx.verifier`); the flow (dashboard/actx.ts) asks the registry for
// it and gets back the parameters the establishment vouches for, whatever the proof was: the
// signed query of the contract (hmac-sha256 here), a signed JWT (actx-jwt.ts), and tomorrow a
// Pro Santé Connect login, without a line of the flow changing.
import crypto, { type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { ActxSettings, Establishment } from '../config/config.ts';
import { OncoError } from '../config/errors.ts';
import { jwtVerifier } from './actx-jwt.ts';

/** Query parameters as received (each once: repeated ones are refused before this). */
export type ActxParams = Record<string, string>;

/** What the DCC holds to check one establishment's calls; never logged. */
export interface ActxKeys {
  secret: string | null;
  publicKey: KeyObject | null;
}

export interface ActxVerifier {
  /** Whether these keys let this verifier accept anything (no secret: every call is refused). */
  usable(keys: ActxKeys): boolean;
  /**
   * The parameters the establishment vouches for (including `ts` and `nonce`, which the flow checks
   * the same way for every verifier). Throws an OncoError (401, or 400 for a missing proof) otherwise.
   */
  verify(query: ActxParams, keys: ActxKeys): Promise<ActxParams>;
  /**
   * The query string of a call carrying these parameters, as the establishment would make it (for
   * `onco-relay actx-url`); null when the DCC holds no key that can sign (a public key only).
   */
  sign(params: ActxParams, keys: ActxKeys): Promise<string | null>;
}

/** RFC 3986: everything but the unreserved characters (ALPHA DIGIT - . _ ~) is percent-encoded. */
const rfc3986 = (s: string): string =>
  encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** The contract's canonical string: every parameter but `sig`, sorted by name, `name=value`, joined by `&`. */
export function canonicalString(params: ActxParams): string {
  return Object.keys(params)
    .filter((name) => name !== 'sig')
    .sort()
    .map((name) => `${rfc3986(name)}=${rfc3986(params[name]!)}`)
    .join('&');
}

export const hmacSignature = (params: ActxParams, secret: string): string =>
  crypto.createHmac('sha256', secret).update(canonicalString(params)).digest('hex');

export const hmacVerifier: ActxVerifier = {
  usable: (keys) => keys.secret !== null,
  sign: async (params, keys) =>
    keys.secret === null ? null : `${canonicalString(params)}&sig=${hmacSignature(params, keys.secret)}`,
  async verify(query, keys) {
    const sig = query.sig;
    if (sig === undefined || sig === '')
      throw new OncoError('ACTX_PARAM_MISSING', { params: { name: 'sig' } });
    if (!/^[0-9a-f]{64}$/i.test(sig)) {
      throw new OncoError('ACTX_PARAM_INVALID', {
        params: { name: 'sig', reason: 'not 64 hexadecimal digits (HMAC-SHA256)' },
      });
    }
    const expected = Buffer.from(hmacSignature(query, keys.secret!), 'hex');
    if (!crypto.timingSafeEqual(expected, Buffer.from(sig, 'hex')))
      throw new OncoError('ACTX_SIGNATURE_INVALID');
    const { sig: _sig, ...signed } = query;
    return signed;
  },
};

/** The verifiers an establishment may name in `actx.verifier`. */
export const actxVerifiers: Readonly<Record<ActxSettings['verifier'], ActxVerifier>> = {
  'hmac-sha256': hmacVerifier,
  jwt: jwtVerifier,
};

/** One establishment's ACTX settings, its verifier and its keys, read once at start. */
export interface ActxEstablishment {
  finess: string;
  settings: ActxSettings;
  verifier: ActxVerifier;
  keys: ActxKeys;
}

const defaults: ActxSettings = {
  verifier: 'hmac-sha256',
  createAccounts: false,
  accountRole: 'establishment',
  acceptTestIns: false,
};

/** Reads the secrets and keys of the directory's establishments (files relative to the configuration directory). */
export function actxEstablishments(
  establishments: readonly Establishment[],
  configDir: string,
): Map<string, ActxEstablishment> {
  const read = (file: string): string => fs.readFileSync(path.resolve(configDir, file), 'utf8').trim();
  return new Map(
    establishments.map((e) => {
      const settings = { ...defaults, ...e.actx };
      const secret = settings.secret || (settings.secretFile ? read(settings.secretFile) : '');
      if (secret !== '' && secret.length < 16) {
        throw new OncoError('CONFIG_INVALID', {
          message: `the ACTX secret of FINESS ${e.finess} (${settings.secretFile}) has ${secret.length} characters; at least 16 are needed`,
          hint: 'write a long random secret in the file (openssl rand -hex 32)',
        });
      }
      const keys: ActxKeys = {
        secret: secret === '' ? null : secret,
        publicKey: settings.publicKeyFile ? crypto.createPublicKey(read(settings.publicKeyFile)) : null,
      };
      return [e.finess, { finess: e.finess, settings, verifier: actxVerifiers[settings.verifier], keys }];
    }),
  );
}
