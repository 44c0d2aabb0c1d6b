// The console in headless Chromium against the real hub: subscribe (fetch with an
// Authorization header, or the native EventSource with ?authorization=), publish with a bearer
// token, and watch the events and their ids arrive.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startHub, launchBrowser, resultsDir, hs256 } from './harness.mjs';

const KEY = 'console-test-secret-that-is-long-enough-for-hs256';
let hub;
let browser;

const token = (claims) => hs256(KEY, claims);
const publisher = token({ mercure: { publish: ['*'] } });
const subscriber = token({ mercure: { subscribe: ['*'] } });

before(async () => {
  hub = await startHub(['--publisher-jwt-key', KEY, '--subscriber-jwt-key', KEY]);
  browser = await launchBrowser();
});
after(async () => {
  if (browser) await browser.close();
  if (hub) await hub.stop();
});

async function openConsole() {
  const page = await browser.context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${hub.url}/console`);
  return { page, errors };
}

async function publish(page, { topic, data, type = '', priv = false, tok = publisher }) {
  await page.fill('#pub-topics', topic);
  await page.fill('#pub-data', data);
  await page.fill('#pub-type', type);
  await page.setChecked('#pub-private', priv);
  await page.fill('#pub-token', tok);
  await page.evaluate(() => (document.getElementById('pub-result').textContent = ''));
  await page.click('#pub-send');
  await page.waitForFunction(() => document.getElementById('pub-result').textContent !== '');
  return page.textContent('#pub-result');
}

it('subscribes with fetch, publishes with a bearer token, shows the event with its id and type', async () => {
  const { page, errors } = await openConsole();
  await page.fill('#sub-topics', 'https://example.com/books/{id}');
  await page.click('#sub-start');
  await page.waitForFunction(() => document.getElementById('state').dataset.state === 'open');
  const result = await publish(page, { topic: 'https://example.com/books/1', data: 'hello <b>console</b>', type: 'greeting' });
  const id = /^Published: (.+)$/.exec(result)[1];
  await page.waitForSelector(`#events li[data-id="${id}"]`);
  const li = page.locator(`#events li[data-id="${id}"]`);
  assert.equal(await li.getAttribute('data-type'), 'greeting');
  assert.equal(await li.locator('pre').textContent(), 'hello <b>console</b>');
  mkdirSync(resultsDir, { recursive: true });
  await page.screenshot({ path: join(resultsDir, 'console-keys.png'), fullPage: true });
  // A hub given its key has no first-run token to offer.
  assert.ok(await page.isHidden('#use-dev-token'));
  // A new subscription asking for history from `earliest` gets the same event replayed.
  await page.click('#sub-stop');
  await page.click('#clear');
  await page.fill('#sub-last-id', 'earliest');
  await page.click('#sub-start');
  await page.waitForSelector(`#events li[data-id="${id}"]`);
  assert.equal(await page.locator('#events li').count(), 1);
  // Data is shown as text, never as markup.
  assert.equal(await li.locator('b').count(), 3); // the three labels: time, type, id
  assert.deepEqual(errors, []);
  await page.close();
});

it('the native EventSource with ?authorization= receives a private update', async () => {
  const { page, errors } = await openConsole();
  await page.fill('#sub-topics', '*');
  await page.fill('#sub-token', subscriber);
  await page.check('input[name="transport"][value="eventsource"]');
  await page.click('#sub-start');
  await page.waitForFunction(() => document.getElementById('state').dataset.state === 'open');
  const result = await publish(page, { topic: 'https://example.com/secret', data: 'for subscribers only', priv: true });
  const id = /^Published: (.+)$/.exec(result)[1];
  await page.waitForSelector(`#events li[data-id="${id}"]`);
  assert.equal(await page.locator(`#events li[data-id="${id}"] pre`).textContent(), 'for subscribers only');
  assert.deepEqual(errors, []);
  await page.close();
});

it('a refused publish says why', async () => {
  const { page } = await openConsole();
  const result = await publish(page, { topic: 'https://example.com/x', data: 'x', tok: 'not-a-token' });
  assert.match(result, /^HTTP 401/);
  assert.ok(await page.locator('#pub-result.error').count());
  await page.close();
});
