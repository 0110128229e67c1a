// Molecular orders prescribed in the DCC (issue 10 item 5): an order names a patient, an analysis,
// the lab (FINESS) and the prescriber (RPPS). Creating it allocates its number and writes, in the
// same transaction, the outbox row that the `molecular-orders` channel sends to the lab as
// OML^O21: an order is never created without being sent, nor sent twice. A result that carries the
// order number closes the order (`resultArrived`, called by the documents filing).
import type { Db, Migration } from './db.ts';
import type { Audit } from './audit.ts';
import type { PatientStore } from './patients.ts';
import { OncoError } from '../config/errors.ts';

// Version 550-599: the second half of the documents range (500-599), agreed with documents (500-549).
export const orderMigrations: Migration[] = [
  {
    version: 550,
    name: 'molecular orders',
    up: `
      CREATE TABLE molecular_orders (
        id INTEGER PRIMARY KEY,
        order_number TEXT UNIQUE,
        patient_id INTEGER NOT NULL,
        analysis_code TEXT NOT NULL,
        analysis_display TEXT,
        analysis_system TEXT,
        lab_finess TEXT NOT NULL,
        prescriber_rpps TEXT NOT NULL,
        prescriber_family TEXT,
        prescriber_given TEXT,
        clinical_information TEXT,
        status TEXT NOT NULL,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        establishment TEXT,
        outbox_id INTEGER,
        result_document_id INTEGER,
        resulted_at TEXT
      );
      CREATE INDEX molecular_orders_patient ON molecular_orders (patient_id, id);
      CREATE INDEX molecular_orders_lab ON molecular_orders (lab_finess, id);
    `,
  },
];

/** The outbox channel that sends orders to the labs. */
export const MOLECULAR_ORDERS = 'molecular-orders';
/** Content type of the order the outbox carries: the OML^O21 writer's model (transformers/oml-o21.ts). */
export const ORDER_CONTENT_TYPE = 'application/vnd.onco-relay.molecular-order+json';
/** Namespace of our order numbers: ORC-2 / OBR-2 carry `number^ONCO-RELAY`. */
const NUMBER_PREFIX = 'DCC-MO-';

export type OrderStatus = 'ordered' | 'resulted';

/** What orders need of the store's outbox (store/outbox.ts, the rcp engineer's): one row added. */
export interface OrderOutbox {
  add(item: {
    channel: string;
    content: string;
    contentType: string;
    meta: Record<string, string | number>;
    owner: string;
    now: number;
  }): number;
}

export interface OrderInput {
  patientId: number;
  analysis: { code: string; display?: string; system?: string };
  labFiness: string;
  prescriber: { rpps: string; familyName?: string; givenName?: string };
  clinicalInformation?: string;
}

export interface OrderActor {
  login: string;
  role?: string | null;
  source?: string | null;
  establishment?: string | null;
}

export interface OrderRecord {
  id: number;
  orderNumber: string;
  patientId: number;
  analysis: { code: string; display: string | null; system: string | null };
  labFiness: string;
  prescriber: { rpps: string; familyName: string | null; givenName: string | null };
  clinicalInformation: string | null;
  status: OrderStatus;
  createdAt: string;
  createdBy: string;
  /** FINESS of the establishment whose account ordered it; null for DCC staff. */
  establishment: string | null;
  outboxId: number | null;
  resultDocumentId: number | null;
  resultedAt: string | null;
}

interface Row {
  id: number;
  order_number: string;
  patient_id: number;
  analysis_code: string;
  analysis_display: string | null;
  analysis_system: string | null;
  lab_finess: string;
  prescriber_rpps: string;
  prescriber_family: string | null;
  prescriber_given: string | null;
  clinical_information: string | null;
  status: OrderStatus;
  created_at: string;
  created_by: string;
  establishment: string | null;
  outbox_id: number | null;
  result_document_id: number | null;
  resulted_at: string | null;
}

const toRecord = (r: Row): OrderRecord => ({
  id: r.id,
  orderNumber: r.order_number,
  patientId: r.patient_id,
  analysis: { code: r.analysis_code, display: r.analysis_display, system: r.analysis_system },
  labFiness: r.lab_finess,
  prescriber: { rpps: r.prescriber_rpps, familyName: r.prescriber_family, givenName: r.prescriber_given },
  clinicalInformation: r.clinical_information,
  status: r.status,
  createdAt: r.created_at,
  createdBy: r.created_by,
  establishment: r.establishment,
  outboxId: r.outbox_id,
  resultDocumentId: r.result_document_id,
  resultedAt: r.resulted_at,
});

const INS_KIND: Readonly<Record<string, string>> = {
  '1.2.250.1.213.1.4.8': 'INS-NIR',
  '1.2.250.1.213.1.4.9': 'INS-NIA',
  '1.2.250.1.213.1.4.10': 'INS-NIR-TEST',
  '1.2.250.1.213.1.4.11': 'INS-NIR-DEMO',
};

export class OrderError extends OncoError {
  constructor(code: string, params: Record<string, string | number>) {
    super(code, { params });
  }
}

export class Orders {
  private readonly s;

