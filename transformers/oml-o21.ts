// HL7 v2.5 OML^O21 (laboratory order) for a molecular analysis prescribed in the DCC. The order
// number goes in ORC-2 and OBR-2 (placer order number, namespaced by our application), so that the
// lab's ORU answers with it and the result can close the order (hl7v2-report.ts reads it back).
import Type from 'typebox';
import { Default, StepError, type OptionsOf, type StepSpec } from './contract.ts';
import { escape, STANDARD_DELIMITERS } from './hl7v2.ts';
import { ReportError, OID } from './clinical-report.ts';
import type { Coded } from './clinical-report.ts';
import type { Ins } from './pam-fr.ts';

export const PLACER_APPLICATION = 'ONCO-RELAY';

export interface MolecularOrder {
  /** Placer order number, unique within the DCC. */
  orderNumber: string;
  /** MSH-10; stable per order and attempt so a re-send is recognised by the lab. */
  controlId: string;
  /** When the order was placed (ISO 8601). */
  orderedAt: string;
  patient: {
    ipp?: { value: string; finess: string };
    ins?: Ins;
    birthName: string;
    firstGivenName?: string;
    birthDate?: string;
    sex?: 'M' | 'F' | 'I';
  };
  /** The analysis asked for (OBR-4), e.g. a LOINC code or the lab's own catalogue code. */
  analysis: Coded;
  lab: { finess: string; name?: string; application?: string };
  prescriber: { rpps: string; familyName?: string; givenName?: string };
  /** The DCC's own establishment (MSH-4). */
  sendingFacility?: { finess: string; name?: string };
  clinicalInformation?: string;
}

const INS_NAMESPACES: Readonly<Record<Ins['kind'], string>> = {
  'INS-NIR': 'ASIP-SANTE-INS-NIR',
  'INS-NIA': 'ASIP-SANTE-INS-NIA',
  'INS-NIR-TEST': 'ASIP-SANTE-INS-NIR',
  'INS-NIR-DEMO': 'ASIP-SANTE-INS-NIR',
};

/** The OML^O21 message, segments ended by CR. */
export function writeOmlO21(order: MolecularOrder): string {
  if (order.orderNumber.trim() === '') {
    throw new ReportError(
      'REPORT_BAD_STRUCTURE',
      'the order has no number',
      'give every order a number',
      'orderNumber',
    );
  }
  if (order.patient.ipp === undefined && order.patient.ins === undefined) {
    throw new ReportError(
      'REPORT_NO_PATIENT',
      'the order names no patient identifier',
      'give the IPP with its FINESS, or a qualified INS',
      'patient',
    );
  }
  const e = (text: string | undefined): string => escape(text ?? '', STANDARD_DELIMITERS);
  const ts = hl7Timestamp(order.orderedAt);
  const ids: string[] = [];
  if (order.patient.ipp !== undefined) {
    ids.push(`${e(order.patient.ipp.value)}^^^&${e(order.patient.ipp.finess)}&M^PI`);
  }
  if (order.patient.ins !== undefined) {
    const ins = order.patient.ins;
    ids.push(`${e(ins.matricule)}^^^${INS_NAMESPACES[ins.kind]}&${ins.oid}&ISO^INS`);
  }
  const prescriber = `${e(order.prescriber.rpps)}^${e(order.prescriber.familyName)}^${e(order.prescriber.givenName)}^^^^^^ASIP-SANTE-PS&${OID.rpps}&ISO^D^^^RPPS`;
  const placer = `${e(order.orderNumber)}^${PLACER_APPLICATION}`;
  const analysis = `${e(order.analysis.code)}^${e(order.analysis.display)}^${e(
    order.analysis.system === OID.loinc ? 'LN' : order.analysis.system,
  )}`;
  const sending = order.sendingFacility;
  const segments = [
    `MSH|^~\\&|${PLACER_APPLICATION}|${sending === undefined ? 'DCC' : `${e(sending.name)}^${e(sending.finess)}^M`}|${e(
      order.lab.application,
    )}|${e(order.lab.name)}^${e(order.lab.finess)}^M|${ts}||OML^O21^OML_O21|${e(order.controlId)}|P|2.5|||||FRA|UNICODE UTF-8`,
    `PID|1||${ids.join('~')}||${e(order.patient.birthName)}^${e(order.patient.firstGivenName)}^^^^^L||${(
      order.patient.birthDate ?? ''
    ).replaceAll('-', '')}|${order.patient.sex ?? ''}`,
    `ORC|NW|${placer}|||||||${ts}|||${prescriber}`,
    `OBR|1|${placer}||${analysis}|||${ts}||||||${e(order.clinicalInformation)}|||${prescriber}`,
  ];
  return segments.map((s) => `${s}\r`).join('');
}

