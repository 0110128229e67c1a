// Identity vigilance: which DCC patient an incoming identity designates, and the review queue for
// the pairs no rule may decide alone. Rules are tried from the most to the least certain (in that
// order by `designate` of identity-match.ts, which documents use too):
//   1. ipp-known      an establishment's IPP already designates a patient: that patient, always;
//   2. ins-qualified  a qualified INS (status QUAL, OID in the list given) that a live patient carries;
//   3. strict-traits  equal strict traits: link, or create and review, as configured;
//   4. near-match     traits close enough to be a typo, a swap or an accent: create and review;
//   5. no-match       create.
// A rule never merges two existing patients on its own; only a reviewer (or a PAM merge) does.
// FICT and DOUT identities skip rules 3-4: a fictitious or doubtful identity must not be glued to
// a real patient by resemblance. Every decision is journaled with its rule, inputs and reasons.
import {
  type ActionContext,
  type Decision,
  type Identity,
  type IdentityInput,
  type Page,
  type PatientRecord,
  type PatientStore,
  PatientStoreError,
  parseIdentity,
  parseReliability,
  reliabilityRank,
} from './patients.ts';
import {
  compareIdentities,
  couldBeClose,
  designate,
  type ReviewCandidate as Candidate,
  type TraitCandidate,
} from './identity-match.ts';
import type { CandidateRecord } from './patient-schema.ts';

export interface VigilanceRules {
  /** What equal strict traits without INS or IPP agreement do. */
  strictTraitsMatch: 'link' | 'create-and-review';
  /** Score (0..1) from which a resemblance opens a review item. */
  nearMatchThreshold: number;
  /** Review items opened at most for one incoming identity, best scores first. */
  maxReviewsPerIdentity: number;
}

export const defaultVigilanceRules: VigilanceRules = {
  strictTraitsMatch: 'link',
  nearMatchThreshold: 0.9,
  maxReviewsPerIdentity: 3,
};

export interface IdentityContext extends ActionContext {
  /**
   * The most a source is trusted with, from its configuration: an identity it sends never counts
   * above this status (a feed known to send QUAL without checking stays at, say, VALI).
   */
  sourceReliability?: string | null;
  rules?: Partial<VigilanceRules>;
  /**
   * The INS OIDs this source may file (settings are passed in: the store holds no OID list). An INS
   * under any other OID is dropped with the note `ins-oid-refused`. Built by `acceptedInsOids` of the
   * identity writer, from the pam-fr list and the feed's `acceptTestIns` rule.
   */
  insOids: readonly string[];
}

export interface IdentityDecision extends Decision {
  action: 'linked' | 'created' | 'updated' | 'created-with-review';
  /** Review items opened by this decision; `reviewItemId` is the first. */
  reviewItemIds: number[];
  reviewItemId?: number;
  /** Codes of what was adjusted or refused on the way (`ins-oid-refused`, `traits-kept-more-reliable` …). */
  notes: string[];
}

export interface ReviewItem {
  id: number;
  /** The patient the decision created or updated. */
  patientId: number;
  /** The existing patient it may be the same person as. */
  candidateId: number;
  score: number;
  reasons: string[];
  status: 'open' | 'confirmed' | 'rejected';
  openedAt: string;
  decisionId: number;
  resolutionDecisionId: number | null;
  resolvedBy: string | null;
  resolvedAt: string | null;
}

interface ReviewRow {
  id: number;
  patient_id: number;
  candidate_id: number;
  score: number;
  reasons: string;
  status: ReviewItem['status'];
  decision_id: number;
  resolution_decision_id: number | null;
  opened_at: string;
  resolved_by: string | null;
  resolved_at: string | null;
}

