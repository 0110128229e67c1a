// The one catalogue of the appliance's errors: each code once, with what it means on every protocol
// that can carry it (HTTP status, HL7 ACK and ERR-3 code, SMTP reply, SFTP status, whether a send may
// be retried), a message template and a hint saying what to do (fastify's `errors.js` way). Every
// error class of the appliance extends `OncoError`, so a caller catches one type and reads `code`,
// `hint`, `location`, `protocol` and `cause` the same way whatever module threw it.
//
// Why under config/: errors are part of the appliance's outside face (codes that senders, scripts and
// tests see), like the configuration schema, and every layer needs them — transformers and store
// too, which otherwise import nothing of ours. This module therefore imports nothing at all, and
// eslint.config.js lets every layer import it (and only it) from config/.

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

/** SFTP v3 status codes (draft-ietf-secsh-filexfer-02) an error may answer with. */
export const SFTP_STATUS = { NO_SUCH_FILE: 2, PERMISSION_DENIED: 3, FAILURE: 4, OP_UNSUPPORTED: 8 } as const;
export type SftpStatus = (typeof SFTP_STATUS)[keyof typeof SFTP_STATUS];

/** What an error means on each protocol that can report it; absent means "not reported there". */
export interface ProtocolStatus {
  /** HTTP status of an answer reporting it (admin API, HTTP listener). */
  readonly http?: number;
  /** HL7 v2 MSA-1 of the answer: AE (correct the content and resend) or AR (never taken). */
  readonly ack?: 'AE' | 'AR';
  /** HL7 table 0357 code for ERR-3. */
  readonly hl7?: Hl7ErrorCode;
  /** SMTP reply code (RFC 5321). */
  readonly smtp?: number;
  /** SFTP status of the refused request. */
  readonly sftp?: SftpStatus;
  /** For a send: whether the same send may succeed later (true) or the peer refused it for good. */
  readonly retryable?: boolean;
}

export interface ErrorDefinition {
  /** `{name}` is replaced by the parameter of that name; used when the thrower gives no message. */
  readonly message: string;
  readonly hint: string;
  readonly status: ProtocolStatus;
}

const CONTENT_AE: ProtocolStatus = { ack: 'AE', hl7: '102', http: 422, smtp: 554 };
const REQUIRED_AE: ProtocolStatus = { ack: 'AE', hl7: '101', http: 422, smtp: 554 };
const VALUE_AE: ProtocolStatus = { ack: 'AE', hl7: '103', http: 422, smtp: 554 };
const STRUCTURE_AR: ProtocolStatus = { ack: 'AR', hl7: '100', http: 400, smtp: 554 };
const REFUSED_FOR_GOOD: ProtocolStatus = { retryable: false, ack: 'AE', hl7: '207' };
const TRY_AGAIN: ProtocolStatus = { retryable: true };
const SETUP: ProtocolStatus = {};
const NOT_FOUND: ProtocolStatus = { http: 404 };
const CONFLICT: ProtocolStatus = { http: 409 };
const BAD_REQUEST: ProtocolStatus = { http: 400 };
const SFTP_DENIED: ProtocolStatus = { sftp: SFTP_STATUS.PERMISSION_DENIED };
const SFTP_MISSING: ProtocolStatus = { sftp: SFTP_STATUS.NO_SUCH_FILE };
const SFTP_FAILURE: ProtocolStatus = { sftp: SFTP_STATUS.FAILURE };

const define = <T extends Record<string, ErrorDefinition>>(catalogue: T): Readonly<T> =>
  Object.freeze(catalogue);

