// Shapes that cross the layers as plain data: the store writes them, the transformers read them.
// Neither layer may import the other (eslint.config.js), so the one declaration lives here, in a leaf
// that imports nothing.

/**
 * The patient as a validated RCP form or PPS carries it: the identity at the time of validation,
 * written by the store into the outbox row, read by the CDA writers.
 */
export interface PatientSnapshot {
  id: number;
  /** Only when the identity is qualified: an unqualified INS never leaves the store. */
  ins: { matricule: string; oid: string } | null;
  identifiers: Array<{ finess: string; ipp: string }>;
  birthName: string;
  givenNames: string;
  firstGivenName: string;
  usedName: string | null;
  usedGivenName: string | null;
  sex: string;
  birthDate: string;
  birthPlace: string | null;
}
