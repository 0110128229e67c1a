// The merge and link graph of patients: merges (undoable), PAM identifier merges and changes,
// detaching a wrongly linked IPP, and links between patients kept apart.
import type { Db } from './db.ts';
import {
  PatientStoreError,
  reliabilityRank,
  type ActionContext,
  type Decision,
  type IdentifierRef,
  type Identity,
} from './patient-model.ts';
import { PatientRecords, type PatientStoreOptions } from './patient-records.ts';

export class PatientGraph extends PatientRecords {
  private readonly graph;

  constructor(db: Db, options: PatientStoreOptions = {}) {
    super(db, options);
    const p = (s: string) => db.prepare(s);
    this.graph = {
      setMergedInto: p('UPDATE patients SET merged_into = ?, updated_at = ? WHERE id = ?'),
      moveIdentifier: p('UPDATE patient_identifiers SET patient_id = ?, updated_at = ? WHERE id = ?'),
      setIdentifierStatus: p(
        'UPDATE patient_identifiers SET status = ?, merged_into_ipp = ?, updated_at = ? WHERE id = ?',
      ),
      renameIdentifier: p('UPDATE patient_identifiers SET ipp = ?, updated_at = ? WHERE id = ?'),
      insertMerge:
        p(`INSERT INTO patient_merges (survivor_id, merged_id, survivor_before, identifier_id, decision_id)
                      VALUES (?, ?, ?, ?, ?)`),
      merge: p('SELECT * FROM patient_merges WHERE id = ?'),
      lastMergeOf: p(
        'SELECT id FROM patient_merges WHERE merged_id = ? AND undo_decision_id IS NULL ORDER BY id DESC LIMIT 1',
      ).pluck(),
      undoMerge: p('UPDATE patient_merges SET undo_decision_id = ? WHERE id = ?'),
      insertLink: p('INSERT INTO patient_links (patient_a, patient_b, decision_id) VALUES (?, ?, ?)'),
      activeLink: p(
        'SELECT id FROM patient_links WHERE patient_a = ? AND patient_b = ? AND unlink_decision_id IS NULL',
      ).pluck(),
      unlink: p('UPDATE patient_links SET unlink_decision_id = ? WHERE id = ?'),
    };
  }

  /**
   * Merges `mergedId` into `survivorId` (both resolved first). When the merged patient's identity is
   * more reliable, the survivor takes its traits and INS; the survivor's old traits are kept so that
   * `unmerge` restores them. Already the same patient: journaled as `unchanged`.
   */
  merge(survivorId: number, mergedId: number, ctx: ActionContext, rule = 'manual'): Decision {
    return this.atomic(() => this.absorb(survivorId, mergedId, ctx, rule, null));
  }

  /** `identifierId`: the IPP a PAM merge marked `merged`, reactivated by `unmerge`. */
  private absorb(
    survivorId: number,
    mergedId: number,
    ctx: ActionContext,
    rule: string,
    identifierId: number | null,
  ): Decision {
    const survivor = this.get(this.mustResolve(survivorId))!;
    const merged = this.get(this.mustResolve(mergedId))!;
    if (survivor.id === merged.id) {
      const decisionId = this.journal({
        patientId: survivor.id,
        action: 'unchanged',
        rule,
        ctx,
        detail: { mergedId },
      });
      return { decisionId, patientId: survivor.id, action: 'unchanged', rule };
    }
    const adopt = reliabilityRank(merged.reliability) > reliabilityRank(survivor.reliability);
    const decisionId = this.journal({
      patientId: survivor.id,
      otherPatientId: merged.id,
      action: 'merged',
      rule,
      ctx,
      detail: { adoptedTraitsOf: adopt ? merged.id : null },
    });
    this.graph.setMergedInto.run(survivor.id, this.at(), merged.id);
    if (adopt) this.writeTraits(survivor.id, { ...merged, usedName: survivor.usedName }, ctx);
    this.graph.insertMerge.run(
      survivor.id,
      merged.id,
      adopt ? JSON.stringify(survivor) : null,
      identifierId,
      decisionId,
    );
    return { decisionId, patientId: survivor.id, action: 'merged', rule };
  }

