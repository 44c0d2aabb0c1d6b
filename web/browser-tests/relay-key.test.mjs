// The chat page against a hub started with --relay-api-keys: without a key it says what is
// missing; with one (sent as Authorization: Bearer, which EventSource could not do) it streams.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHub, launchBrowser } from './harness.mjs';

let hub;
let browser;
before(async () => {
  hub = await startHub(['--relay-api-keys', 'sk-web-test', '--simulator-tokens-per-second', '200']);
  browser = await launchBrowser();
});
after(async () => {
  if (browser) await browser.close();
  if (hub) await hub.stop();
});

it('asks for the API key on 401, then streams with it in the Authorization header', async () => {
  const page = await browser.context.newPage();
  const auth = [];
  page.on('request', (r) => {
    if (r.url().includes('/v1/chat/completions')) auth.push(r.headers().authorization || null);
  });
  await page.goto(`${hub.url}/`);
  await page.fill('#prompt', 'hello');
  await page.click('#send');
  await page.waitForFunction(() => document.getElementById('state').dataset.state === 'error');
  assert.match(await page.textContent('.turn.assistant .note'), /needs an API key/);
  await page.click('summary');
  await page.fill('#api-key', 'sk-web-test');
  await page.fill('#prompt', 'hello again');
  await page.click('#send');
  await page.waitForFunction(() => document.getElementById('state').dataset.state === 'done', null, { timeout: 60000 });
  assert.deepEqual(auth, [null, 'Bearer sk-web-test']);
  assert.ok((await page.locator('.turn.assistant .answer').last().textContent()).length > 20);
  await page.close();
});
