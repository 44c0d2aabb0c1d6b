// The online counter demo in headless Chromium against a hub started with --demo (and without
// --anonymous): every open copy of the page counts, from the hub's subscription events; the
// count goes up as pages open and down as they close, and a reload resumes and still counts right.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startHub, launchBrowser, resultsDir } from './harness.mjs';

let hub;
let browser;

before(async () => {
  hub = await startHub(['--demo'], { anonymous: false });
  browser = await launchBrowser();
});
after(async () => {
  if (browser) await browser.close();
  if (hub) await hub.stop();
});

async function openOnline() {
  const page = await browser.context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  await page.goto(`${hub.url}/demo/online`);
  return { page, errors };
}

const counts = (page, n) => page.waitForFunction((n) => document.getElementById('count').dataset.count === String(n), n);

it('counts the open pages, up as they open and down as they close', async () => {
  const first = await openOnline();
  await counts(first.page, 1);
  assert.match(await first.page.textContent('#who'), /you/);
  const second = await openOnline();
  await counts(second.page, 2);
  await counts(first.page, 2);
  const third = await openOnline();
  await counts(first.page, 3);
  await counts(third.page, 3);
  await counts(second.page, 3);
  mkdirSync(resultsDir, { recursive: true });
  await first.page.setViewportSize({ width: 1280, height: 800 });
  await first.page.screenshot({ path: join(resultsDir, 'demo-online.png') });
  await first.page.setViewportSize({ width: 390, height: 844 });
  await first.page.screenshot({ path: join(resultsDir, 'demo-online-phone.png') });
  await third.page.close();
  await counts(first.page, 2);
  await counts(second.page, 2);
  await second.page.close();
  await counts(first.page, 1);
  assert.ok(await first.page.locator('#activity li', { hasText: 'someone left' }).count() >= 2);
  assert.deepEqual(first.errors, []);
  assert.deepEqual(second.errors, []);
  assert.deepEqual(third.errors, []);
  await first.page.close();
});

it('a reload resumes from its last id, replays the arrivals it missed, and counts the same', async () => {
  const watcher = await openOnline();
  const { page, errors } = await openOnline();
  await counts(page, 2);
  await page.goto('about:blank');
  await counts(watcher.page, 1);
  // Someone comes and goes while the page is away.
  const visitor = await openOnline();
  await counts(watcher.page, 2);
  await visitor.page.close();
  await counts(watcher.page, 1);
  await page.goto(`${hub.url}/demo/online`);
  await page.waitForFunction(() => /^resumed from id urn:uuid:/.test(document.getElementById('resume').textContent));
  await counts(page, 2);
  await counts(watcher.page, 2);
  // The arrivals and departures of the absence: the page's own leaving, the visitor's coming and going.
  const missed = Number(await page.getAttribute('#resume', 'data-missed'));
  assert.ok(missed >= 3, `missed ${missed}`);
  assert.ok(await page.locator('#activity li[data-missed]').count() >= 3);
  await page.reload();
  await page.waitForFunction(() => /^resumed from id urn:uuid:/.test(document.getElementById('resume').textContent));
  await counts(page, 2);
  assert.deepEqual(errors, []);
  assert.deepEqual(watcher.errors, []);
  await page.close();
  await watcher.page.close();
});
