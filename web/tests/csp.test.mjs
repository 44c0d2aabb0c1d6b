// Each page's Content-Security-Policy must name the hash of its current inline script, or the
// browser refuses to run it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { PAGES, policyFor, META } from '../tools/csp.mjs';

for (const [page, connect] of Object.entries(PAGES)) {
  test(`${page}: the CSP matches the inline script (run node tools/csp.mjs after edits)`, () => {
    const html = readFileSync(new URL(`../${page}`, import.meta.url), 'utf8');
    const m = META.exec(html);
    assert.ok(m, 'no CSP meta tag');
    assert.equal(m[1], policyFor(html, connect, page));
    assert.match(m[1], /script-src 'self' 'sha256-/);
    assert.doesNotMatch(m[1], /unsafe-inline'[^;]*;?\s*$|script-src[^;]*unsafe/);
  });
}
