// The ticker demo in headless Chromium against a hub started with --demo (and without
// --anonymous: the demo topics alone are open): live prices arrive, and a page that goes away
// and comes back resumes with Last-Event-ID, says how many updates it missed, and loses none.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startHub, launchBrowser, resultsDir, takeEvents } from './harness.mjs';

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

async function openTicker() {
  const page = await browser.context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  await page.goto(`${hub.url}/demo/ticker`);
  return { page, errors };
}

/** Each symbol's last sequence number shown. */
const seqs = (page) => page.evaluate(() =>
  Object.fromEntries([...document.querySelectorAll('.quote')].map((q) => [q.dataset.symbol, Number(q.dataset.seq)])));

/** Waits until every one of the six symbols has moved at least `n` times more than in `from`. */
async function moved(page, n, from = {}) {
  await page.waitForFunction(({ n, from }) => {
    const cards = [...document.querySelectorAll('.quote')];
    return cards.length === 6 && cards.every((q) => Number(q.dataset.seq) >= (from[q.dataset.symbol] || 0) + n);
  }, { n, from });
}

it('shows simulated prices moving live, with change and a sparkline', async () => {
  const { page, errors } = await openTicker();
  await moved(page, 3);
  assert.equal(await page.textContent('.badge'), 'simulated data');
  assert.match(await page.textContent('#resume'), /^live from now on/);
  const acme = page.locator('.quote[data-symbol="ACME"]');
  assert.match(await acme.locator('.price').textContent(), /^\d+\.\d\d$/);
  assert.match(await acme.locator('.change').textContent(), /^[+−±]\d+\.\d\d \([+−±]\d+\.\d\d%\)$/);
  const points = await acme.locator('polyline').getAttribute('points');
  assert.ok(points.split(' ').length >= 3, points);
  assert.equal(await page.getAttribute('#state', 'data-state'), 'open');
  mkdirSync(resultsDir, { recursive: true });
  await page.setViewportSize({ width: 1280, height: 800 });
  await moved(page, 12);
  await page.screenshot({ path: join(resultsDir, 'demo-ticker.png') });
  // The top of it, small enough for the README (docs/ticker.png is a copy).
  await page.screenshot({ path: join(resultsDir, 'demo-ticker-readme.png'), clip: { x: 0, y: 0, width: 1280, height: 390 } });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: join(resultsDir, 'demo-ticker-phone.png') });
  assert.deepEqual(errors, []);
  await page.close();
});

it('a reload resumes from the last id shown and loses no update', async () => {
  const { page, errors } = await openTicker();
  await moved(page, 2);
  await page.reload();
  await page.waitForFunction(() => /^resumed from id urn:uuid:/.test(document.getElementById('resume').textContent));
  assert.match(await page.textContent('#resume'), /^resumed from id urn:uuid:[0-9a-f-]+, missed \d+ updates?$/);
  const before = await seqs(page);
  await moved(page, 3, before);
  assert.equal(await page.getAttribute('#gaps', 'data-gaps'), '0');
  assert.deepEqual(errors, []);
  await page.close();
});

it('a page away while updates were published counts them as missed, and shows every one', async () => {
  const { page, errors } = await openTicker();
  await moved(page, 2);
  // Leave (the page saves its place on the way out), then let at least 12 updates pass: an
  // outside subscriber sees them, so they were published while the page was away.
  await page.goto('about:blank');
  await takeEvents(`${hub.url}/.well-known/mercure?topic=${encodeURIComponent('/demo/ticker/{symbol}')}`, 12);
  await page.goto(`${hub.url}/demo/ticker`);
  await page.waitForFunction(() => /^resumed from/.test(document.getElementById('resume').textContent));
  const missed = Number(await page.getAttribute('#resume', 'data-missed'));
  assert.ok(missed >= 12, `missed ${missed}`);
  const back = await seqs(page);
  await moved(page, 2, back);
  // Every symbol's sequence went on without a hole across the absence.
  assert.equal(await page.getAttribute('#gaps', 'data-gaps'), '0');
  assert.deepEqual(errors, []);
  await page.close();
});

it('the demo pages share one stylesheet and one header, each marking itself current', async () => {
  for (const [path, name] of [['/demo/ticker', 'Ticker'], ['/demo/logs', 'Logs'], ['/demo/online', 'Online']]) {
    const page = await browser.context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    // A stylesheet the CSP refused would show up as a console error.
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    await page.goto(`${hub.url}${path}`);
    const got = await page.evaluate(() => ({
      sheets: [...document.styleSheets].filter((s) => s.href && s.href.endsWith('/demo/demo.css') && s.cssRules.length > 10).length,
      header: getComputedStyle(document.querySelector('header')).display,
      links: [...document.querySelectorAll('nav[data-demo-nav] a')].map((a) => a.textContent),
      current: document.querySelector('nav[data-demo-nav] [aria-current="page"]')?.textContent,
    }));
    assert.deepEqual(got, { sheets: 1, header: 'flex', links: ['Chat', 'Console', 'Ticker', 'Logs', 'Online'], current: name }, path);
    assert.deepEqual(errors.filter((e) => !e.includes('net::ERR_ABORTED')), [], path);
    await page.close();
  }
});
