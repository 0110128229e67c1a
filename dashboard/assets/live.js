/* global document, EventSource, CSS */
// Live counters: the server pushes every channel's status; cells marked data-ch/data-f follow.
// textContent only: whatever a channel reports stays text.
const source = new EventSource('/events');
source.addEventListener('status', (event) => {
  for (const c of JSON.parse(event.data)) {
    for (const cell of document.querySelectorAll(`[data-ch="${CSS.escape(c.id)}"]`)) {
      const field = cell.dataset.f;
      const value = field in c.counters ? c.counters[field] : c[field];
      cell.textContent = value === null || value === undefined ? '' : String(value);
      if (field === 'state') cell.className = `state-${value}`;
    }
  }
});