/** Every error code of the appliance. A code is a stable string: senders, scripts and tests rely on it. */
export const ERRORS = define({
  // Configuration and engine
  CONFIG_INVALID: {
    message: '{count} configuration problem(s)',
    hint: 'fix each problem listed with its file and line, then run `onco-relay validate`',
    status: BAD_REQUEST,
  },
  OPTIONS_INVALID: {
    message: 'options not valid: {problems}',
    hint: 'run `onco-relay validate`, which names the file and line of each problem',
    status: BAD_REQUEST,
  },
  JOURNAL_UNAVAILABLE: {
    message: 'the journal cannot commit: {reason}',
    hint: 'free disk space or fix the storage under the data directory; the work is kept and retried',
    status: { http: 503, ack: 'AR', hl7: '207', smtp: 451, retryable: true },
  },
  BLOB_MISSING: {
    message: 'the content file {digest} is missing from the data directory ({detail})',
    hint: 'restore data/blobs from the backup taken with the database, then replay the message; or ask the sender to send it again',
    status: { http: 500, retryable: false },
  },
  BLOB_CORRUPT: {
    message: 'the content file {digest} no longer holds the bytes that were journaled: {detail}',
    hint: 'the disk or a person changed it: restore data/blobs from the backup taken with the database, then replay the message; or ask the sender to send it again',
    status: { http: 500, retryable: false },
  },
  CHANNEL_UNKNOWN: {
    message: 'no channel "{id}"',
    hint: 'list the channels with `onco-relay status`',
    status: NOT_FOUND,
  },
  CHANNEL_STATE: {
    message: 'channel "{id}" is {state}',
    hint: 'deploy or resume the channel first',
    status: CONFLICT,
  },
  CHANNEL_FILE_INVALID: {
    message: 'channel "{id}" not deployed: its file has {count} problem(s)',
    hint: 'fix each problem listed with its file and line (`onco-relay validate`), then deploy again',
    status: BAD_REQUEST,
  },
  CHANNEL_DEPLOY_FAILED: {
    message: 'the new version of channel "{id}" could not start: {reason}',
    hint: 'fix the cause in the channel file (for a port in use: another port), then deploy again',
    status: CONFLICT,
  },
  ENGINE_START_FAILED: {
    message: 'not started: {count} channel(s) failed',
    hint: 'fix the cause named for each channel (for a port in use: stop the other process or choose another port), then start again',
    status: SETUP,
  },
  DATA_DIR_IN_USE: {
    message: 'data directory {dir} is in use by another engine',
    hint: 'stop the other engine first, or start this one with another --data directory',
    status: SETUP,
  },

  // Delivery semantics (channels/channel.ts, channels/destination-worker.ts, store/journal.ts)
  POISON_MESSAGE: {
    message:
      'processing of message {id} began {times} times and never finished (the engine died or stalled each time): quarantined so that the messages behind it flow',
    hint: 'find the cause in the log of those crashes, fix it, then replay the message from the dashboard',
    status: REFUSED_FOR_GOOD,
  },
  POISON_RESENT: {
    message:
      'processing of this message began {times} times before it could be journaled and never finished (the engine died or stalled each time): quarantined so that the messages behind it flow',
    hint: 'find the cause in the log of those crashes, fix it, then replay the message from the dashboard',
    status: REFUSED_FOR_GOOD,
  },
  POISON_COPY: {
    message: 'a copy of message {id}, which is quarantined because it crashed the engine: not processed',
    hint: 'an admin replays message {id} once the cause is fixed',
    status: REFUSED_FOR_GOOD,
  },
  DELIVERY_QUARANTINED: {
    message:
      '{times} attempts of this delivery began and never finished (the engine died or stalled each time): quarantined so that the queue behind it flows',
    hint: 'find the cause in the log of those crashes, fix it, then replay the delivery from the dashboard',
    status: REFUSED_FOR_GOOD,
  },
  DELIVERY_FAILED: {
    message: 'a delivery of message {id} to {destination} failed for good',
    hint: 'read its error in the message browser; once the cause is fixed, replay the delivery',
    status: REFUSED_FOR_GOOD,
  },
  JOURNAL_WRITE_FAILED: {
    message: '{where}: the journal cannot be written; the work is kept and tried again in {delayMs} ms',
    hint: 'free disk space or fix the storage under the data directory; nothing else is needed',
    status: TRY_AGAIN,
  },
  DEDUP_KEY_REUSED: {
    message:
      'message {id} reuses the control id of message {earlier} with other content: processed, and flagged',
    hint: 'the sender reset its MSH-10 counter, or two of its systems share one: ask it to keep MSH-10 unique',
    status: {},
  },

  // HL7 v2 syntax, charsets and ACKs (transformers/hl7v2*.ts)
  HL7_EMPTY: { message: 'the message is empty', hint: 'send at least an MSH segment', status: STRUCTURE_AR },
  HL7_NO_MSH: {
    message: 'not an HL7 message: the content does not start with MSH ("{start}")',
    hint: 'an HL7 v2 message starts with MSH|^~\\&|',
    status: STRUCTURE_AR,
  },
  HL7_BAD_DELIMITERS: {
    message: '{segment}-1/{segment}-2 do not define valid delimiters: "{chars}"',
    hint: 'start with MSH|^~\\&| (field separator, then component, repetition, escape, sub-component characters, all different)',
    status: { ...STRUCTURE_AR, hl7: '102' },
  },
  HL7_BAD_SEGMENT: {
    message: 'segment {position} does not start with a segment id followed by the field separator',
    hint: 'each segment must start with its 3-character id (PID, OBX, Z..) and end with a carriage return; a line break inside a field must be escaped as \\X0D\\ or \\.br\\',
    status: STRUCTURE_AR,
  },
  HL7_MULTIPLE_MESSAGES: {
    message: 'segment {position} is {name}: this is a batch or several messages, not one message',
    hint: 'send one message per MLLP frame, or the whole batch as a file',
    status: STRUCTURE_AR,
  },
  HL7_SEGMENT_OUTSIDE_MESSAGE: {
    message: 'line {line} is not inside a message',
    hint: 'every message must start with MSH; check that the file was not cut or concatenated by hand',
    status: STRUCTURE_AR,
  },
  HL7_BAD_ENVELOPE: {
    message: 'line {line}: {name} is out of place',
    hint: 'a batch file is FHS, then BHS, messages, BTS (repeated), then FTS',
    status: STRUCTURE_AR,
  },
  HL7_BATCH_COUNT: {
    message: '{trailer} announces {declared} but the file holds {found}',
    hint: 'the file was probably truncated or edited: send it again whole',
    status: STRUCTURE_AR,
  },
  HL7_BAD_PATH: {
    message: '"{path}" is not an HL7 path',
    hint: 'write SEG[-field[[repetition]][.component[.subcomponent]]], 1-based, e.g. PID-3[2].4.2 or OBX[2]-5',
    status: {},
  },
  HL7_NO_CONTROL_ID: {
    message: 'MSH-10 (message control id) is empty',
    hint: 'give every message a unique MSH-10: it is how its ACK and a resend are recognised',
    status: { ...REQUIRED_AE, ack: 'AR' },
  },
  HL7_UNREADABLE: {
    message: 'the message cannot be read',
    hint: 'send one HL7 v2 message per frame, in the charset MSH-18 declares',
    status: STRUCTURE_AR,
  },
  HL7_CHARSET_UNSUPPORTED: {
    message: 'MSH-18 declares the character set "{declared}", which is not supported',
    hint: 'use one of UNICODE UTF-8, 8859/1, 8859/15 or ASCII in MSH-18',
    status: { ...VALUE_AE, ack: 'AR' },
  },
  HL7_CHARSET_INVALID_BYTES: {
    message: 'byte {offset} is not valid {charset}',
    hint: 'declare the charset the sender really uses in MSH-18 (8859/1 or 8859/15 for Latin-1 systems), or fix the sender so that it encodes in the declared charset',
    status: { ...CONTENT_AE, ack: 'AR' },
  },
  HL7_CHARSET_UNENCODABLE: {
    message: 'character {character} cannot be written in {charset}',
    hint: 'answer in UNICODE UTF-8, or remove the character from the text',
    status: { hl7: '207' },
  },
  HL7_BAD_ACK: {
    message: 'the answer is not an acknowledgement',
    hint: 'the peer must answer with an ACK (MSH, MSA) carrying a valid MSA-1',
    status: { hl7: '100', retryable: true },
  },

  // PAM FR identity mapping (transformers/pam-fr.ts): AE = correct the message and send it again
  PAM_UNSUPPORTED_MESSAGE: {
    message: 'MSH-9 "{type}" is not an identity message of PAM FR',
    hint: 'send ADT messages of IHE PAM FR to this channel',
    status: { ...VALUE_AE, ack: 'AR', hl7: '200' },
  },
  PAM_UNKNOWN_EVENT: {
    message: 'event "{event}" is not one this feed takes',
    hint: 'send the identity events of PAM FR (A28, A31, A08, A40, A47, A24, A37 and movements with a PID)',
    status: { ...VALUE_AE, ack: 'AR', hl7: '201' },
  },
  PAM_BAD_STRUCTURE: {
    message: 'the message structure is not the one of its event',
    hint: 'send the segments the PAM FR profile gives for this event, in order',
    status: { ...CONTENT_AE, hl7: '100' },
  },
  PAM_MISSING_PID: { message: 'the message has no PID segment', hint: 'send a PID', status: REQUIRED_AE },
  PAM_MISSING_MRG: {
    message: 'PID {position} has no MRG after it',
    hint: 'each PID of a merge must be followed by its MRG',
    status: REQUIRED_AE,
  },
  PAM_MISSING_IPP: {
    message: 'PID-3 carries no IPP (identifier of type PI)',
    hint: 'send the IPP with its assigning authority (FINESS in PID-3.4.2) and type PI in PID-3.5',
    status: REQUIRED_AE,
  },
  PAM_MISSING_BIRTH_NAME: {
    message: 'PID-5 carries no birth name (name type L)',
    hint: 'send the birth name with name type L in PID-5.7',
    status: REQUIRED_AE,
  },
  PAM_BAD_IDENTIFIER: {
    message: '{location} is not a usable identifier',
    hint: 'send the identifier with its assigning authority (PID-3.4) and type (PID-3.5)',
    status: CONTENT_AE,
  },
  PAM_BAD_INS: {
    message: '{location} is not a valid INS',
    hint: 'send the INS-NIR as 15 digits with the national OID as assigning authority',
    status: CONTENT_AE,
  },
  PAM_TEST_INS: {
    message: '{location} carries an INS of the test or demo OID',
    hint: 'send the production INS-NIR/INS-NIA; on a test appliance only, set ONCO_ACCEPT_TEST_INS=true',
    status: VALUE_AE,
  },
  PAM_BAD_DATE: {
    message: '{location} "{value}" is not a valid date',
    hint: 'write dates as YYYYMMDD (time optional)',
    status: CONTENT_AE,
  },
  PAM_BAD_SEX: {
    message: '{location} "{value}" is not an administrative sex code',
    hint: 'send F, M or U',
    status: VALUE_AE,
  },
  PAM_BAD_BIRTH_PLACE: {
    message: '{location}: "{value}" is not an INSEE place code',
    hint: 'send the 5-character INSEE code of the birth commune (99xxx for a country) in XAD-9',
    status: VALUE_AE,
  },
  PAM_BAD_RELIABILITY: {
    message: '{location} "{value}" is not an identity reliability code',
    hint: 'send VIDE, PROV, VALI, DOUT, FICT or their PAM FR spellings in PID-32',
    status: VALUE_AE,
  },
  PAM_BAD_COLLECTION_MODE: {
    message: '{location} "{value}" is not an identity collection mode',
    hint: 'send a value of the PAM FR table for the identity collection mode',
    status: VALUE_AE,
  },
  PAM_MISSING_BIRTH_DATE: {
    message: 'PID-7 (birth date) is empty: a strict trait is missing',
    hint: 'send the birth date as YYYYMMDD in PID-7 (YYYY or YYYYMM when only that is known)',
    status: REQUIRED_AE,
  },
  PAM_MISSING_GIVEN_NAME: {
    message: 'PID-5 has no first given name',
    hint: 'send the first given name in PID-5.2 of the birth name (repetition of type L)',
    status: REQUIRED_AE,
  },
  PAM_IPP_WITHOUT_FINESS: {
    message: 'IPP {ipp} carries no FINESS in {location}',
    hint: "send the establishment's 9-digit FINESS as NAMESPACE&FINESS&M in PID-3.4",
    status: REQUIRED_AE,
  },
  PAM_BAD_DEATH: {
    message: '{location} "{value}" is not a death indicator',
    hint: 'send Y (deceased) or N in PID-30, the date of death in PID-29',
    status: VALUE_AE,
  },
  PAM_FIELD_TOO_LONG: {
    message: '{location} is {length} characters; PAM FR allows at most {max}',
    hint: 'correct the field in the sending system: names at most 100 characters, identifiers at most 20',
    status: CONTENT_AE,
  },

  // Clinical documents in (transformers/xml.ts, cda-report.ts, hl7v2-report.ts, hprim-*.ts, pdf-report.ts)
  XML_TOO_LARGE: {
    message: 'the XML document is larger than {max} bytes',
    hint: 'send the document without attachments inlined, or raise maxXmlBytes of the step',
    status: { ...CONTENT_AE, http: 413 },
  },
  XML_TOO_DEEP: {
    message: 'the XML document nests elements deeper than {max} levels',
    hint: 'flatten the document, or raise maxXmlDepth of the step',
    status: CONTENT_AE,
  },
  XML_DTD_REFUSED: {
    message: 'the XML document carries a DTD: DTDs and entities are refused',
    hint: 'send the document without <!DOCTYPE …> and without custom entities; CDA documents need neither',
    status: CONTENT_AE,
  },
  XML_MALFORMED: {
    message: 'the content is not well-formed XML',
    hint: 'check that the file is complete XML and was not cut or edited by hand',
    status: CONTENT_AE,
  },
  XML_UNSUPPORTED_ENCODING: {
    message: 'the XML document is in an encoding we do not read',
    hint: 'send the document in UTF-8 (or ISO-8859-1/15)',
    status: CONTENT_AE,
  },
  XML_EMPTY: { message: 'the XML document is empty', hint: 'send a whole document', status: REQUIRED_AE },
  REPORT_UNKNOWN_FORMAT: {
    message: 'the content is not a report format this channel reads',
    hint: 'send HL7 v2 ORU/MDM, CDA R2 (CR-ACP, CR-GM), HPRIM Santé, HPRIM Médecin, or a PDF with its sidecar',
    status: { ...VALUE_AE, ack: 'AR', hl7: '200', http: 415 },
  },
  REPORT_NO_PATIENT: {
    message: 'the report names no patient identifier',
    hint: "send the establishment's IPP with its FINESS, or the INS",
    status: REQUIRED_AE,
  },
  REPORT_BAD_IDENTIFIER: {
    message: '{location} is not a usable patient identifier',
    hint: 'send the INS with its national OID, the IPP with its assigning authority',
    status: CONTENT_AE,
  },
  REPORT_TEST_INS: {
    message: 'the INS uses a test or demo OID',
    hint: 'send the production INS-NIR/INS-NIA; on a test appliance only, set ONCO_ACCEPT_TEST_INS=true',
    status: VALUE_AE,
  },
  REPORT_BAD_BASE64: {
    message: 'the embedded document is not valid base64',
    hint: 'encode the document in base64 (RFC 4648, no URL-safe alphabet) and send it whole',
    status: CONTENT_AE,
  },
  REPORT_TOO_LARGE: {
    message: 'the report is larger than {max} bytes',
    hint: 'send the report with smaller attachments, or raise maxReportBytes of the step',
    status: { ...CONTENT_AE, http: 413 },
  },
  REPORT_NOT_PDF: {
    message: 'the document announced as PDF is not one',
    hint: 'send the PDF file itself, whole, not another format renamed .pdf',
    status: CONTENT_AE,
  },
  REPORT_BAD_SIDECAR: {
    message: "the PDF's sidecar cannot be read",
    hint: 'send NAME.json (or an HL7 ORU/MDM NAME.hl7) beside NAME.pdf',
    status: CONTENT_AE,
  },
  REPORT_BAD_STRUCTURE: {
    message: 'the report is not built as its format requires',
    hint: 'check the report against its format (CDA R2, HPRIM) and send it again',
    status: { ...CONTENT_AE, hl7: '100' },
  },
  REPORT_BAD_DATE: {
    message: '{location} is not a valid date',
    hint: 'write dates as YYYYMMDD[HHMM[SS]][+ZZZZ]',
    status: CONTENT_AE,
  },

  // Identity store (connectors/identity-writer.ts, store/patients.ts, store/vigilance.ts)
  IDENTITY_NOT_JSON: {
    message: 'expected the JSON output of the pam-fr step',
    hint: 'put a pam-fr step before the identity-store destination',
    status: REFUSED_FOR_GOOD,
  },
  IDENTITY_REFUSED: {
    message: 'the identity store refused the identity: {reason}',
    hint: 'correct the message and send it again',
    status: REFUSED_FOR_GOOD,
  },
  IDENTITY_INVALID: {
    message: 'the identity is not valid: {reason}',
    hint: 'correct the message and send it again',
    status: REFUSED_FOR_GOOD,
  },
  IDENTITY_NO_BIRTH_DATE: {
    message: 'the identity has no birth date (PID-7)',
    hint: 'send the birth date in PID-7',
    status: { ...REFUSED_FOR_GOOD, hl7: '101' },
  },
  IDENTITY_NO_IPP: {
    message: 'the identity has no IPP',
    hint: 'send the IPP in PID-3 with type PI',
    status: { ...REFUSED_FOR_GOOD, hl7: '101' },
  },
  IDENTITY_IPP_WITHOUT_FINESS: {
    message: 'the IPP has no FINESS assigning authority',
    hint: 'send the FINESS of the establishment in PID-3.4.2',
    status: { ...REFUSED_FOR_GOOD, hl7: '101' },
  },
  IDENTITY_FINESS_UNKNOWN: {
    message: 'IPP {ipp} is issued under FINESS {finess}, which is not an establishment of the DCC directory',
    hint: 'correct PID-3.4.2, or ask the DCC administrator to add the FINESS to directory.yaml',
    status: { ...REFUSED_FOR_GOOD, hl7: '204' },
  },
  IDENTITY_FINESS_NOT_GRANTED: {
    message: 'IPP {ipp} is filed under FINESS {finess}, but the sender speaks for FINESS {owner} only',
    hint: "send your own establishment's IPPs, or ask the DCC administrator to grant it in directory.yaml (reportsFor)",
    status: { ...REFUSED_FOR_GOOD, hl7: '204' },
  },
  IDENTITY_UNKNOWN_IPP: {
    message: 'IPP {ipp} designates no patient',
    hint: 'send the identity (A28) before the event that refers to it',
    status: { ...REFUSED_FOR_GOOD, hl7: '204' },
  },
  IDENTITY_ACTION_FAILED: {
    message: 'the identity action failed: {reason}',
    hint: 'reload the page and try again',
    status: CONFLICT,
  },
  IDENTIFIER_UNKNOWN: { message: 'no identifier {id}', hint: 'check the identifier', status: NOT_FOUND },
  IDENTIFIER_MISSING: {
    message: 'the identifier is missing',
    hint: 'give the FINESS and the IPP',
    status: BAD_REQUEST,
  },
  IDENTIFIER_TAKEN: {
    message: 'identifier {id} already designates another patient',
    hint: 'detach it from that patient first',
    status: CONFLICT,
  },
  IDENTIFIER_NOT_OF_PATIENT: {
    message: 'identifier {id} is not one of patient {patient}',
    hint: 'check the patient and the identifier',
    status: CONFLICT,
  },
  PATIENT_UNKNOWN: { message: 'no patient {id}', hint: 'check the patient id', status: NOT_FOUND },
  PATIENT_MISSING: {
    message: '{action} needs the other patient\'s id in "other"',
    hint: 'give the other patient',
    status: BAD_REQUEST,
  },
  SURVIVOR_INVALID: {
    message: 'the survivor of a merge must be one of the two patients',
    hint: 'choose one of the two patients as survivor',
    status: BAD_REQUEST,
  },
  MERGE_UNKNOWN: { message: 'no merge {id}', hint: 'check the merge id', status: NOT_FOUND },
  MERGE_CYCLE: {
    message: 'merging these patients would make a cycle',
    hint: 'merge into the surviving patient',
    status: CONFLICT,
  },
  LINK_UNKNOWN: { message: 'no link {id}', hint: 'check the link', status: NOT_FOUND },
  LINK_SELF: {
    message: 'a patient cannot be linked to itself',
    hint: 'choose two patients',
    status: BAD_REQUEST,
  },
  // Clinical documents (store/documents.ts, connectors/document-writer.ts)
  DOCUMENT_UNKNOWN: { message: 'no document {id}', hint: 'check the document id', status: NOT_FOUND },
  DOCUMENT_NO_CONTENT: {
    message: 'document {id} has no {what}',
    hint: 'open the original instead: /api/documents/{id}/original',
    status: NOT_FOUND,
  },
  DOCUMENT_NOT_REPORT: {
    message: 'document-store files the report model, not {contentType}',
    hint: 'put a `pathology` or `molecular` step before the document-store destination',
    status: REFUSED_FOR_GOOD,
  },
  DOCUMENT_NOT_OWNER: {
    message: 'document {id} was filed by another sender: only it may replace or delete it',
    hint: 'send corrections from the establishment or lab that sent the document',
    status: { ...REFUSED_FOR_GOOD, http: 403 },
  },
  DOCUMENT_TO_DELETE_UNKNOWN: {
    message: 'the deletion names a document the DCC never filed',
    hint: 'check the unique id of the document to delete (OBX-11 D, TXA-12/13 or relatedDocument)',
    status: { ...REFUSED_FOR_GOOD, hl7: '204' },
  },
  DOCUMENT_ALREADY_FILED: {
    message: 'document {id} is already filed on a patient',
    hint: 'reload the vigilance queue: only unfiled documents are attached by hand',
    status: CONFLICT,
  },
  DOCUMENT_FILES_UNAVAILABLE: {
    message: 'this store has no data directory to keep document files in',
    hint: 'open the store on a data directory',
    status: { http: 500 },
  },
  REVIEW_UNKNOWN: { message: 'no review item {id}', hint: 'reload the review queue', status: NOT_FOUND },
  REVIEW_NOT_OPEN: {
    message: 'review item {id} is already decided',
    hint: 'reload the review queue',
    status: CONFLICT,
  },
  REVIEW_FAILED: {
    message: 'the review decision failed: {reason}',
    hint: 'reload and try again',
    status: CONFLICT,
  },
  AUTHOR_REQUIRED: {
    message: 'an act on patients needs its author',
    hint: 'log in as a named account',
    status: BAD_REQUEST,
  },

  // Accounts and admin API (store/accounts.ts, dashboard/)
  ACCOUNT_EXISTS: {
    message: 'account "{login}" already exists',
    hint: 'choose another login',
    status: CONFLICT,
  },
  ACCOUNT_INVALID: {
    message: 'the account is not valid: {reason}',
    hint: 'see `onco-relay user add --help`',
    status: BAD_REQUEST,
  },
  ACCOUNT_UNKNOWN: {
    message: 'account "{login}" does not exist',
    hint: 'create it with `onco-relay user add`',
    status: NOT_FOUND,
  },
  PASSWORD_REFUSED: {
    message: 'the password is refused: {reason}',
    hint: 'choose a passphrase of several unrelated words, or let a password manager generate one',
    status: BAD_REQUEST,
  },
  PASSWORD_CHANGE_REQUIRED: {
    message: 'account {login} still has its one-time password',
    hint: 'log in to the dashboard and change it (/password), or: onco-relay user passwd LOGIN',
    status: { http: 403 },
  },
  PASSWORD_FORM_ONLY: {
    message: 'a password is changed through the dashboard form',
    hint: 'log in to the dashboard (/password), or: onco-relay user passwd LOGIN',
    status: BAD_REQUEST,
  },
  QUERY_REPEATED: {
    message: 'query parameter "{name}" is given more than once',
    hint: 'give each query parameter once',
    status: BAD_REQUEST,
  },
  AUDIT_KEY_INVALID: {
    message: 'the audit key is not usable: {reason}',
    hint: 'set ONCO_AUDIT_KEY to at least 32 random characters (openssl rand -hex 32), or restore data/audit.key from the backup',
    status: SETUP,
  },
  MESSAGE_UNKNOWN: { message: 'no message {id}', hint: 'check the message id', status: NOT_FOUND },
  DELIVERY_UNKNOWN: {
    message: 'no delivery {id} in message {message}',
    hint: 'check the delivery id',
    status: NOT_FOUND,
  },
  REPLAY_IMPOSSIBLE: {
    message: 'the message cannot be replayed: {reason}',
    hint: 'its content may have been pruned',
    status: CONFLICT,
  },
  CHANNEL_ACTION_FAILED: {
    message: '{action} of channel "{id}" failed: {reason}',
    hint: "see the channel's last error",
    status: CONFLICT,
  },
  CURSOR_INVALID: {
    message: 'the page cursor is not one this search returned',
    hint: 'start again from the first page',
    status: BAD_REQUEST,
  },
  QUERY_INVALID: {
    message: 'the query is not valid: {reason}',
    hint: 'see /api/openapi.json',
    status: BAD_REQUEST,
  },
  REQUEST_INVALID: {
    message: 'the request is not valid: {reason}',
    hint: 'see /api/openapi.json',
    status: BAD_REQUEST,
  },
  FORBIDDEN: {
    message: 'role {role} may not do this',
    hint: 'ask an admin for an account with the role this needs',
    status: { http: 403 },
  },
  ROUTE_UNKNOWN: {
    message: 'nothing at {method} {path}',
    hint: 'check the address, or follow a link from the menu (the API is described at /api/openapi.json)',
    status: NOT_FOUND,
  },
  SEARCH_TOO_SHORT: {
    message: 'the search text is too short',
    hint: 'type at least {min} characters',
    status: BAD_REQUEST,
  },

  // Contextual calls (dashboard/actx*.ts, store/actx.ts): the hospital's IT reads these answers
  ACTX_PARAM_MISSING: {
    message: 'parameter {name} is missing',
    hint: 'add {name} to the URL (the parameters are listed in the ACTX section of the contract)',
    status: BAD_REQUEST,
  },
  ACTX_PARAM_INVALID: {
    message: 'parameter {name} is malformed: {reason}',
    hint: 'correct {name} in the calling system',
    status: BAD_REQUEST,
  },
  ACTX_ESTABLISHMENT_UNKNOWN: {
    message: 'FINESS {finess} is not an establishment of the DCC directory',
    hint: 'check the finess parameter, or ask the DCC administrator to add the establishment to directory.yaml',
    status: { http: 401 },
  },
  ACTX_NOT_ENABLED: {
    message: 'contextual calls are not enabled for FINESS {finess}: no ACTX secret is set',
    hint: 'the DCC administrator sets the secret (ONCO_ACTX_SECRET_{finess} in the shipped configuration) and restarts',
    status: { http: 401 },
  },
  ACTX_SIGNATURE_INVALID: {
    message: 'the signature does not match the parameters',
    hint: "sign the canonical string (every other parameter sorted by name, name=value RFC 3986-encoded, joined by &) with the establishment's ACTX secret; `onco-relay actx-url` prints a correct URL to compare with",
    status: { http: 401 },
  },
  ACTX_TOKEN_INVALID: {
    message: 'the signed token is not valid: {reason}',
    hint: 'sign the token with the key the DCC holds for the establishment (HS256 with its ACTX secret, or its configured public key)',
    status: { http: 401 },
  },
  ACTX_TS_OUT_OF_WINDOW: {
    message: 'ts {ts} is {skew} s away from the DCC clock; at most {window} s are allowed',
    hint: 'synchronise the calling system clock (NTP) and sign a fresh URL for every call',
    status: { http: 401 },
  },
  ACTX_NONCE_REPLAYED: {
    message: 'nonce {nonce} of FINESS {finess} was already used',
    hint: 'generate a new random nonce for every call: a contextual URL works once',
    status: CONFLICT,
  },
  ACTX_ACCOUNT_UNKNOWN: {
    message:
      'no DCC account for RPPS {rpps}, and FINESS {finess} does not create accounts by contextual call',
    hint: 'ask the DCC administrator to create the account, or to set createAccounts for the establishment',
    status: { http: 403 },
  },
  ACTX_ACCOUNT_DISABLED: {
    message: 'the DCC account of RPPS {rpps} is disabled',
    hint: 'ask the DCC administrator to enable it (onco-relay user enable)',
    status: { http: 403 },
  },
  ACTX_ACCOUNT_MISMATCH: {
    message: 'the DCC account of RPPS {rpps} is not one that FINESS {finess} may open: {reason}',
    hint: 'call from the establishment the account belongs to, or ask the DCC administrator to review the account',
    status: { http: 403 },
  },

  // HTTP listener and sender (connectors/http.ts)
  UNAUTHORIZED: {
    message: 'missing or wrong credentials',
    hint: 'send HTTP Basic credentials of an appliance account',
    status: { http: 401, smtp: 535 },
  },
  NOT_FOUND: {
    message: 'nothing at {path}',
    hint: "POST messages to the listener's path",
    status: NOT_FOUND,
  },
  METHOD_NOT_ALLOWED: { message: '{method} is not accepted', hint: 'use POST', status: { http: 405 } },
  CONTENT_TYPE: {
    message: 'content type {type} is not accepted',
    hint: 'send one of the accepted content types',
    status: { http: 415 },
  },
  BODY_TOO_LARGE: {
    message: 'the body is larger than {max} bytes',
    hint: 'send smaller messages',
    status: { http: 413, smtp: 552 },
  },
  NOT_STORED: {
    message: 'the message could not be stored',
    hint: 'send it again later; the appliance log says why',
    status: { http: 503, ack: 'AR', hl7: '207', smtp: 451 },
  },
  HTTP_REFUSED: {
    message: '{where} refused the request: {status}',
    hint: "read the peer's answer in the message browser, correct, then replay",
    status: { retryable: false },
  },
  HTTP_SERVER_ERROR: {
    message: '{where} failed: {status}',
    hint: 'the peer is in trouble; the delivery is retried',
    status: TRY_AGAIN,
  },
  HTTP_TIMEOUT: {
    message: 'no answer from {where} within {ms} ms',
    hint: 'the delivery is retried',
    status: TRY_AGAIN,
  },
  HTTP_CONNECTION_FAILED: {
    message: 'connection to {where} failed: {reason}',
    hint: 'check the host, port and TLS settings of the destination',
    status: TRY_AGAIN,
  },

  // MLLP (connectors/mllp*.ts)
  MLLP_FRAME_TOO_LARGE: {
    message: 'an MLLP frame is larger than {max} bytes',
    hint: 'send smaller messages, or raise maxFrameBytes of the listener',
    status: {},
  },
  MLLP_LISTENER_FULL: {
    message: 'the MLLP listener holds {max} bytes of unfinished frames',
    hint: 'the sender may resend later; if many large messages arrive at once legitimately, raise maxBufferedBytes of the listener',
    status: {},
  },
  MLLP_BAD_ACK: {
    message: 'the answer of {where} is not a readable ACK: {reason}',
    hint: 'the peer must answer each message with an HL7 ACK',
    status: TRY_AGAIN,
  },
  MLLP_WRONG_ACK: {
    message: '{where} acknowledged control id {got}, not {sent}',
    hint: 'the peer mixes up its answers; the message is sent again',
    status: TRY_AGAIN,
  },
  MLLP_ACK_AE: {
    message: '{where} answered AE',
    hint: "read the peer's reason in the message browser, correct the content, then replay",
    status: { retryable: false },
  },
  MLLP_ACK_CR: {
    message: '{where} answered CR',
    hint: 'the peer does not take this message type, version or processing id',
    status: { retryable: false },
  },
  MLLP_ACK_AR: {
    message: '{where} answered AR',
    hint: 'the peer could not take the message now; it is retried',
    status: TRY_AGAIN,
  },
  MLLP_ACK_CE: {
    message: '{where} answered CE',
    hint: 'the peer could not take the message now; it is retried',
    status: TRY_AGAIN,
  },
  MLLP_ACK_TIMEOUT: {
    message: 'no ACK from {where} within {ms} ms',
    hint: 'the message is sent again (same MSH-10); raise ackTimeoutMs if the peer is slow',
    status: TRY_AGAIN,
  },
  MLLP_CONNECTION_FAILED: {
    message: 'MLLP exchange with {where} failed: {reason}',
    hint: 'check the host and port of the destination and that the peer listens',
    status: TRY_AGAIN,
  },

  MLLP_NO_CLIENT_CERTIFICATE: {
    message: 'this listener takes messages only over TLS with a client certificate',
    hint: 'configure your client certificate, then send again',
    status: { ack: 'AR', hl7: '207' },
  },
  MLLP_UNKNOWN_CLIENT_CERTIFICATE: {
    message: 'client certificate {fingerprint} is bound to no establishment',
    hint: 'ask the DCC to bind it to your FINESS (tls.clients of the listener), then send again',
    status: { ack: 'AR', hl7: '207' },
  },
  MLLP_UNKNOWN_SENDING_FACILITY: {
    message: 'MSH-4 "{facility}" is not listed for this listener',
    hint: 'send with your listed MSH-4, or ask the DCC to list it (sendingFacilities of the listener)',
    status: { ack: 'AR', hl7: '207' },
  },
  MLLP_SENDING_FACILITY_NOT_YOURS: {
    message: 'MSH-4 "{facility}" belongs to FINESS {owner}, not to {bound} that this connection is bound to',
    hint: 'send with the MSH-4 of your own establishment',
    status: { ack: 'AR', hl7: '207' },
  },

  // Files and SFTP (connectors/file-writer.ts, connectors/sftp-*.ts)
  FILE_NAME_EMPTY: {
    message: 'file name template "{template}" gave an empty name',
    hint: 'use placeholders the message always has',
    status: { retryable: false },
  },
  FILE_WRITE_FAILED: {
    message: 'writing {target} failed: {reason}',
    hint: 'check that the folder exists and is writable; the delivery is retried',
    status: TRY_AGAIN,
  },
  SFTP_CONNECT_FAILED: {
    message: 'SFTP connection to {where} failed: {reason}',
    hint: 'check host, port, account and host key of the destination',
    status: TRY_AGAIN,
  },
  SFTP_TRANSFER_FAILED: {
    message: 'SFTP transfer to {where} failed: {reason}',
    hint: 'a retry rewrites the file',
    status: TRY_AGAIN,
  },
  SFTP_MOVE_TO_MISSING: {
    message: 'the remote folder {folder} does not exist',
    hint: 'ask the peer to create it, then replay',
    status: { retryable: false },
  },
  SFTP_REFUSED: {
    message: 'the SFTP server refused: {reason}',
    hint: "check the remote account's rights",
    status: { retryable: false },
  },
  SFTP_AUTH_FAILED: {
    message: 'SFTP authentication on {where} failed',
    hint: 'check the account and its key or password',
    status: SETUP,
  },
  SFTP_KEY_UNREADABLE: {
    message: 'key file {file} cannot be read',
    hint: 'check the path and rights',
    status: SETUP,
  },
  SFTP_KNOWN_HOSTS_UNREADABLE: {
    message: 'known-hosts file {file} cannot be read',
    hint: 'check the path and rights',
    status: SETUP,
  },
  SFTP_HOST_KEY: {
    message: 'host key {file} is not a private key ssh2 can read',
    hint: 'move it away to have a new one generated (clients will then see a new host key)',
    status: SETUP,
  },
  SFTP_HOST_KEY_MISMATCH: {
    message: 'the host key of {where} is not the pinned one',
    hint: 'if the peer really changed its key, update the pin; otherwise someone is in the way',
    status: SETUP,
  },
  SFTP_HOST_KEY_NOT_PINNED: {
    message: 'the host key of {where} is not pinned',
    hint: 'pin it with hostKeySha256 or a known-hosts file',
    status: SETUP,
  },
  SFTP_HOST_KEY_REVOKED: {
    message: 'the host key of {where} is revoked',
    hint: 'ask the peer for its new key',
    status: SETUP,
  },
  SFTP_LISTEN: {
    message: 'the SFTP server cannot listen: {reason}',
    hint: 'free the port or change it',
    status: SETUP,
  },
  SFTP_FOLDER_TAKEN: {
    message: 'two channels take /in/{folder}',
    hint: 'give each drop folder to one sftp-drop source only',
    status: SETUP,
  },
  SFTP_SETTINGS_CLASH: {
    message: 'sftp-drop sources disagree on the server settings',
    hint: 'every sftp-drop source shares one SFTP server: give them the same port, bind and hostKeyFile',
    status: SETUP,
  },
  SFTP_FLOOD: { message: 'too many requests in flight', hint: 'slow down', status: SFTP_FAILURE },
  SFTP_NO_CHANNEL: {
    message: 'no channel takes this folder',
    hint: 'ask the appliance administrator to deploy the channel of this folder',
    status: SFTP_FAILURE,
  },
  SFTP_PATH_NUL: {
    message: 'path refused: it contains a NUL byte',
    hint: 'use plain file names',
    status: SFTP_DENIED,
  },
  SFTP_PATH_BACKSLASH: {
    message: 'path refused: it contains a backslash',
    hint: 'use / between folders',
    status: SFTP_DENIED,
  },
  SFTP_PATH_OUTSIDE: {
    message: '{path} is outside your tree',
    hint: 'stay in your tree',
    status: SFTP_DENIED,
  },
  SFTP_SYMLINK: {
    message: 'symbolic links cannot be created here',
    hint: 'upload files',
    status: SFTP_DENIED,
  },
  SFTP_FIXED_TREE: {
    message: 'the folders of this tree are fixed',
    hint: 'upload files into the existing folders',
    status: SFTP_DENIED,
  },
  SFTP_WRITE_OUTSIDE_IN: {
    message: 'files are written under /in only',
    hint: 'upload into /in/…',
    status: SFTP_DENIED,
  },
  SFTP_RENAME_OUTSIDE_IN: {
    message: 'renames are allowed under /in only',
    hint: 'upload into /in/…',
    status: SFTP_DENIED,
  },
  SFTP_EXISTS: { message: '{path} already exists', hint: 'use another name', status: SFTP_FAILURE },
  SFTP_BAD_NAME: {
    message: 'file name refused: {reason}',
    hint: 'use plain file names',
    status: SFTP_DENIED,
  },
  SFTP_NO_FILE: { message: '{path}: no such file', hint: 'list the folder', status: SFTP_MISSING },
  SFTP_NO_DIR: { message: '{path}: no such directory', hint: 'list the parent folder', status: SFTP_MISSING },
  SFTP_NOT_FILE: { message: '{path} is not a file', hint: 'list the folder', status: SFTP_FAILURE },
  SFTP_NOT_DIR: {
    message: 'handle is not a directory',
    hint: 'open the directory first',
    status: SFTP_FAILURE,
  },
  SFTP_NOT_LINK: { message: '{path} is not a symbolic link', hint: 'list the folder', status: SFTP_FAILURE },
  SFTP_NOT_READABLE: {
    message: 'handle not open for reading',
    hint: 'open the file for reading',
    status: SFTP_FAILURE,
  },
  SFTP_NOT_WRITABLE: {
    message: 'handle not open for writing',
    hint: 'open the file for writing',
    status: SFTP_FAILURE,
  },
  SFTP_BAD_HANDLE: { message: 'unknown handle', hint: 'open the file again', status: SFTP_FAILURE },
  SFTP_BEING_TAKEN: {
    message: '{path} is already being taken',
    hint: 'wait for the other transfer',
    status: SFTP_FAILURE,
  },

  // Documents out: CDA writers and HL7 v2 packaging (transformers/cda-*.ts, mdm-out.ts)
  CDA_INVALID_CHARACTER: {
    message: 'character {character} cannot appear in an XML document',
    hint: 'remove the control character from the form field (it usually comes from a copy-paste) and validate again',
    status: CONTENT_AE,
  },
  CDA_BAD_VERSION: {
    message: 'the version chain of document {setId} does not hold',
    hint: 'a corrected document is version n+1 and gives the id of version n in `replaces`; a first version replaces nothing',
    status: CONTENT_AE,
  },
  MDM_CDA_INCOMPLETE: {
    message: 'the CDA document has no {what}: it cannot be packaged for HL7 v2',
    hint: 'package a CDA written by the FRCP/PPS writers, or complete the document header',
    status: REQUIRED_AE,
  },
  STEP_POOL_CLOSED: {
    message: 'the step pool is closed: the engine is stopping',
    hint: 'nothing to do: the message stays queued and runs when the engine starts again',
    status: { http: 503, retryable: true },
  },
  STEP_POOL_THREAD_ENDED: {
    message: 'the step pool thread running this step ended before it answered',
    hint: 'the message is tried again on a new thread; if it keeps happening, look at the cause (memory?)',
    status: { http: 503, retryable: true },
  },
  STEP_POOL_NO_SPEC: {
    message: 'no step of type "{type}" is exported by {module}',
    hint: 'a step spec with offThread must name the module that exports it (import.meta.url)',
    status: { http: 500, retryable: false },
  },
  PDF_CDA_INCOMPLETE: {
    message: 'the CDA document has no {what}: it cannot be rendered as PDF',
    hint: 'render a CDA written by the FRCP/PPS writers (put the rcp-cda step first)',
    status: REQUIRED_AE,
  },
  XDM_CDA_INCOMPLETE: {
    message: 'the CDA document has no {what}: its XDS metadata cannot be written',
    hint: 'package a CDA written by the FRCP/PPS writers (put the rcp-cda step first)',
    status: REQUIRED_AE,
  },
  XDM_NO_CLASS_CODE: {
    message: 'no XDS classCode is known for documents of type {type}',
    hint: 'give classCode in the cda-xdm step options',
    status: VALUE_AE,
  },
  XDM_MIXED_PATIENTS: {
    message: 'the documents of one XDM set are not all about the same patient',
    hint: 'send one package per patient',
    status: CONTENT_AE,
  },
  XDM_EMPTY: {
    message: 'an XDM submission set needs at least one document',
    hint: 'give the CDA document to package',
    status: REQUIRED_AE,
  },
  XDM_BAD_TIME: {
    message: 'the submission time "{time}" is not an HL7 TS',
    hint: 'give submissionTime as YYYYMMDDHHMMSS[+ZZZZ]',
    status: CONTENT_AE,
  },
  ORDER_LAB_UNKNOWN: {
    message: '{finess} is not a molecular biology lab of the directory',
    hint: 'choose a lab of kind molecular-lab in directory.yaml',
    status: { http: 400 },
  },
  ORDER_UNKNOWN: {
    message: 'no order {id}',
    hint: 'list the orders with GET /api/orders',
    status: NOT_FOUND,
  },
  ORDER_NOT_JSON: {
    message: 'the order is not readable JSON: {reason}',
    hint: 'the molecular-orders outbox carries an order as JSON (store/orders.ts); replay it once the producer is fixed',
    status: CONTENT_AE,
  },

  // RCP and PPS in the core store (store/rcp.ts) and their routing (connectors/document-router.ts)
  RCP_INVALID: {
    message: 'the {what} cannot be stored: missing {missing}',
    hint: 'give every required field (see /api/openapi.json and the README, RCP and PPS)',
    status: { http: 422 },
  },
  RCP_UNKNOWN: { message: 'no {what} {id}', hint: 'check the id', status: NOT_FOUND },
  RCP_ALREADY_IMPORTED: {
    message: 'the form {id} of the producing software was imported already',
    hint: 'correct the imported form through the API (a new version) instead of importing it again',
    status: CONFLICT,
  },
  RCP_PATIENT_CHANGED: {
    message: 'document {id} belongs to another patient',
    hint: 'a document cannot move to another patient: create one for the right patient',
    status: CONFLICT,
  },
  RCP_NOT_LATEST: {
    message: 'document {id} has a newer version ({latest})',
    hint: 'edit or validate the latest version',
    status: CONFLICT,
  },
  RCP_NOT_DRAFT: {
    message: 'document {id} is {status}, not a draft',
    hint: 'a validated document is corrected by editing it (a new version), then validating that version',
    status: CONFLICT,
  },
  RCP_CONTENT_INVALID: {
    message: 'the validated document cannot be written as CDA: {reason}',
    hint: 'correct the document (a new version) and validate it again',
    status: REFUSED_FOR_GOOD,
  },

  DOCUMENT_ROUTE_INVALID: {
    message: '{reason}',
    hint: 'complete the establishment’s documents route in directory.yaml, then replay the delivery',
    status: REFUSED_FOR_GOOD,
  },
  DOCUMENT_FORMAT_UNKNOWN: {
    message: 'no document format "{format}"',
    hint: 'give the establishment’s documents route a format among cda, xdm, hl7v2 in directory.yaml, then replay the message',
    status: REFUSED_FOR_GOOD,
  },
  PICKUP_NO_ACCOUNT: {
    message: 'no establishment account for FINESS {finess}',
    hint: 'create one (onco-relay user add LOGIN --role establishment --finess FINESS), then replay the delivery',
    status: REFUSED_FOR_GOOD,
  },

  // MSSanté: the SMTP inbox (connectors/smtp-server.ts), each refusal with its SMTP reply code
  SMTP_UNKNOWN_MAILBOX: {
    message: 'no mailbox {mailbox} here',
    hint: 'check the address: the DCC takes mail only for the mailboxes its channels configure',
    status: { smtp: 550 },
  },
  SMTP_SENDER_REFUSED: {
    message: 'sender {sender} may not write to {mailbox}',
    hint: "send from the MSSanté address the DCC's directory lists for your establishment, or ask the DCC to add it",
    status: { smtp: 550 },
  },
  SMTP_TOO_BIG: {
    message: 'message larger than {limit} bytes',
    hint: 'send the documents in several mails, or ask the DCC to raise maxMessageBytes',
    status: { smtp: 552 },
  },
  SMTP_AUTH_REQUIRED: {
    message: 'authentication required',
    hint: 'start TLS (STARTTLS), then AUTH with the account the DCC gave your establishment',
    status: { smtp: 530 },
  },
  SMTP_AUTH_FAILED: {
    message: 'authentication failed',
    hint: 'check the login and password of the account the DCC gave your establishment',
    status: { smtp: 535 },
  },
  SMTP_TLS_REQUIRED: {
    message: 'must issue STARTTLS first',
    hint: 'configure the mail client or relay to use STARTTLS',
    status: { smtp: 530 },
  },
  SMTP_CLIENT_CERTIFICATE: {
    message: 'client certificate refused: {reason}',
    hint: 'present the certificate of your MSSanté operator (IGC-Santé), issued by a CA the DCC trusts',
    status: { smtp: 554 },
  },
  SMTP_MAILBOX_GONE: {
    message: 'mailbox {mailbox} closed while the mail was being sent',
    hint: 'send the mail again in a moment',
    status: { smtp: 451 },
  },
  SMTP_NOT_STORED: {
    message: 'the mail could not be stored',
    hint: 'nothing was kept: send the mail again later (your server retries by itself)',
    status: { smtp: 451, retryable: true },
  },
  SMTP_MAILBOX_TAKEN: {
    message: 'two channels take the mailbox {mailbox}',
    hint: 'give each mailbox to one smtp-inbox source only',
    status: SETUP,
  },
  SMTP_SETTINGS_CLASH: {
    message: 'channel {channel}: smtp-inbox option {option} differs from the running SMTP server',
    hint: 'every smtp-inbox source shares one SMTP server: give them the same port, bind, hostname, size, auth and TLS options',
    status: SETUP,
  },

  // MSSanté: mail out (connectors/mssante.ts, transformers/mss-mail.ts)
  MSS_MAIL_INVALID: {
    message: 'the mail to send is not valid: {reason}',
    hint: 'the step before the mssante destination must produce mail JSON (transformers/mss-mail.ts) or a document',
    status: { ...CONTENT_AE, retryable: false },
  },
  MSS_NO_RECIPIENT: {
    message: 'the mail names no recipient',
    hint: 'give the recipients in the mail JSON `to`, in meta.to, or in the destination option `to`',
    status: REFUSED_FOR_GOOD,
  },
  MSS_REFUSED: {
    message: 'the relay refused the mail',
    hint: "read the relay's answer: a 5xx will not pass by retrying; correct the address or content, then replay the delivery",
    status: REFUSED_FOR_GOOD,
  },
  MSS_RECIPIENT_REFUSED: {
    message: 'the relay refused recipient(s) {recipients}',
    hint: 'check the MSSanté address in the directory (the national MSSanté directory lists the valid ones), then replay the delivery',
    status: REFUSED_FOR_GOOD,
  },
  MSS_RELAY_UNAVAILABLE: {
    message: 'the MSSanté relay could not take the mail now',
    hint: 'retried by itself; if it lasts, check the relay host, port, TLS and credentials of the destination',
    status: TRY_AGAIN,
  },

  // MSSanté: mail in, its attachments and XDM archives (transformers/mime-attachments.ts, xdm-read.ts)
  MAIL_NO_DOCUMENT: {
    message: 'the mail carries no document the DCC files',
    hint: 'attach IHE_XDM.ZIP, a CDA, an HL7 file or a PDF described by XDM metadata, then send again',
    status: CONTENT_AE,
  },
  MAIL_PARTS_EXPECTED: {
    message: 'the message is not the list of parts of a mail',
    hint: 'put a mail-attachments step before the attachment-dispatch destination',
    status: REFUSED_FOR_GOOD,
  },
  MAIL_KIND_UNROUTED: {
    message: 'no channel takes {kind} documents here',
    hint: 'set the route of that kind on the attachment-dispatch destination, then replay the delivery',
    status: REFUSED_FOR_GOOD,
  },
  ZIP_BROKEN: {
    message: 'the archive cannot be read as a zip',
    hint: 'send the archive again: it was cut or damaged on the way',
    status: CONTENT_AE,
  },
  ZIP_TOO_MANY_ENTRIES: {
    message: 'the archive holds too many entries',
    hint: 'send fewer documents per mail',
    status: CONTENT_AE,
  },
  ZIP_TOO_LARGE: {
    message: 'the archive inflates past the size limit',
    hint: 'send fewer or smaller documents per mail',
    status: CONTENT_AE,
  },
  ZIP_RATIO: {
    message: 'an entry of the archive inflates far more than documents do',
    hint: 'this looks like a zip bomb; send the documents themselves',
    status: CONTENT_AE,
  },
  ZIP_PATH_OUTSIDE: {
    message: 'an entry of the archive would be written outside it',
    hint: 'entry names must be relative paths without ".." (IHE_XDM/SUBSET01/…)',
    status: CONTENT_AE,
  },
  ZIP_NESTED: {
    message: 'archives are nested too deep',
    hint: 'send IHE_XDM.ZIP with the documents themselves inside, not archives of archives',
    status: CONTENT_AE,
  },
  XDM_NO_METADATA: {
    message: 'the archive has no IHE_XDM/SUBSETnn/METADATA.XML',
    hint: 'send an IHE XDM archive (IHE_XDM.ZIP) as your practice software or MSSanté client produces it',
    status: REQUIRED_AE,
  },
  XDM_BAD_URI: {
    message: 'a document of METADATA.XML names no file, or one outside its subset',
    hint: 'each ExtrinsicObject needs a URI slot naming its file in the same SUBSET folder',
    status: CONTENT_AE,
  },
  XDM_MISSING_DOCUMENT: {
    message: 'METADATA.XML describes a document absent from the archive',
    hint: 'send the archive again with every document its METADATA.XML lists',
    status: REQUIRED_AE,
  },

  // MSSanté: delivery tracking (transformers/mail-report.ts, connectors/mss-tracking.ts)
  MAIL_REPORT_UNMATCHABLE: {
    message: 'a delivery or read report that names no original Message-ID',
    hint: 'nothing to match it to: it stays in the journal for a person to read',
    status: CONTENT_AE,
  },
  MAIL_REPORT_EXPECTED: {
    message: 'the message is not a DSN/MDN report',
    hint: 'put a mail-report step before the mss-tracking destination',
    status: REFUSED_FOR_GOOD,
  },

  // Listeners (connectors/listener-setup.ts)
  PORT_IN_USE: {
    message: 'port {port} of {bind} is already in use',
    hint: 'stop whatever listens there, or choose another port',
    status: SETUP,
  },
  LISTEN_FAILED: {
    message: 'cannot listen on {bind}:{port}: {reason}',
    hint: 'check the bind address',
    status: SETUP,
  },
  BAD_PORT: {
    message: '{name} "{value}" is not a port',
    hint: 'set it to an integer from 0 to 65535',
    status: SETUP,
  },
  TLS_FILE_UNREADABLE: {
    message: 'TLS file {file} cannot be read',
    hint: 'check the path (relative paths resolve against the data directory) and its rights',
    status: SETUP,
  },
});

