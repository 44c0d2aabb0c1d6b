// Model output is untrusted: the renderer must never emit markup that came from the text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderMarkdown, escapeHtml } from '../ssehub.js';

test('HTML in model output is escaped, not rendered', () => {
  const html = renderMarkdown('<img src=x onerror=alert(1)> <script>alert(1)</script>');
  assert.ok(!html.includes('<img'));
  assert.ok(!html.includes('<script'));
  assert.ok(html.includes('&lt;img src=x onerror=alert(1)&gt;'));
});

test('links: http and https only, with quotes unable to break out of the attribute', () => {
  assert.equal(
    renderMarkdown('[a](https://example.com/x?y=1&z=2)'),
    '<p><a href="https://example.com/x?y=1&amp;z=2" rel="noopener noreferrer nofollow" target="_blank">a</a></p>',
  );
  assert.ok(!renderMarkdown('[a](javascript:alert(1))').includes('<a'));
  assert.ok(!renderMarkdown('[a](data:text/html,hi)').includes('<a'));
  const quoted = renderMarkdown('[a](https://e.com/"onmouseover="alert(1))');
  assert.ok(!quoted.includes('"onmouseover'));
});

test('bold, italic, inline code; markup inside code stays literal', () => {
  assert.equal(renderMarkdown('**b** and *i* and `x **y** <z>`'), '<p><strong>b</strong> and <em>i</em> and <code>x **y** &lt;z&gt;</code></p>');
});

test('headings, lists and paragraphs', () => {
  assert.equal(
    renderMarkdown('# Title\n\nSome text\nmore\n\n- one\n- two\n\n1. first\n2. second'),
    '<h1>Title</h1>\n<p>Some text<br>more</p>\n<ul><li>one</li><li>two</li></ul>\n<ol><li>first</li><li>second</li></ol>',
  );
});

test('fenced code, closed or still streaming', () => {
  assert.equal(renderMarkdown('```js\nlet a = "<b>";\n```'), '<pre><code class="language-js">let a = &quot;&lt;b&gt;&quot;;</code></pre>');
  assert.equal(renderMarkdown('```\nopen'), '<pre><code>open</code></pre>');
  assert.equal(renderMarkdown('```"><script>\nx\n```'), '<pre><code class="language-script">x</code></pre>');
});

test('escapeHtml covers the five special characters', () => {
  assert.equal(escapeHtml(`<a href="x" title='y'>&</a>`), '&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;');
});
