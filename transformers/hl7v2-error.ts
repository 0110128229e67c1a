// The one error type of the HL7 v2 modules (parser, charsets, ACKs), so that a connector catches
// a single class and turns `code` into an AE/AR with a message the sender can act on.

/** HL7 table 0357 (message error condition codes) values the engine answers with. */
export type Hl7ErrorCode =
  | '0' // message accepted
  | '100' // segment sequence error
  | '101' // required field missing
  | '102' // data type error
  | '103' // table value not found
  | '200' // unsupported message type
  | '201' // unsupported event code
  | '202' // unsupported processing id
  | '203' // unsupported version id
  | '204' // unknown key identifier
  | '205' // duplicate key identifier
  | '206' // application record locked
  | '207'; // application internal error

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

export class Hl7Error extends Error {
  readonly code: string;
  readonly hint: string | undefined;
  readonly location: string | undefined;
  readonly hl7Code: Hl7ErrorCode;
  constructor(code: string, message: string, details: Hl7ErrorDetails = {}) {
    super(message, { cause: details.cause });
    this.name = 'Hl7Error';
    this.code = code;
    this.hint = details.hint;
    this.location = details.location;
    this.hl7Code = details.hl7Code ?? '102';
  }
}