function toReview(r: ReviewRow): ReviewItem {
  return {
    id: r.id,
    patientId: r.patient_id,
    candidateId: r.candidate_id,
    score: r.score,
    reasons: JSON.parse(r.reasons) as string[],
    status: r.status,
    openedAt: r.opened_at,
    decisionId: r.decision_id,
    resolutionDecisionId: r.resolution_decision_id,
    resolvedBy: r.resolved_by,
    resolvedAt: r.resolved_at,
  };
}

const UNTRUSTED = new Set(['FICT', 'DOUT']);

function insKey(ins: Identity['ins']): string | null {
  return ins === null ? null : `${ins.oid}|${ins.matricule}`;
}

export class Vigilance {
  private readonly sql;
  /** Built once: better-sqlite3 builds a wrapper (four functions) at every `db.transaction(fn)`. */
  private readonly atomically;

  constructor(
    readonly patients: PatientStore,
    /** Told of every identity filed, in its transaction: documents waiting for it are filed then. */
    private readonly identityFiled: (patientId: number, ctx: ActionContext) => void = () => {},
  ) {
    this.atomically = patients.db.transaction((input: IdentityInput, ctx: IdentityContext) =>
      this.applyWithin(input, ctx),
    );
    const p = (s: string) => patients.db.prepare(s);
    const select = `SELECT r.*, d.at AS opened_at, rd.author AS resolved_by, rd.at AS resolved_at FROM identity_reviews r
      JOIN identity_decisions d ON d.id = r.decision_id LEFT JOIN identity_decisions rd ON rd.id = r.resolution_decision_id`;
    this.sql = {
      insert: p(
        'INSERT INTO identity_reviews (patient_id, candidate_id, score, reasons, decision_id) VALUES (?, ?, ?, ?, ?)',
      ),
      pairStatus: p(`SELECT status FROM identity_reviews WHERE status IN ('open', 'rejected')
                     AND ((patient_id = @a AND candidate_id = @b) OR (patient_id = @b AND candidate_id = @a)) LIMIT 1`).pluck(),
      get: p(`${select} WHERE r.id = ?`),
      open: p(`${select} WHERE r.status = 'open' AND r.id > ? ORDER BY r.id LIMIT ?`),
      ofPatient: p(`${select} WHERE r.patient_id IN (SELECT value FROM json_each(@ids))
                    OR r.candidate_id IN (SELECT value FROM json_each(@ids)) ORDER BY r.id`),
      resolve: p(
        `UPDATE identity_reviews SET status = ?, resolution_decision_id = ? WHERE id = ? AND status = 'open'`,
      ),
    };
  }

  /**
   * Files one identity: finds or creates its patient, updates what the rules allow, attaches the
   * IPPs, opens review items, journals the decision. Runs inside the caller's transaction if there
   * is one (as a savepoint), else in its own.
   */
  applyIdentity(input: IdentityInput, ctx: IdentityContext): IdentityDecision {
    return this.atomically(input, ctx);
  }

  /**
   * `applyIdentity` without a savepoint of its own, for a caller whose transaction undoes whatever
   * this wrote if it throws (the identity filing always runs in one): a savepoint per identity was
   * a tenth of the bulk load's writer thread.
   */
  applyWithin(input: IdentityInput, ctx: IdentityContext): IdentityDecision {
    const rules = { ...defaultVigilanceRules, ...ctx.rules };
    const notes: string[] = [];
    const identity = this.effectiveIdentity(parseIdentity(input), ctx, notes);
    return this.decide(input, identity, ctx, rules, notes);
  }

  /** Applies the source cap and the INS acceptance: what the store may believe of this identity. */
  private effectiveIdentity(identity: Identity, ctx: IdentityContext, notes: string[]): Identity {
    let { reliability, ins } = identity;
    if (ctx.sourceReliability) {
      const cap = parseReliability(ctx.sourceReliability);
      if (reliabilityRank(reliability) > reliabilityRank(cap)) {
        reliability = cap;
        notes.push('reliability-capped-by-source');
      }
    }
    if (ins !== null && !ctx.insOids.includes(ins.oid)) {
      ins = null;
      notes.push('ins-oid-refused');
    }
    // Only a qualified identity may carry the INS; without an INS we can keep the document check, not the INSi one.
    if (ins === null && (reliability === 'QUAL' || reliability === 'RECUP')) {
      reliability = reliability === 'QUAL' ? 'VALI' : 'PROV';
      notes.push('status-lowered-without-ins');
    }
    return { ...identity, reliability, ins: ins === null ? null : { ...ins, status: reliability } };
  }