  /**
   * Undoes a merge: the merged patient lives again with its own identifiers (and documents), the
   * survivor gets back the traits it had if the merge replaced them. Undoes the last merge that
   * absorbed `mergedId`.
   */
  unmerge(mergedId: number, ctx: ActionContext): Decision {
    return this.atomic(() => {
      const mergeId = this.graph.lastMergeOf.get(mergedId) as number | undefined;
      if (mergeId === undefined) {
        throw new PatientStoreError(
          'MERGE_UNKNOWN',
          `patient ${mergedId} is not merged into another`,
          'open the surviving patient and undo the merge from the patient that was absorbed',
        );
      }
      const m = this.graph.merge.get(mergeId) as {
        survivor_id: number;
        merged_id: number;
        survivor_before: string | null;
        identifier_id: number | null;
      };
      const decisionId = this.journal({
        patientId: m.merged_id,
        otherPatientId: m.survivor_id,
        action: 'unmerged',
        rule: 'manual',
        ctx,
        detail: { mergeId },
      });
      this.graph.setMergedInto.run(null, this.at(), m.merged_id);
      if (m.survivor_before !== null)
        this.writeTraits(m.survivor_id, JSON.parse(m.survivor_before) as Identity, ctx);
      if (m.identifier_id !== null)
        this.graph.setIdentifierStatus.run('active', null, this.at(), m.identifier_id);
      this.graph.undoMerge.run(decisionId, mergeId);
      return { decisionId, patientId: m.merged_id, action: 'unmerged', rule: 'manual' };
    });
  }

  /**
   * A PAM merge (A40): the establishment says its IPP `merged` is the same person as `survivor`.
   * The merged IPP is kept (status `merged`, still resolving) so late messages naming it land right;
   * when the two IPPs designate two DCC patients, those patients merge.
   */
  mergeIdentifiers(survivor: IdentifierRef, merged: IdentifierRef, ctx: ActionContext): Decision {
    return this.atomic(() => {
      const s = this.findIdentifier(survivor.finess, survivor.ipp);
      const m = this.findIdentifier(merged.finess, merged.ipp);
      if (s === null && m === null) {
        throw new PatientStoreError(
          'IDENTIFIER_UNKNOWN',
          `neither ${survivor.ipp}@${survivor.finess} nor ${merged.ipp}@${merged.finess} is known`,
          'send the surviving identity (A28 or A31) before the merge, or replay the merge after it',
        );
      }
      if (m === null) {
        // The establishment never sent the absorbed IPP (its A28 lost, or never sent): it becomes an
        // alias of the survivor, as a known one would, so that a report naming it, waiting or late,
        // is filed on the survivor (the caller files the waiting ones in this transaction).
        const patientId = this.resolvePatient(s!.patientId)!;
        const alias = this.sql.insertIdentifier.run({
          finess: merged.finess,
          ipp: merged.ipp,
          namespace: merged.namespace ?? null,
          patient_id: patientId,
          identity: JSON.stringify(s!.identity),
          at: this.at(),
          message_id: ctx.messageId ?? null,
        }).lastInsertRowid;
        this.graph.setIdentifierStatus.run('merged', survivor.ipp, this.at(), alias);
        const decisionId = this.journal({
          patientId,
          action: 'identifier-merged',
          rule: 'pam-merge',
          ctx,
          detail: { survivor, merged, note: 'merged identifier unknown: kept as an alias of the survivor' },
        });
        return { decisionId, patientId, action: 'identifier-merged', rule: 'pam-merge' };
      }
      if (s === null) {
        this.sql.insertIdentifier.run({
          finess: survivor.finess,
          ipp: survivor.ipp,
          namespace: survivor.namespace ?? null,
          patient_id: m.patientId,
          identity: JSON.stringify(m.identity),
          at: this.at(),
          message_id: ctx.messageId ?? null,
        });
      }
      this.graph.setIdentifierStatus.run('merged', survivor.ipp, this.at(), m.id);
      const survivorPatient = this.resolvePatient(s?.patientId ?? m.patientId)!;
      const mergedPatient = this.resolvePatient(m.patientId)!;
      if (survivorPatient !== mergedPatient)
        return this.absorb(survivorPatient, mergedPatient, ctx, 'pam-merge', m.id);
      const decisionId = this.journal({
        patientId: survivorPatient,
        action: 'identifier-merged',
        rule: 'pam-merge',
        ctx,
        detail: { survivor, merged },
      });
      return { decisionId, patientId: survivorPatient, action: 'identifier-merged', rule: 'pam-merge' };
    });
  }

