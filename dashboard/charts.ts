// Inline SVG bar charts: no script, no library, nothing to load.
import { html, type Html } from './html.ts';

export function barChart(
  values: number[],
  o: { title: string; labels?: string[]; width?: number; height?: number; id?: string },
): Html {
  const width = o.width ?? 480;
  const height = o.height ?? 120;
  const max = Math.max(1, ...values);
  const w = width / Math.max(values.length, 1);
  const bars = values.map((v, i) => {
    const h = Math.round((v / max) * (height - 16));
    return html`<rect
      x="${(i * w).toFixed(1)}"
      y="${height - h}"
      width="${Math.max(w - 1, 1).toFixed(1)}"
      height="${h}"
      fill="#3a6ea5"
      ><title>${o.labels?.[i] ?? i}: ${v}</title></rect
    >`;
  });
  return html`<figure class="card">
    <figcaption>${o.title} (max ${max})</figcaption>
    <svg
      role="img"
      aria-label="${o.title}"
      ${o.id ? html`id="${o.id}"` : ''}
      width="${width}"
      height="${height}"
      viewBox="0 0 ${width} ${height}"
    >
      ${bars}
    </svg>
  </figure>`;
}
