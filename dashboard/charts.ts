// Inline SVG bar charts: no script, no library, nothing to load. Each chart has its axes, a scale
// in its unit and a label under its bars; a period that has not happened yet (null) has no bar,
// where a zero is a bar of height zero: "nothing happened" and "not yet" must not look alike.
import { html, type Html } from './html.ts';

const MARGIN = { left: 56, right: 8, top: 10, bottom: 30 };

/** 1, 2 or 5 times a power of ten, at least `max`: scale ticks a reader can read. */
export function niceCeiling(max: number): number {
  if (max <= 1) return 1;
  const power = 10 ** Math.floor(Math.log10(max));
  return [1, 2, 5, 10].map((m) => m * power).find((v) => v >= max)!;
}

export function barChart(
  values: Array<number | null>,
  o: {
    title: string;
    /** What the bars count, shown on the vertical axis ("messages", "patients"). */
    unit: string;
    /** One per bar (month names, "-15 min"); some are skipped when they would overlap. */
    labels: string[];
    /** Said instead of an empty chart's silence when every value is zero or not yet known. */
    empty?: string;
    width?: number;
    height?: number;
    id?: string;
  },
): Html {
  const width = o.width ?? 520;
  const height = o.height ?? 160;
  const plotW = width - MARGIN.left - MARGIN.right;
  const plotH = height - MARGIN.top - MARGIN.bottom;
  const top = niceCeiling(Math.max(0, ...values.map((v) => v ?? 0)));
  const step = plotW / Math.max(values.length, 1);
  const x0 = MARGIN.left;
  const y0 = MARGIN.top + plotH;
  // About 6 px a character at the labels' size: show as many as fit side by side.
  const widest = Math.max(1, ...o.labels.map((l) => l.length));
  const fit = Math.max(1, Math.floor(plotW / (widest * 6 + 10)));
  const every = Math.max(1, Math.ceil(values.length / fit));
  const bars = values.map((v, i) => {
    if (v === null) return '';
    const h = Math.round((v / top) * plotH);
    return html`<rect
      class="bar"
      data-label="${o.labels[i] ?? ''}"
      x="${(x0 + i * step + 1).toFixed(1)}"
      y="${y0 - h}"
      width="${Math.max(step - 2, 1).toFixed(1)}"
      height="${h}"
      fill="#3a6ea5"
      ><title>${o.labels[i] ?? ''}: ${v} ${o.unit}</title></rect
    >`;
  });
  const xLabels = o.labels.map((label, i) =>
    (o.labels.length - 1 - i) % every === 0
      ? html`<text
          class="x-label"
          x="${(x0 + (i + 0.5) * step).toFixed(1)}"
          y="${y0 + 13}"
          text-anchor="middle"
          >${label}</text
        >`
      : '',
  );
  const ticks = [0, top / 2, top].map(
    (t) =>
      html`<text
          class="y-label"
          x="${x0 - 4}"
          y="${(y0 - (t / top) * plotH + 3).toFixed(1)}"
          text-anchor="end"
          >${Number.isInteger(t) ? t : t.toFixed(1)}</text
        ><line
          x1="${x0}"
          x2="${x0 + plotW}"
          y1="${(y0 - (t / top) * plotH).toFixed(1)}"
          y2="${(y0 - (t / top) * plotH).toFixed(1)}"
          stroke="#eef1f5"
        />`,
  );
  const nothing = values.every((v) => !v);
  return html`<figure class="card chart">
    <figcaption>${o.title}</figcaption>
    ${nothing && o.empty ? html`<p class="empty">${o.empty}</p>` : ''}
    <svg
      role="img"
      aria-label="${o.title}"
      ${o.id ? html`id="${o.id}"` : ''}
      width="${width}"
      height="${height}"
      viewBox="0 0 ${width} ${height}"
    >
      ${ticks}
      <line class="axis" x1="${x0}" x2="${x0}" y1="${MARGIN.top}" y2="${y0}" stroke="#6b7480" />
      <line class="axis" x1="${x0}" x2="${x0 + plotW}" y1="${y0}" y2="${y0}" stroke="#6b7480" />
      <text
        class="unit"
        x="10"
        y="${MARGIN.top + plotH / 2}"
        transform="rotate(-90 10 ${MARGIN.top + plotH / 2})"
        text-anchor="middle"
      >
        ${o.unit}
      </text>
      ${bars}${xLabels}
    </svg>
  </figure>`;
}
