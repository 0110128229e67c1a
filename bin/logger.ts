// The appliance's logger. Redaction is the net under the rule "no secrets or patient names in
// logs": whatever a caller passes by mistake under one of these keys (at the top or one level down)
// is replaced before the line is written.
import pino from 'pino';

const credentials = ['password', 'passphrase', 'authorization', 'cookie', 'token', 'secret', 'privateKey'];
const patientFields = [
  'birthName',
  'usedName',
  'family',
  'given',
  'givenNames',
  'birthDate',
  'birthPlace',
  'ins',
  'nir',
  'address',
  'phone',
  'email',
];

export const redactedPaths: string[] = [...credentials, ...patientFields].flatMap((k) => [
  k,
  `*.${k}`,
  `*.headers.${k}`,
]);

export function createLogger(destination?: pino.DestinationStream): pino.Logger {
  const options: pino.LoggerOptions = {
    level: process.env.ONCO_LOG_LEVEL ?? 'info',
    base: { app: 'onco-relay' },
    redact: { paths: redactedPaths, censor: '[redacted]' },
  };
  return destination ? pino(options, destination) : pino(options);
}