function hl7Timestamp(iso: string): string {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2}))?(?:\.\d+)?(Z|[+-]\d{2}:?\d{2})?)?$/.exec(
    iso,
  );
  if (m === null) {
    throw new ReportError(
      'REPORT_BAD_DATE',
      `"${iso}" is not an ISO date`,
      'write orderedAt as YYYY-MM-DDTHH:MM[:SS][+HH:MM]',
      'orderedAt',
    );
  }
  const zone = m[7] === undefined ? '' : m[7] === 'Z' ? '+0000' : m[7].replace(':', '');
  return (
    m
      .slice(1, 7)
      .filter((p) => p !== undefined)
      .join('') + zone
  );
}

/** The order as the store's outbox gives it to molecular-orders (store/orders.ts). */
export const ORDER_CONTENT_TYPE = 'application/vnd.onco-relay.molecular-order+json';

const orderOmlSchema = Type.Object({
  lab: Type.Optional(
    Type.String({
      pattern: '^[0-9A-B]{9}$',
      description: "this destination's lab (FINESS): orders for another lab are FILTERED here",
    }),
  ),
  labApplication: Default(Type.String({ description: "MSH-5: the lab's receiving application" }), ''),
  labName: Default(Type.String({ description: 'MSH-6: the lab’s name, before its FINESS' }), ''),
  sendingFiness: Type.Optional(
    Type.String({ pattern: '^[0-9A-B]{9}$', description: 'MSH-4: FINESS of the DCC (default: DCC)' }),
  ),
  sendingName: Default(Type.String({ description: 'MSH-4: name of the DCC' }), 'DCC'),
});

export const orderOmlStep: StepSpec<OptionsOf<typeof orderOmlSchema>> = {
  kind: 'step',
  type: 'order-oml',
  summary:
    'Writes a molecular order of the DCC (the molecular-orders outbox) as HL7 v2.5 OML^O21 for its lab; with `lab`, only that lab’s orders go on.',
  schema: orderOmlSchema,
  create: (o) => (input) => {
    let order: MolecularOrder;
    try {
      order = JSON.parse(input.content.toString('utf8')) as MolecularOrder;
    } catch (error) {
      throw new StepError('ORDER_NOT_JSON', `the order is not readable JSON: ${String(error)}`);
    }
    if (o.lab !== undefined && order.lab?.finess !== o.lab) return null;
    let message: string;
    try {
      message = writeOmlO21({
        ...order,
        lab: {
          ...order.lab,
          application: o.labApplication || order.lab.application,
          name: o.labName || order.lab.name,
        },
        sendingFacility:
          o.sendingFiness === undefined
            ? order.sendingFacility
            : { finess: o.sendingFiness, name: o.sendingName },
      });
    } catch (error) {
      if (error instanceof ReportError) throw StepError.from(error);
      throw error;
    }
    return {
      content: Buffer.from(message, 'utf8'),
      contentType: 'application/hl7-v2',
      meta: { ...input.meta, orderNumber: order.orderNumber, fileName: `${order.orderNumber}.hl7` },
    };
  },
};
