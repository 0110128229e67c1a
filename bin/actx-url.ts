// `onco-relay actx-url patient|global ...`: a signed contextual-call URL, made as the establishment's
// record system must make it (fresh ts and nonce, the establishment's verifier and secret from the
// directory), for a hospital's IT to click, curl, or compare with what their own system produces.
import crypto from 'node:crypto';
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/config.ts';
import { formatProblem } from '../config/loader.ts';
import { actxEstablishments, type ActxParams } from '../dashboard/actx-verify.ts';

export const actxUrlUsage = `actx-url patient|global --finess F --rpps R --pro-nom NAME --pro-prenom NAME
             [--ipp IPP --nom NAME --prenom NAME --ddn YYYYMMDD --sexe M|F|I [--lieu INSEE] [--ins N --ins-oid OID]]
             [--url URL] [--config DIR]   print a signed contextual-call URL (valid 300 s, once)`;

/** Option name → the contract's parameter name. */
const parameters = {
  finess: 'finess',
  rpps: 'rpps',
  'pro-nom': 'pro_nom',
  'pro-prenom': 'pro_prenom',
  ipp: 'ipp',
  nom: 'nom',
  prenom: 'prenom',
  ddn: 'ddn',
  sexe: 'sexe',
  lieu: 'lieu',
  ins: 'ins',
  'ins-oid': 'ins_oid',
} as const;

/** `where` turns --url and --config into the appliance's address and configuration directory. */
export async function actxUrl(
  args: string[],
  where: (values: { url?: string; config?: string }) => { base: string; configDir: string },
): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      ...Object.fromEntries(Object.keys(parameters).map((o) => [o, { type: 'string' as const }])),
      url: { type: 'string' },
      config: { type: 'string' },
    },
  });
  const kind = positionals[0];
  if (kind !== 'patient' && kind !== 'global') {
    process.stderr.write(`usage: onco-relay ${actxUrlUsage}\n`);
    return 2;
  }
  const { base, configDir } = where(values);
  const config = loadConfig(configDir);
  if (config.problems.length) {
    process.stderr.write(`${config.problems.map(formatProblem).join('\n')}\n`);
    return 1;
  }
  const params: ActxParams = {};
  for (const [option, name] of Object.entries(parameters)) {
    const value = (values as Record<string, string | undefined>)[option];
    if (value !== undefined) params[name] = value;
  }
  const e = actxEstablishments(config.directory.establishments ?? [], config.dir).get(params.finess ?? '');
  if (e === undefined) {
    process.stderr.write(`--finess ${params.finess ?? '(missing)'}: not an establishment of the directory\n`);
    return 1;
  }
  params.ts = String(Math.floor(Date.now() / 1000));
  params.nonce = crypto.randomBytes(16).toString('hex');
  const query = await e.verifier.sign(params, e.keys);
  if (query === null) {
    process.stderr.write(
      `FINESS ${e.finess} has no ACTX secret here (set ONCO_ACTX_SECRET_${e.finess} in the shipped configuration)\n`,
    );
    return 1;
  }
  process.stdout.write(`${base}/actx/${kind}?${query}\n`);
  return 0;
}
