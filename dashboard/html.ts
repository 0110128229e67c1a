// HTML by tagged template: every interpolated value is escaped unless it is already Html. Escaping
// is the default so that message content, file names and patient names can never become markup.

export class Html {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

const entities: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
  '`': '&#96;',
};

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"'`]/g, (c) => entities[c]!);
}

function render(value: unknown): string {
  if (value instanceof Html) return value.value;
  if (value === null || value === undefined || value === false) return '';
  if (Array.isArray(value)) return value.map(render).join('');
  return escapeHtml(String(value));
}

export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0]!;
  values.forEach((v, i) => {
    out += render(v) + strings[i + 1]!;
  });
  return new Html(out);
}

/** A query string from the non-empty values, for links that keep the current filters. */
export function query(params: Record<string, string | number | null | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params))
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

export const formatTime = (ms: number | null | undefined): string =>
  ms === null || ms === undefined ? '' : new Date(ms).toISOString().replace('T', ' ').slice(0, 19);

/** A column of `table`: its header and, for a row, its cell; `class` names the cell's class (a status, an error). */
export interface Column<R> {
  header: string;
  cell: (row: R) => unknown;
  class?: (row: R) => string;
}

/**
 * A table of `rows` under the headers of `columns`. A cell is rendered as any interpolated value
 * (escaped; an Html value is markup its caller built); `data` gives a row its `data-*` attributes,
 * by which tests and scripts find it.
 */
export function table<R>(
  columns: ReadonlyArray<Column<R>>,
  rows: readonly R[],
  options: { id: string; data?: (row: R) => Record<string, string | number> },
): Html {
  const attributes = (row: R) =>
    Object.entries(options.data?.(row) ?? {}).map(([name, value]) => html` data-${name}="${value}"`);
  const td = (c: Column<R>, row: R) =>
    c.class ? html`<td class="${c.class(row)}">${c.cell(row)}</td>` : html`<td>${c.cell(row)}</td>`;
  return html`<table id="${options.id}">
    <thead>
      <tr>
        ${columns.map((c) => html`<th>${c.header}</th>`)}
      </tr>
    </thead>
    <tbody>
      ${rows.map((row) => html`<tr${attributes(row)}>${columns.map((c) => td(c, row))}</tr>`)}
    </tbody>
  </table>`;
}
