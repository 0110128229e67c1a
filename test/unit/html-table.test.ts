// The dashboard's one table helper: headers, one row per item, every cell and attribute escaped
// unless the caller built it as markup.
import assert from 'node:assert/strict';
import { html, table } from '../../dashboard/html.ts';

describe('dashboard table helper', () => {
  const rows = [
    { id: 1, name: '<script>alert(1)</script>', status: 'SENT' },
    { id: 2, name: 'Zoé "O\'Neil"', status: 'ERROR' },
  ];
  const rendered = table(
    [
      { header: 'Name', cell: (r) => r.name },
      { header: 'Link', cell: (r) => html`<a href="/x/${r.id}">${r.name}</a>` },
      { header: 'Status', cell: (r) => r.status, class: (r) => `status-${r.status}` },
    ],
    rows,
    { id: 'things', data: (r) => ({ thing: r.name }) },
  ).value.replace(/\s+/g, ' ');

  it('escapes every cell and data attribute, keeps a cell built as markup', () => {
    assert.ok(!rendered.includes('<script>'), rendered);
    assert.match(rendered, /<td>&lt;script&gt;alert\(1\)&lt;\/script&gt;<\/td>/);
    assert.match(rendered, /<tr data-thing="Zoé &quot;O&#39;Neil&quot;">/);
    assert.match(rendered, /<td><a href="\/x\/2">Zoé &quot;O&#39;Neil&quot;<\/a><\/td>/);
  });

  it('writes the headers once and a row per item, with the cells classes', () => {
    assert.match(
      rendered,
      /^<table id="things"> <thead> <tr> <th>Name<\/th><th>Link<\/th><th>Status<\/th> <\/tr> <\/thead>/,
    );
    assert.equal(rendered.match(/<tr data-thing=/g)?.length, 2);
    assert.match(rendered, /<td class="status-ERROR">ERROR<\/td>/);
  });
});