export type ErrorCode = keyof typeof ERRORS;

export interface OncoErrorOptions {
  /** The sentence for this occurrence; default the catalogue's template filled with `params`. */
  message?: string;
  params?: Readonly<Record<string, string | number>>;
  /** Overrides the catalogue's hint when this occurrence knows better. */
  hint?: string;
  /** Where in the input: an HL7 path (`PID-7`), a line, a byte, a file. */
  location?: string;
  cause?: unknown;
  /** Overrides parts of the catalogue's protocol status for this occurrence. */
  protocol?: ProtocolStatus;
}

/** The definition of a code, or undefined for a code the catalogue does not know. */
export function definitionOf(code: string): ErrorDefinition | undefined {
  return Object.hasOwn(ERRORS, code) ? ERRORS[code as ErrorCode] : undefined;
}

/** The base of every error of the appliance: a stable code, a sentence, a hint, where, and why. */
export class OncoError extends Error {
  readonly code: string;
  readonly hint: string | undefined;
  readonly location: string | undefined;
  readonly protocol: ProtocolStatus;
  constructor(code: string, options: OncoErrorOptions = {}) {
    const definition = definitionOf(code);
    super(options.message ?? fill(definition?.message ?? code, options.params ?? {}), {
      cause: options.cause,
    });
    this.name = new.target.name;
    this.code = code;
    this.hint = options.hint ?? definition?.hint;
    this.location = options.location;
    this.protocol = { ...definition?.status, ...options.protocol };
  }
}

