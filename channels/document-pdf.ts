// The PDF of a validated RCP form or PPS for the dashboard and the API: drawn from the CDA that
// documents-out wrote, by the renderer the packaging steps use (deterministic: the same bytes the
// recipients were sent), on demand rather than kept a second time. Here because the dashboard
// reaches formats only through the engine's layer (DESIGN.md: imports point down).
import { renderPdf } from '../transformers/pdf-render.ts';

export function documentPdf(cda: Uint8Array): Buffer {
  return renderPdf(cda);
}
