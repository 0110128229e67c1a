// Figures for the region's yearly report and the overview's throughput charts. A figure whose
// source table does not exist yet (RCP, PPS before their modules ship) is zero and flagged as not
// available: the report must never show an invented number.
import type { Db } from './db.ts';

export const yearlyFigures = [
  'rcpSessions',
  'rcpForms',
  'pps',
  'patientsPresented',
  'activeUsers',
  'newUsers',
  'newPatients',
  'patientsTotal',
  'pathologyReports',
  'molecularResults',
] as const;
export type YearlyFigure = (typeof yearlyFigures)[number];

export interface FigureValue {
  total: number;
  /** Twelve values, January first (for patientsTotal: the count at the end of each month). */
  monthly: number[];
  /** False when the data this figure comes from does not exist in this installation yet. */
  available: boolean;
}

/** Reports and results first filed in the year, per lab (its FINESS, else the sender's). */
export interface LabCount {
  lab: string;
  pathologyReports: number;
  molecularResults: number;
}

export interface YearlyStats {
  year: number;
  figures: Record<YearlyFigure, FigureValue>;
  byLab: LabCount[];
}

export interface ThroughputSeries {
  since: number;
  bucketMs: number;
  /** Per channel, one count per bucket, oldest first. */
  channels: Record<string, number[]>;
}

const monthStartsUtc = (year: number): number[] => Array.from({ length: 13 }, (_, m) => Date.UTC(year, m, 1));

const unavailable = (): FigureValue => ({
  total: 0,
  monthly: Array(12).fill(0) as number[],
  available: false,
});

export class Stats {
  constructor(private readonly db: Db) {}

  private hasTable(name: string): boolean {
    return (
      this.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").pluck().get(name) !==
      undefined
    );
  }

  yearly(year: number): YearlyStats {
    const bounds = monthStartsUtc(year);
    const figures = Object.fromEntries(yearlyFigures.map((f) => [f, unavailable()])) as Record<
      YearlyFigure,
      FigureValue
    >;
    figures.newUsers = this.perMonth(
      bounds,
      'SELECT count(*) FROM accounts WHERE created_at >= ? AND created_at < ?',
    );
    // Active: logged in at least once in the period (the audit trail records every login).
    if (this.hasTable('audit')) {
      figures.activeUsers = this.perMonth(
        bounds,
        "SELECT count(DISTINCT actor) FROM audit WHERE action = 'login' AND at >= ? AND at < ?",
      );
    }
    if (this.hasTable('patients')) {
      // Patients created then merged into another were duplicates, not new patients. One pass over
      // the table (no index on created_at, which every identity filed would pay for): those of each
      // month of the year by the month of their ISO date, those of earlier years as month -1.
      const iso = bounds.map((t) => new Date(t).toISOString());
      const rows = this.db
        .prepare<[string, string], { month: number; n: number }>(
          `SELECT CASE WHEN created_at < ? THEN -1 ELSE CAST(substr(created_at, 6, 2) AS INTEGER) - 1 END
                    AS month, count(*) AS n
             FROM patients WHERE merged_into IS NULL AND created_at < ? GROUP BY month`,
        )
        .all(iso[0]!, iso[12]!);
      const monthly = Array<number>(12).fill(0);
      let before = 0;
      for (const r of rows) {
        if (r.month < 0) before = r.n;
        else monthly[r.month] = r.n;
      }
      const upTo = monthly.map((n) => (before += n));
      figures.newPatients = { total: monthly.reduce((a, b) => a + b, 0), monthly, available: true };
      figures.patientsTotal = { total: upTo[11]!, monthly: upTo, available: true };
    }
    if (this.hasTable('rcp_sessions')) Object.assign(figures, this.rcpFigures(year));
    let byLab: LabCount[] = [];
    if (this.hasTable('documents')) {
      const iso = bounds.map((t) => new Date(t).toISOString());
      // A document counts once, in the year its first version was filed, whatever corrections followed.
      for (const [figure, kind] of [
        ['pathologyReports', 'pathology'],
        ['molecularResults', 'molecular'],
      ] as const) {
        const count = this.db
          .prepare<[string, string, string], number>(
            'SELECT count(*) FROM documents WHERE kind = ? AND created_at >= ? AND created_at < ?',
          )
          .pluck();
        const monthly = iso.slice(0, 12).map((from, m) => count.get(kind, from, iso[m + 1]!) ?? 0);
        figures[figure] = { total: monthly.reduce((a, b) => a + b, 0), monthly, available: true };
      }
      byLab = this.db
        .prepare<[string, string], LabCount>(
          `SELECT COALESCE(lab_finess, owner, 'unknown') AS lab,
             SUM(kind = 'pathology') AS pathologyReports, SUM(kind = 'molecular') AS molecularResults
           FROM documents WHERE created_at >= ? AND created_at < ? GROUP BY lab ORDER BY lab`,
        )
        .all(iso[0]!, iso[12]!);
    }
    return { year, figures, byLab };
  }