function fill(template: string, params: Readonly<Record<string, string | number>>): string {
  return template.replace(/\{(\w+)\}/g, (whole, name: string) =>
    Object.hasOwn(params, name) ? String(params[name]) : whole,
  );
}

/**
 * The one human rendering of an error, for MSA-3, ERR-8, `.error.txt`, the dashboard and `status`:
 * `CODE: message (at LOCATION). Hint: …` — the location and the hint once, and the cause only when
 * the message does not already say it. Accepts anything thrown.
 */
export function renderError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const e = error as Error & { code?: unknown; hint?: unknown; location?: unknown };
  const code = typeof e.code === 'string' && e.code !== '' ? e.code : undefined;
  const location = typeof e.location === 'string' && e.location !== '' ? e.location : undefined;
  const hint = typeof e.hint === 'string' && e.hint !== '' ? e.hint : undefined;
  let text = code === undefined || e.message.startsWith(`${code}:`) ? e.message : `${code}: ${e.message}`;
  if (location !== undefined && !text.includes(location)) text += ` (at ${location})`;
  const cause = causeText(e.cause, text);
  if (cause !== undefined) text += `. Cause: ${cause}`;
  if (hint !== undefined && !text.includes(hint)) text += `. Hint: ${hint}`;
  return text;
}

// A wrapper often repeats its cause (a step error made of a parser error): say it only if it is new.
function causeText(cause: unknown, said: string): string | undefined {
  if (cause === undefined || cause === null) return undefined;
  const message = cause instanceof Error ? cause.message : String(cause);
  if (message === '' || said.includes(message)) return undefined;
  return renderError(cause);
}

/** The code a rendering starts with (`PAM_BAD_DATE: …`), to recover protocol statuses from journaled text. */
export function codeOfRendering(text: string): string | undefined {
  const match = /^([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+): /.exec(text);
  return match?.[1];
}
