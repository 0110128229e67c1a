// The one error type of the HL7 v2 modules (parser, charsets, ACKs), so that a connector catches
// a single class and turns `code` into an AE/AR with a message the sender can act on. Its codes,
// hints and ACK codes are in the appliance's catalogue (config/errors.ts).

import { OncoError, type Hl7ErrorCode } from '../config/errors.ts';

export type { Hl7ErrorCode } from '../config/errors.ts';

export const HL7_ERROR_TEXT: Readonly<Record<Hl7ErrorCode, string>> = {
  '0': 'Message accepted',
  '100': 'Segment sequence error',
  '101': 'Required field missing',
  '102': 'Data type error',
  '103': 'Table value not found',
  '200': 'Unsupported message type',
  '201': 'Unsupported event code',
  '202': 'Unsupported processing id',
  '203': 'Unsupported version id',
  '204': 'Unknown key identifier',
  '205': 'Duplicate key identifier',
  '206': 'Application record locked',
  '207': 'Application internal error',
};

export interface Hl7ErrorDetails {
  hint?: string;
  /** Where in the message, as a path (`PID-7`, `MSH-18`) or a position (`segment 3`, `byte 120`). */
  location?: string;
  /** The table 0357 code an ACK should carry for this error. */
  hl7Code?: Hl7ErrorCode;
  cause?: unknown;
}

export class Hl7Error extends OncoError {
  /** The table 0357 code an ACK should carry for this error: the catalogue's, else 102. */
  readonly hl7Code: Hl7ErrorCode;
  constructor(code: string, message: string, details: Hl7ErrorDetails = {}) {
    const { hint, location, cause, hl7Code } = details;
    super(code, { message, hint, location, cause, protocol: hl7Code === undefined ? {} : { hl7: hl7Code } });
    this.hl7Code = this.protocol.hl7 ?? '102';
  }
}
