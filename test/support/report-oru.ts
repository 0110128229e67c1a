// A pathology ORU^R01 carrying its report as a PDF in base64 (an ED OBX, as the CI-SIS profile sends
// it), for the large-report test and bench. The patient is the fixtures' FICTIF Camille, IPP-000123
// at FINESS 310000001.
import { randomBytes } from 'node:crypto';
import type { Store } from '../../store/store.ts';

/** Bytes a reader takes for a PDF (its header and trailer), of about `size`, unlike any other. */
export const pdfOf = (size: number): Buffer =>
  Buffer.concat([Buffer.from('%PDF-1.4\n'), randomBytes(size), Buffer.from('\n%%EOF\n')]);

export const oruWithPdf = (pdf: Buffer, controlId = 'BIG-1'): Buffer =>
  Buffer.from(
    [
      `MSH|^~\\&|LAB|LABO|ONCO-RELAY|DCC|20260115103000||ORU^R01^ORU_R01|${controlId}|P|2.5|||||FRA|UNICODE UTF-8`,
      'PID|1||IPP-000123^^^CHU&310000001&M^PI||FICTIF^Camille^Camille^^^^L||19790328|F',
      `OBR|1||${controlId}|60568-3^CR d anatomie et de cytologie pathologiques^LN|||20260114090000`,
      `OBX|1|ED|60568-3^CR^LN||^AP^PDF^Base64^${pdf.toString('base64')}||||||F`,
    ].join('\r') + '\r',
  );

/** Files the ORU's patient as an identity (IPP-000123 at 310000001): reports file on it. Its id. */
export async function oruPatient(store: Store): Promise<number> {
  const { patientId } = await store.write.vigilance.applyIdentity(
    {
      birthName: 'FICTIF',
      givenNames: ['Camille'],
      firstGivenName: 'Camille',
      birthDate: '1979-03-28',
      sex: 'F',
      identifiers: [{ finess: '310000001', ipp: 'IPP-000123' }],
    },
    { messageId: null, insOids: [] },
  );
  return patientId;
}
