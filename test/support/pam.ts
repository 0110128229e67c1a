// PAM FR A28 messages for tests: fictitious patients, INS built with a valid control key.
export interface PamPatient {
  ipp: string;
  finess: string;
  birthName: string;
  given: string;
  birthDate: string;
  sex: 'M' | 'F';
  birthPlace?: string;
  /** 13-digit NIR base; the control key is computed. */
  insBase?: string;
  status?: 'PROV' | 'VALI' | 'QUAL';
}

export function insOf(base: string): string {
  const key = 97n - (BigInt(base) % 97n);
  return `${base}${String(key).padStart(2, '0')}`;
}

export function a28(p: PamPatient, controlId: string, event = 'A28'): string {
  return message(event, 'ADT_A05', p, controlId, []);
}

/** A40: `mergedIpp` (same establishment) is folded into the surviving patient `p`. */
export function a40(p: PamPatient, mergedIpp: string, controlId: string): string {
  return message('A40', 'ADT_A39', p, controlId, [`MRG|${mergedIpp}^^^HOP&${p.finess}&M^PI`]);
}

function message(
  event: string,
  structure: string,
  p: PamPatient,
  controlId: string,
  extra: string[],
): string {
  const ids = [`${p.ipp}^^^HOP&${p.finess}&M^PI`];
  if (p.insBase) ids.push(`${insOf(p.insBase)}^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.10&ISO^INS`);
  const pid = [
    'PID',
    '1',
    '',
    ids.join('~'),
    '',
    `${p.birthName}^${p.given}^${p.given}^^^^L`,
    '',
    p.birthDate,
    p.sex,
    '',
    '',
    p.birthPlace ? `^^^^^^BDL^^${p.birthPlace}` : '',
    ...Array(20).fill(''),
    p.status ?? 'PROV',
  ];
  return (
    [
      `MSH|^~\\&|GAM|HOP|ONCO|DCC|20250102103000||ADT^${event}^${structure}|${controlId}|P|2.5^FRA^2.11|||||FRA|UNICODE UTF-8|FR||2.11^IHE_FRANCE-2.11-PAM`,
      'EVN||20250102103000',
      pid.join('|'),
      ...extra,
    ].join('\r') + '\r'
  );
}