  /** A PAM identifier change (A47) within one establishment. */
  changeIdentifier(finess: string, oldIpp: string, newIpp: string, ctx: ActionContext): Decision {
    return this.atomic(() => {
      const old = this.findIdentifier(finess, oldIpp);
      if (old === null) {
        throw new PatientStoreError(
          'IDENTIFIER_UNKNOWN',
          `IPP ${oldIpp}@${finess} is not known`,
          'send the identity (A28) before changing its identifier',
        );
      }
      if (this.findIdentifier(finess, newIpp) !== null) {
        throw new PatientStoreError(
          'IDENTIFIER_TAKEN',
          `IPP ${newIpp}@${finess} already designates a patient`,
          'two IPPs of one person are merged with an A40, not renamed with an A47',
        );
      }
      this.graph.renameIdentifier.run(newIpp, this.at(), old.id);
      const patientId = this.resolvePatient(old.patientId)!;
      const decisionId = this.journal({
        patientId,
        action: 'identifier-changed',
        rule: 'pam-change-identifier',
        ctx,
        detail: { finess, oldIpp, newIpp },
      });
      return { decisionId, patientId, action: 'identifier-changed', rule: 'pam-change-identifier' };
    });
  }

  /**
   * Undoes a wrong link of an establishment's IPP: the IPP moves to a new patient built from the
   * identity that establishment last sent.
   */
  detachIdentifier(ref: IdentifierRef, ctx: ActionContext): Decision {
    return this.atomic(() => {
      const found = this.findIdentifier(ref.finess, ref.ipp);
      if (found === null) {
        throw new PatientStoreError(
          'IDENTIFIER_UNKNOWN',
          `IPP ${ref.ipp}@${ref.finess} is not known`,
          'check the IPP and FINESS',
        );
      }
      const from = this.resolvePatient(found.patientId)!;
      const patientId = this.create(found.identity, ctx);
      this.graph.moveIdentifier.run(patientId, this.at(), found.id);
      const decisionId = this.journal({
        patientId,
        otherPatientId: from,
        action: 'identifier-detached',
        rule: 'manual',
        ctx,
        detail: { finess: ref.finess, ipp: ref.ipp },
      });
      return { decisionId, patientId, action: 'identifier-detached', rule: 'manual' };
    });
  }

  /** Records that two patients are the same person while keeping them apart (PAM A24, or a reviewer's choice). */
  link(aId: number, bId: number, ctx: ActionContext, rule = 'manual'): Decision {
    return this.atomic(() => {
      const [a, b] = [this.mustResolve(aId), this.mustResolve(bId)].sort((x, y) => x - y) as [number, number];
      if (a === b) {
        throw new PatientStoreError(
          'LINK_SELF',
          `patients ${aId} and ${bId} are already one patient`,
          'nothing to link',
        );
      }
      const decisionId = this.journal({
        patientId: a,
        otherPatientId: b,
        action: 'patients-linked',
        rule,
        ctx,
      });
      if (this.graph.activeLink.get(a, b) === undefined) this.graph.insertLink.run(a, b, decisionId);
      return { decisionId, patientId: a, action: 'patients-linked', rule };
    });
  }

  unlink(aId: number, bId: number, ctx: ActionContext, rule = 'manual'): Decision {
    return this.atomic(() => {
      const [a, b] = [this.mustResolve(aId), this.mustResolve(bId)].sort((x, y) => x - y) as [number, number];
      const linkId = this.graph.activeLink.get(a, b) as number | undefined;
      if (linkId === undefined) {
        throw new PatientStoreError(
          'LINK_UNKNOWN',
          `patients ${aId} and ${bId} are not linked`,
          'check the two patient ids',
        );
      }
      const decisionId = this.journal({
        patientId: a,
        otherPatientId: b,
        action: 'patients-unlinked',
        rule,
        ctx,
      });
      this.graph.unlink.run(decisionId, linkId);
      return { decisionId, patientId: a, action: 'patients-unlinked', rule };
    });
  }
}
