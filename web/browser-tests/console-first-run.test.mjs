// The console's first click on a hub started with no options at all (first run: a generated
// key, no anonymous subscribers): the refusal shows the hub's own answer, the first-run token
// button (offered because the page is served to this machine) fills in the token the hub
// printed, and then subscribe and publish work. Screenshots at 1280x800 and 390x844, with the
// events in view without scrolling.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startHub, launchBrowser, resultsDir } from './harness.mjs';

let hub;
let browser;

before(async () => {
  hub = await startHub([], { anonymous: false });
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

it('an anonymous first click shows the hub\'s own answer: status, body and WWW-Authenticate', async () => {
  // What the hub says to the same anonymous subscription, asked outside the browser.
  const direct = await fetch(`${hub.url}/.well-known/mercure?topic=*`, { headers: { accept: 'text/event-stream' } });
  const body = (await direct.text()).trim();
  assert.equal(direct.status, 401);
  assert.ok(body.length > 10);
  const { page, errors } = await openConsole();
  for (const transport of ['fetch', 'eventsource']) {
    await page.check(`input[name="transport"][value="${transport}"]`);
    await page.click('#sub-start');
    await page.waitForSelector('#sub-refusal:not([hidden])');
    const text = await page.textContent('#sub-refusal');
    assert.match(text, /HTTP 401 Unauthorized/, transport);
    assert.ok(text.includes(body), `${transport}: the hub's body is not shown: ${text}`);
    assert.match(text, /WWW-Authenticate: Bearer/, transport);
    assert.match(text, /first-run token/, transport);
    assert.equal(await page.getAttribute('#state', 'data-state'), 'error');
  }
  assert.deepEqual(errors, []);
  await page.close();
});

it('"Use the first-run token" fills in the printed token, and subscribe and publish then work', async () => {
  const { page, errors } = await openConsole();
  const token = (await (await fetch(`${hub.url}/console/dev-token`)).json()).token;
  assert.match(token, /^ey/);
  await page.waitForSelector('#use-dev-token:not([hidden])');
  await page.click('#use-dev-token');
  assert.equal(await page.inputValue('#sub-token'), token);
  assert.equal(await page.inputValue('#pub-token'), token);
  await page.click('#sub-start');
  await page.waitForFunction(() => document.getElementById('state').dataset.state === 'open');
  await page.click('#pub-send');
  await page.waitForFunction(() => document.getElementById('pub-result').textContent.startsWith('Published: '));
  const id = (await page.textContent('#pub-result')).slice('Published: '.length);
  await page.waitForSelector(`#events li[data-id="${id}"]`);

  // The events are in view at 1280x800 without scrolling the page.
  await page.setViewportSize({ width: 1280, height: 800 });
  const layout = await page.evaluate(() => {
    const r = document.getElementById('events-section').getBoundingClientRect();
    const first = document.querySelector('#events li').getBoundingClientRect();
    return { top: r.top, bottom: r.bottom, firstBottom: first.bottom, page: document.scrollingElement.scrollHeight };
  });
  assert.ok(layout.page <= 800, `the page scrolls (${layout.page}px tall)`);
  assert.ok(layout.top < 200 && layout.bottom <= 800 && layout.firstBottom <= 800, JSON.stringify(layout));
  // Labels and controls line up: every field's control starts at the same x.
  const lefts = await page.evaluate(() => [...document.querySelectorAll('#subscribe > input, #subscribe > select, #subscribe > .control')]
    .map((el) => Math.round(el.getBoundingClientRect().left)));
  assert.equal(new Set(lefts).size, 1, `controls start at ${lefts}`);
  mkdirSync(resultsDir, { recursive: true });
  await page.screenshot({ path: join(resultsDir, 'console.png') });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: join(resultsDir, 'console-phone.png') });
  assert.deepEqual(errors, []);
  await page.close();
});

it('opened under another host name, the console offers no token and the hub gives none', async () => {
  // The same hub reached as http://hub.test:PORT (resolved to loopback by Chromium itself): to
  // the page and to the hub that is not this machine by name, as for a LAN or public address.
  const port = new URL(hub.url).port;
  const other = await launchBrowser(['--host-resolver-rules=MAP hub.test 127.0.0.1']);
  try {
    const page = await other.context.newPage();
    const asked = [];
    page.on('response', (r) => r.url().includes('/console/dev-token') && asked.push(r.status()));
    await page.goto(`http://hub.test:${port}/console`);
    await page.waitForFunction(() => document.getElementById('state').dataset.state === 'idle');
    const status = await page.evaluate(async () => (await fetch('/console/dev-token')).status);
    assert.equal(status, 404);
    assert.ok(await page.isHidden('#use-dev-token'));
    // The page itself never asked: only the probe above did.
    assert.deepEqual(asked, [404]);
    await page.close();
  } finally {
    await other.close();
  }
});
