// examples/subscribe.html, the ten-line subscriber, opened from disk in headless Chromium: with a
// hub started as its comment says (--demo --cors-origins '*'), it shows what is published.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { startHub, launchBrowser, hs256 } from './harness.mjs';

const KEY = 'examples-page-test-secret-long-enough-for-hs256';
const page = new URL('../../examples/subscribe.html', import.meta.url);
let hub;
let browser;

before(async () => {
  hub = await startHub(['--demo', '--cors-origins', '*', '--publisher-jwt-key', KEY], { anonymous: false });
  browser = await launchBrowser();
});
after(async () => {
  if (browser) await browser.close();
  if (hub) await hub.stop();
});

it('examples/subscribe.html is ten lines and shows the updates published to /demo/logs', async () => {
  assert.ok(readFileSync(page, 'utf8').trimEnd().split('\n').length <= 10);
  const tab = await browser.context.newPage();
  const errors = [];
  tab.on('pageerror', (e) => errors.push(e.message));
  await tab.goto(`${pathToFileURL(page.pathname)}?hub=${encodeURIComponent(`${hub.url}/.well-known/mercure`)}`);
  const token = hs256(KEY, { mercure: { publish: ['/demo/logs'] } });
  // Subscribed once the hub counts it: then one publish is enough.
  for (let tries = 0; ; tries++) {
    const metrics = await (await fetch(`${hub.url}/metrics`)).text();
    if (/^ssehub_subscribers 1$/m.test(metrics)) break;
    assert.ok(tries < 600, 'the page never subscribed');
    await new Promise((r) => setTimeout(r, 50));
  }
  const r = await fetch(`${hub.url}/.well-known/mercure`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}` },
    body: new URLSearchParams({ topic: '/demo/logs', data: 'hello <b>from the test</b>' }),
  });
  assert.equal(r.status, 200);
  await tab.waitForSelector('#updates li');
  assert.equal(await tab.textContent('#updates li'), 'hello <b>from the test</b>');
  assert.deepEqual(errors, []);
  await tab.close();
});
