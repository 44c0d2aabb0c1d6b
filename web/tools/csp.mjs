// Keeps each page's Content-Security-Policy in step with its inline script. The policy allows
// scripts from the hub itself plus the exact inline module of the page (by SHA-256), so even a
// flaw in the Markdown renderer could not run injected script. Run `node tools/csp.mjs` after
// editing a page's script; the unit tests fail while a hash is stale.
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const PAGES = {
  'index.html': "connect-src 'self'",
  // The console may subscribe to and publish on a hub of another origin.
  'console.html': 'connect-src *',
  'demo/ticker.html': "connect-src 'self'",
  'demo/logs.html': "connect-src 'self'",
  'demo/online.html': "connect-src 'self'",
};

/** Pages that also load a stylesheet from the hub (`/demo/demo.css`), or only that (`/chat.css`). */
const SHARED_CSS = new Set(['demo/ticker.html', 'demo/logs.html', 'demo/online.html']);
const ONLY_HUB_CSS = new Set(['index.html']);

/** The policy a page must carry, given its text (and its path, for its style sources). */
export function policyFor(html, connect, page = '') {
  const hashes = [...html.matchAll(/<script type="module">([\s\S]*?)<\/script>/g)].map(
    (m) => `'sha256-${createHash('sha256').update(m[1], 'utf8').digest('base64')}'`,
  );
  return [
    "default-src 'none'",
    `script-src 'self' ${hashes.join(' ')}`,
    ONLY_HUB_CSS.has(page) ? "style-src 'self'" : SHARED_CSS.has(page) ? "style-src 'self' 'unsafe-inline'" : "style-src 'unsafe-inline'",
    connect,
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'none'",
  ].join('; ');
}

export const META = /<meta http-equiv="Content-Security-Policy" content="([^"]*)">/;

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const [page, connect] of Object.entries(PAGES)) {
    const path = fileURLToPath(new URL(`../${page}`, import.meta.url));
    const html = readFileSync(path, 'utf8');
    const tag = `<meta http-equiv="Content-Security-Policy" content="${policyFor(html, connect, page)}">`;
    const next = META.test(html) ? html.replace(META, tag) : html.replace('<meta charset="utf-8">', `<meta charset="utf-8">\n${tag}`);
    writeFileSync(path, next);
  }
}