  private decide(
    input: IdentityInput,
    identity: Identity,
    ctx: IdentityContext,
    rules: VigilanceRules,
    notes: string[],
  ): IdentityDecision {
    // Patients carrying the INS before this decision. Read again after it, the list could only have
    // gained the decided patient, which the same-ins reviews leave out: one read serves both.
    let withIns: number[] | null = null;
    const designated = designate({
      byIpp: [
        ...new Set(
          input.identifiers.map((ref) => this.patients.resolveIdentifier(ref)).filter((p) => p !== null),
        ),
      ],
      byIns: () =>
        identity.ins !== null && identity.reliability === 'QUAL'
          ? (withIns = this.patients.findByIns(identity.ins.matricule, identity.ins.oid))
          : null,
      byTraits: () =>
        UNTRUSTED.has(identity.reliability)
          ? 'untrusted-identity'
          : this.traitCandidates(identity, input, rules),
      linkOnStrictTraits: rules.strictTraitsMatch === 'link',
      several: 'first',
    });
    const { patientId: target, rule, reviews } = designated;

    const created = target === null;
    const patientId = target ?? this.patients.create(identity, ctx);
    const changes = created ? { changed: [] as string[] } : this.update(patientId, identity, ctx, notes);
    if (identity.ins !== null) {
      for (const other of withIns ?? this.patients.findByIns(identity.ins.matricule, identity.ins.oid)) {
        if (other !== patientId) reviews.push({ patientId: other, score: 1, reasons: ['same-ins'] });
      }
    }
    let attached = 0;
    for (const ref of input.identifiers) {
      const outcome = this.patients.attachIdentifier(patientId, ref, identity, ctx);
      if (outcome === 'attached') attached++;
    }
    this.identityFiled(patientId, ctx);
    const kept = this.dedupeReviews(patientId, reviews, rules, notes);
    const action: IdentityDecision['action'] = created
      ? kept.length > 0
        ? 'created-with-review'
        : 'created'
      : attached > 0 && rule !== 'ipp-known'
        ? 'linked'
        : 'updated';
    const decisionId = this.patients.journal({
      patientId,
      action,
      rule,
      ctx,
      input,
      detail: { notes, ...changes, reviews: kept, sourceReliability: ctx.sourceReliability ?? null },
    });
    const reviewItemIds = kept.map((c) =>
      Number(
        this.sql.insert.run(patientId, c.patientId, c.score, JSON.stringify(c.reasons), decisionId)
          .lastInsertRowid,
      ),
    );
    return {
      decisionId,
      patientId,
      action,
      rule,
      reviewItemIds,
      ...(reviewItemIds[0] !== undefined ? { reviewItemId: reviewItemIds[0] } : {}),
      notes,
    };
  }

  /** The candidates of rules 3-4 from the indexed blocks; equal traits under another IPP of the same establishment held back. */
  private traitCandidates(identity: Identity, input: IdentityInput, rules: VigilanceRules): TraitCandidate[] {
    return this.patients
      .candidates(identity, (c) => couldBeClose(identity, c, rules.nearMatchThreshold))
      .filter((c) => !UNTRUSTED.has(c.reliability) && !differentQualifiedIns(identity, c))
      .map((c) => {
        const match = compareIdentities(identity, c, rules.nearMatchThreshold);
        return match.kind === 'exact' && this.sameEstablishmentOtherIpp(c.id, input)
          ? { patientId: c.id, match, heldBack: 'same-establishment-other-ipp' }
          : { patientId: c.id, match };
      });
  }

