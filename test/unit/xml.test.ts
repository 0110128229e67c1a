// The one XML reader against hostile documents: each is refused with its own code, nothing is
// expanded, fetched or polluted.
import assert from 'node:assert/strict';
import { parseXml, elements, element, attr, text, descendants, XmlError } from '../../transformers/xml.ts';

function refused(input: string | Buffer, code: string, limits = {}): XmlError {
  let caught: unknown;
  try {
    parseXml(input, limits);
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof XmlError, `expected an XmlError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.ok(caught.hint.length > 0);
  return caught;
}

describe('XML reader (transformers/xml.ts)', () => {
  it('reads elements by path of local names, attributes by name, text with entities decoded', () => {
    const doc = parseXml(
      '<?xml version="1.0"?><c:Doc xmlns:c="urn:x" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">' +
        '<c:item n="1">a &lt;b&gt; &amp; &#x41;&#66;</c:item><c:item n="2" xsi:type="ST"><![CDATA[c.2573T>G]]></c:item></c:Doc>',
    );
    assert.equal(doc.name, 'c:Doc');
    assert.equal(doc.local, 'Doc');
    const items = elements(doc, 'item');
    assert.deepEqual(
      items.map((i) => attr(i, 'n')),
      ['1', '2'],
    );
    assert.equal(text(items[0]), 'a <b> & AB');
    assert.equal(text(items[1]), 'c.2573T>G');
    assert.equal(attr(items[1], 'xsi:type'), 'ST', 'the qualified name stays readable');
    assert.equal(attr(items[1], 'type'), 'ST', 'and the local name finds it');
    assert.equal(descendants(doc, 'item').length, 2);
    assert.equal(element(doc, 'missing'), undefined);
  });

  it('refuses a billion-laughs document (internal entities) before expanding anything', () => {
    const laughs =
      '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">' +
      Array.from({ length: 9 }, (_, i) => `<!ENTITY lol${i + 1} "${`&lol${i || ''};`.repeat(10)}">`).join(
        '',
      ) +
      ']><lolz>&lol9;</lolz>';
    const error = refused(laughs, 'XML_DTD_REFUSED');
    assert.match(error.message, /DOCTYPE/);
  });

  it('refuses an external entity (XXE) without reading the file it names', () => {
    refused(
      '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><r>&xxe;</r>',
      'XML_DTD_REFUSED',
    );
    refused('<r><!ENTITY x "y"></r>', 'XML_DTD_REFUSED');
  });

  it('does not mistake a DOCTYPE inside a comment or CDATA for a DTD', () => {
    const doc = parseXml('<!-- <!DOCTYPE no> --><r><![CDATA[<!DOCTYPE html>]]></r>');
    assert.equal(text(doc), '<!DOCTYPE html>');
  });

  it('refuses a 100 MB document by its size, before parsing it', () => {
    // Well-formed start, broken end: had the parser run, the error would be XML_MALFORMED.
    const big = Buffer.alloc(100 * 1024 * 1024, 0x61);
    big.write('<r>', 0);
    const error = refused(big, 'XML_TOO_LARGE');
    assert.match(error.message, /104857600 bytes/);
  });

  it('takes its limits as options', () => {
    refused('<r>0123456789</r>', 'XML_TOO_LARGE', { maxBytes: 10 });
    refused('<a><b><c/></b></a>', 'XML_TOO_DEEP', { maxDepth: 2 });
    assert.equal(parseXml('<a><b><c/></b></a>', { maxDepth: 3 }).local, 'a');
  });

  it('refuses deep nesting', () => {
    refused('<a>'.repeat(100_000) + '</a>'.repeat(100_000), 'XML_TOO_DEEP');
  });

  it('keeps __proto__ and constructor names as plain names: Object.prototype is untouched', () => {
    const doc = parseXml(
      '<__proto__ polluted="yes" __proto__="x"><constructor prototype="y"><prototype>z</prototype></constructor>' +
        '<__proto__><polluted>yes</polluted></__proto__></__proto__>',
    );
    const probe: Record<string, unknown> = {};
    assert.equal(probe.polluted, undefined);
    assert.equal(Object.prototype.hasOwnProperty.call(Object.prototype, 'polluted'), false);
    assert.equal(doc.name, '__proto__');
    assert.equal(attr(doc, 'polluted'), 'yes');
    assert.equal(attr(doc, '__proto__'), 'x');
    assert.equal(text(element(doc, 'constructor/prototype')), 'z');
    assert.equal(attr(element(doc, 'constructor'), 'prototype'), 'y');
    assert.equal(text(element(doc, '__proto__/polluted')), 'yes');
  });

  it('refuses what is not one well-formed document, saying where', () => {
    assert.match(refused('<a><b></a>', 'XML_MALFORMED').message, /line 1/);
    refused('<a/><b/>', 'XML_MALFORMED');
    refused('%PDF-1.4 not xml', 'XML_MALFORMED');
    refused('   ', 'XML_EMPTY');
  });

  it('reads ISO 8859-1 when declared and refuses UTF-16', () => {
    const latin = Buffer.concat([
      Buffer.from('<?xml version="1.0" encoding="ISO-8859-1"?><r>'),
      Buffer.from([0xe9]),
      Buffer.from('</r>'),
    ]);
    assert.equal(text(parseXml(latin)), 'é');
    refused(Buffer.from('\ufeff<r/>', 'utf16le'), 'XML_UNSUPPORTED_ENCODING');
  });
});
