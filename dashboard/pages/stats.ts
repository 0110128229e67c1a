// Statistics for a chosen year, as in the region's yearly report: figures and monthly charts.
import type { FastifyInstance } from 'fastify';
import type { Engine } from '../../channels/engine.ts';
import { yearlyFigures, type YearlyFigure } from '../../store/stats.ts';
import { staff } from '../auth.ts';
import { barChart } from '../charts.ts';
import { html } from '../html.ts';
import { sendPage } from './layout.ts';

const titles: Record<YearlyFigure, string> = {
  rcpSessions: 'RCP sessions',
  rcpForms: 'RCP forms',
  pps: 'PPS (personalised care plans)',
  patientsPresented: 'Patients presented in RCP',
  activeUsers: 'Active users',
  newUsers: 'New users',
  newPatients: 'New patients',
  patientsTotal: 'Patients in all',
  pathologyReports: 'Pathology reports',
  molecularResults: 'Molecular biology results',
};

const units: Record<YearlyFigure, string> = {
  rcpSessions: 'sessions',
  rcpForms: 'forms',
  pps: 'plans',
  patientsPresented: 'patients',
  activeUsers: 'users',
  newUsers: 'users',
  newPatients: 'patients',
  patientsTotal: 'patients',
  pathologyReports: 'reports',
  molecularResults: 'results',
};

const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

export function registerStatsPage(app: FastifyInstance, engine: Engine): void {
  app.get('/stats', { config: { roles: staff } }, async (req, reply) => {
    const asked = Number((req.query as { year?: string }).year);
    const year =
      Number.isInteger(asked) && asked >= 2000 && asked <= 2100 ? asked : new Date().getUTCFullYear();
    const s = engine.store.stats.yearly(year);
    // A month that has not begun has no figure yet: no bar, rather than a zero that reads as "none".
    const now = new Date();
    const monthsSoFar =
      year < now.getUTCFullYear() ? 12 : year > now.getUTCFullYear() ? 0 : now.getUTCMonth() + 1;
    const upToNow = (monthly: number[]) => monthly.map((v, m) => (m < monthsSoFar ? v : null));
    return sendPage(
      req,
      reply,
      `Statistics ${year}`,
      html`<form method="get" action="/stats" class="card">
          <label>Year <input type="number" name="year" value="${year}" min="2000" max="2100" /></label>
          <button type="submit">Show</button>
        </form>
        <table id="figures">
          <thead>
            <tr>
              <th>Figure</th>
              <th>${year}</th>
            </tr>
          </thead>
          <tbody>
            ${yearlyFigures.map(
              (f) =>
                html`<tr>
                  <th>${titles[f]}</th>
                  <td data-figure="${f}">
                    ${s.figures[f].total}${s.figures[f].available ? '' : html` <span class="muted">(not recorded by this installation yet)</span>`}
                  </td>
                </tr>`,
            )}
          </tbody>
        </table>
        <h2>Reports and results by lab</h2>
        <table id="by-lab">
          <thead>
            <tr>
              <th>Lab (FINESS)</th>
              <th>Pathology reports</th>
              <th>Molecular results</th>
            </tr>
          </thead>
          <tbody>
            ${s.byLab.map(
              (l) =>
                html`<tr>
                  <td>${l.lab}</td>
                  <td>${l.pathologyReports}</td>
                  <td>${l.molecularResults}</td>
                </tr>`,
            )}
          </tbody>
        </table>
        ${yearlyFigures
          .filter((f) => s.figures[f].available)
          .map((f) =>
            barChart(upToNow(s.figures[f].monthly), {
              title: `${titles[f]}${f === 'patientsTotal' ? ' at the end of each month' : ' per month'}, ${year}`,
              unit: units[f],
              labels: months,
              width: 420,
              height: 150,
              id: `chart-${f}`,
            }),
          )}`,
    );
  });
}