  /** The establishment itself keeps this patient under another IPP: it says they are two people, or it has a duplicate to fix. */
  private sameEstablishmentOtherIpp(patientId: number, input: IdentityInput): boolean {
    const theirs = this.patients.identifierRefs(patientId);
    return input.identifiers.some((ref) => theirs.some((t) => t.finess === ref.finess && t.ipp !== ref.ipp));
  }

  /**
   * Strict traits change only from a source at least as reliable as the stored identity (a QUAL
   * identity only from a QUAL source); used names, which are not strict traits, from any source.
   */
  private update(id: number, identity: Identity, ctx: ActionContext, notes: string[]): { changed: string[] } {
    const current = this.patients.get(id)!;
    const next: Identity = {
      ...identity,
      ins: identity.ins ?? current.ins,
      collectionMode: identity.collectionMode ?? current.collectionMode,
    };
    const strict = [
      'birthName',
      'givenNames',
      'firstGivenName',
      'birthDate',
      'sex',
      'birthPlace',
      'reliability',
    ] as const;
    const changed: string[] = strict.filter((k) => next[k] !== current[k]);
    if (insKey(next.ins) !== insKey(current.ins)) changed.push('ins');
    if (changed.length > 0 && reliabilityRank(identity.reliability) < reliabilityRank(current.reliability)) {
      if (changed.some((k) => k !== 'reliability')) notes.push('traits-kept-more-reliable');
      changed.length = 0;
    } else if (changed.length > 0) {
      this.patients.writeTraits(id, next, ctx);
    }
    const usedName = identity.usedName ?? current.usedName;
    const usedGivenName = identity.usedGivenName ?? current.usedGivenName;
    if (usedName !== current.usedName || usedGivenName !== current.usedGivenName) {
      this.patients.writeUsedNames(id, usedName, usedGivenName, ctx);
      changed.push('usedName');
    }
    const deathDate = identity.deathDate ?? current.deathDate ?? null;
    const deceased = identity.deceased ?? current.deceased ?? null;
    if (deathDate !== current.deathDate || deceased !== current.deceased) {
      this.patients.writeDeath(id, deathDate, deceased, ctx);
      changed.push('death');
    }
    return { changed };
  }

  /** Best scores first, at most the configured number, never a pair already open or already judged apart. */
  private dedupeReviews(
    patientId: number,
    reviews: Candidate[],
    rules: VigilanceRules,
    notes: string[],
  ): Candidate[] {
    const seen = new Set<number>([patientId]);
    const kept: Candidate[] = [];
    for (const c of [...reviews].sort((a, b) => b.score - a.score)) {
      if (seen.has(c.patientId)) continue;
      seen.add(c.patientId);
      const status = this.sql.pairStatus.get({ a: patientId, b: c.patientId }) as string | undefined;
      if (status === 'rejected') notes.push('review-previously-rejected');
      if (status !== undefined) continue;
      if (kept.length < rules.maxReviewsPerIdentity) kept.push(c);
    }
    return kept;
  }

  /** Open review items, oldest first, in keyset pages. */
  listOpen(options: { limit?: number; after?: string | null } = {}): Page<ReviewItem> {
    const limit = Math.min(Math.max(options.limit ?? 50, 1), 500);
    const after = options.after ? Number(options.after) : 0;
    if (!Number.isSafeInteger(after)) {
      throw new PatientStoreError(
        'CURSOR_INVALID',
        'the page cursor is not one this list returned',
        'reload the list from its first page',
      );
    }
    const rows = (this.sql.open.all(after, limit + 1) as ReviewRow[]).map(toReview);
    const page = rows.slice(0, limit);
    return { items: page, next: rows.length > limit ? String(page.at(-1)!.id) : null };
  }