  constructor(
    db: Db,
    private readonly patients: PatientStore,
    private readonly outbox: OrderOutbox,
    private readonly audit: Audit,
  ) {
    const p = (sql: string) => db.prepare(sql);
    this.s = {
      insert: p(`INSERT INTO molecular_orders (patient_id, analysis_code, analysis_display, analysis_system,
                   lab_finess, prescriber_rpps, prescriber_family, prescriber_given, clinical_information,
                   status, created_at, created_by, establishment)
                 VALUES (@patientId, @code, @display, @system, @lab, @rpps, @family, @given, @info,
                   'ordered', @now, @by, @establishment)`),
      number: p('UPDATE molecular_orders SET order_number = ?, outbox_id = ? WHERE id = ?'),
      get: p('SELECT * FROM molecular_orders WHERE id = ?'),
      byNumber: p('SELECT * FROM molecular_orders WHERE order_number = ?'),
      close: p(`UPDATE molecular_orders SET status = 'resulted', result_document_id = ?, resulted_at = ?
                WHERE id = ? AND status = 'ordered'`),
      list: p(`SELECT * FROM molecular_orders
               WHERE (@patientId IS NULL OR patient_id = @patientId) AND (@lab IS NULL OR lab_finess = @lab)
                 AND (@establishment IS NULL OR establishment = @establishment)
                 AND (@status IS NULL OR status = @status) AND (@before IS NULL OR id < @before)
               ORDER BY id DESC LIMIT @limit`),
    };
  }

  /**
   * Records an order, numbers it and writes its outbox row for the lab, with the patient as known
   * now (the INS only when the identity is qualified), and its audit row: one transaction.
   */
  create(input: OrderInput, actor: OrderActor, now: number): OrderRecord {
    const patientId = this.patients.resolvePatient(input.patientId);
    const patient = patientId === null ? null : this.patients.get(patientId);
    if (patientId === null || patient === null)
      throw new OrderError('PATIENT_UNKNOWN', { id: input.patientId });
    const at = new Date(now).toISOString();
    const id = Number(
      this.s.insert.run({
        patientId,
        code: input.analysis.code,
        display: input.analysis.display ?? null,
        system: input.analysis.system ?? null,
        lab: input.labFiness,
        rpps: input.prescriber.rpps,
        family: input.prescriber.familyName ?? null,
        given: input.prescriber.givenName ?? null,
        info: input.clinicalInformation ?? null,
        now: at,
        by: actor.login,
        establishment: actor.establishment ?? null,
      }).lastInsertRowid,
    );
    const orderNumber = `${NUMBER_PREFIX}${String(id).padStart(8, '0')}`;
    const ipp = this.patients.identifiers(patientId).find((i) => i.status === 'active');
    const qualified = patient.ins !== null && patient.ins.status === 'QUAL';
    const kind = patient.ins === null ? undefined : INS_KIND[patient.ins.oid];
    // The OML^O21 writer's model (transformers/oml-o21.ts MolecularOrder), as plain JSON.
    const message = {
      orderNumber,
      controlId: orderNumber,
      orderedAt: at,
      patient: {
        ipp: ipp === undefined ? undefined : { value: ipp.ipp, finess: ipp.finess },
        ins:
          qualified && kind !== undefined && patient.ins !== null
            ? { matricule: patient.ins.matricule, oid: patient.ins.oid, kind }
            : undefined,
        birthName: patient.birthName,
        firstGivenName: patient.firstGivenName,
        birthDate: patient.birthDate,
        sex: patient.sex === 'M' || patient.sex === 'F' ? patient.sex : undefined,
      },
      analysis: input.analysis,
      lab: { finess: input.labFiness },
      prescriber: input.prescriber,
      clinicalInformation: input.clinicalInformation,
    };
    const outboxId = this.outbox.add({
      channel: MOLECULAR_ORDERS,
      content: JSON.stringify(message),
      contentType: ORDER_CONTENT_TYPE,
      meta: { orderNumber, labFiness: input.labFiness, patientId },
      owner: input.labFiness,
      now,
    });
    this.s.number.run(orderNumber, outboxId, id);
    this.audit.record(
      {
        actor: actor.login,
        role: actor.role ?? null,
        source: actor.source ?? null,
        establishment: actor.establishment ?? null,
        patientId,
        action: 'order-create',
        object: `order:${id}`,
        detail: { orderNumber, labFiness: input.labFiness, analysis: input.analysis.code },
      },
      now,
    );
    return this.get(id) as OrderRecord;
  }

  /**
   * A filed result carries this order number: the order is closed with the result. False for an
   * order number the DCC never issued (the result is then filed as an ordinary one) and for an order
   * already closed (a second result is filed, the order keeps its first).
   */
  resultArrived(orderNumber: string, documentId: number, now: number): boolean {
    const row = this.s.byNumber.get(orderNumber) as Row | undefined;
    if (row === undefined) return false;
    return this.s.close.run(documentId, new Date(now).toISOString(), row.id).changes === 1;
  }

  get(id: number): OrderRecord | null {
    const row = this.s.get.get(id) as Row | undefined;
    return row === undefined ? null : toRecord(row);
  }

  byNumber(orderNumber: string): OrderRecord | null {
    const row = this.s.byNumber.get(orderNumber) as Row | undefined;
    return row === undefined ? null : toRecord(row);
  }

  /** Newest first, in pages: `before` is the id of the last order of the previous page. */
  list(filter: {
    patientId?: number;
    labFiness?: string;
    establishment?: string;
    status?: OrderStatus;
    before?: number;
    limit?: number;
  }): OrderRecord[] {
    return (
      this.s.list.all({
        patientId: filter.patientId ?? null,
        lab: filter.labFiness ?? null,
        establishment: filter.establishment ?? null,
        status: filter.status ?? null,
        before: filter.before ?? null,
        limit: Math.min(filter.limit ?? 100, 500),
      }) as Row[]
    ).map(toRecord);
  }
}