  /**
   * RCP and PPS as the region's report counts them: sessions by their date, forms (each set once,
   * whatever its corrections) and the distinct patients presented by their session's date,
   * programmes by the date they were validated (created, for drafts).
   */
  private rcpFigures(
    year: number,
  ): Pick<Record<YearlyFigure, FigureValue>, 'rcpSessions' | 'rcpForms' | 'pps' | 'patientsPresented'> {
    const days = Array.from({ length: 13 }, (_, m) =>
      new Date(Date.UTC(year, m, 1)).toISOString().slice(0, 10),
    );
    const figure = (sql: string, additive: boolean): FigureValue => {
      const count = this.db.prepare<[string, string], number>(sql).pluck();
      const monthly = days.slice(0, 12).map((from, m) => count.get(from, days[m + 1]!) ?? 0);
      const total = additive ? monthly.reduce((a, b) => a + b, 0) : (count.get(days[0]!, days[12]!) ?? 0);
      return { total, monthly, available: true };
    };
    const formsOfSessions = `FROM rcp_forms f JOIN rcp_sessions s ON s.id = f.session_id
      WHERE f.version = 1 AND s.date >= ? AND s.date < ?`;
    return {
      rcpSessions: figure('SELECT count(*) FROM rcp_sessions WHERE date >= ? AND date < ?', true),
      rcpForms: figure(`SELECT count(*) ${formsOfSessions}`, true),
      // A patient presented in two months counts in each month, once in the year.
      patientsPresented: figure(`SELECT count(DISTINCT f.patient_id) ${formsOfSessions}`, false),
      pps: figure(
        'SELECT count(*) FROM pps WHERE version = 1 AND coalesce(validated_at, created_at) >= ? AND coalesce(validated_at, created_at) < ?',
        true,
      ),
    };
  }

  private perMonth(bounds: number[], sql: string): FigureValue {
    const count = this.db.prepare<[number, number], number>(sql).pluck();
    const monthly = bounds.slice(0, 12).map((from, m) => count.get(from, bounds[m + 1]!) ?? 0);
    // Distinct counts do not add up across months: the year is its own query.
    return { total: count.get(bounds[0]!, bounds[12]!) ?? 0, monthly, available: true };
  }

  /** Messages received per channel per bucket since `since` (the overview's charts). */
  throughput(since: number, bucketMs: number, now = Date.now()): ThroughputSeries {
    const buckets = Math.max(1, Math.ceil((now - since) / bucketMs));
    const rows = this.db
      .prepare<[number, number, number], { channel: string; b: number; n: number }>(
        `SELECT channel, (received_at - ?) / ? AS b, count(*) AS n FROM messages
         WHERE received_at >= ? GROUP BY channel, b`,
      )
      .all(since, bucketMs, since);
    const channels: Record<string, number[]> = {};
    for (const r of rows) {
      const series = (channels[r.channel] ??= Array(buckets).fill(0) as number[]);
      const i = Math.min(buckets - 1, Math.floor(r.b));
      series[i] = (series[i] ?? 0) + r.n;
    }
    return { since, bucketMs, channels };
  }
}