  getReview(id: number): ReviewItem | null {
    const row = this.sql.get.get(id) as ReviewRow | undefined;
    return row ? toReview(row) : null;
  }

  /** Review items touching this patient or those merged into it, any status. */
  reviewsOf(patientId: number): ReviewItem[] {
    const ids = JSON.stringify(this.patients.family(this.patients.resolvePatient(patientId) ?? patientId));
    return (this.sql.ofPatient.all({ ids }) as ReviewRow[]).map(toReview);
  }

  /**
   * A reviewer says the pair is one person: merge (default; the more reliable identity survives,
   * the older on a tie, unless `survivorId` says otherwise) or link them.
   */
  confirm(id: number, options: { author: string; as?: 'merge' | 'link'; survivorId?: number }): Decision {
    const item = this.openItem(id, options.author);
    const ctx = { author: options.author };
    return this.patients.db.transaction(() => {
      let decision: Decision;
      if (options.as === 'link') {
        decision = this.patients.link(item.patientId, item.candidateId, ctx, 'review-confirmed');
      } else {
        const [survivor, merged] = this.survivorOf(item, options.survivorId);
        decision = this.patients.merge(survivor, merged, ctx, 'review-confirmed');
      }
      this.sql.resolve.run('confirmed', decision.decisionId, id);
      return decision;
    })();
  }

  /** A reviewer says the pair is two people: both stay, and the pair is not proposed again. */
  reject(id: number, options: { author: string; note?: string }): Decision {
    const item = this.openItem(id, options.author);
    return this.patients.db.transaction(() => {
      const decisionId = this.patients.journal({
        patientId: item.patientId,
        otherPatientId: item.candidateId,
        action: 'review-rejected',
        rule: 'manual',
        ctx: { author: options.author },
        detail: { reviewItemId: id, note: options.note ?? null },
      });
      this.sql.resolve.run('rejected', decisionId, id);
      return { decisionId, patientId: item.patientId, action: 'review-rejected' as const, rule: 'manual' };
    })();
  }

  private openItem(id: number, author: string): ReviewItem {
    if (author.trim() === '') {
      throw new PatientStoreError(
        'AUTHOR_REQUIRED',
        'a review decision needs its author',
        'pass the login of the person deciding',
      );
    }
    const item = this.getReview(id);
    if (item === null)
      throw new PatientStoreError('REVIEW_UNKNOWN', `no review item ${id}`, 'reload the review queue');
    if (item.status !== 'open') {
      throw new PatientStoreError(
        'REVIEW_NOT_OPEN',
        `review item ${id} is already ${item.status}`,
        'reload the review queue',
      );
    }
    return item;
  }

  private survivorOf(item: ReviewItem, survivorId: number | undefined): [number, number] {
    const pair = [item.patientId, item.candidateId];
    if (survivorId !== undefined) {
      if (!pair.includes(survivorId)) {
        throw new PatientStoreError(
          'SURVIVOR_INVALID',
          `patient ${survivorId} is not part of review item ${item.id}`,
          `choose ${item.patientId} or ${item.candidateId}`,
        );
      }
      return [survivorId, pair.find((p) => p !== survivorId)!];
    }
    const [a, b] = pair.map((p) => this.patients.get(this.patients.resolvePatient(p)!)!) as [
      PatientRecord,
      PatientRecord,
    ];
    const aFirst =
      reliabilityRank(a.reliability) > reliabilityRank(b.reliability) ||
      (reliabilityRank(a.reliability) === reliabilityRank(b.reliability) && a.id < b.id);
    return aFirst ? [a.id, b.id] : [b.id, a.id];
  }
}

function differentQualifiedIns(identity: Identity, candidate: CandidateRecord): boolean {
  return (
    identity.ins !== null &&
    candidate.ins !== null &&
    identity.reliability === 'QUAL' &&
    candidate.reliability === 'QUAL' &&
    insKey(identity.ins) !== insKey(candidate.ins)
  );
}
