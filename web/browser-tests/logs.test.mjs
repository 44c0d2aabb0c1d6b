// The log tail demo in headless Chromium against a hub started with --demo: lines published on
// /demo/logs (by HTTP, and by `ssehub publish --follow` from a real file) appear live with their
// level coloured, pause holds them back, and a page that goes away and comes back shows every
// line it missed, once, in order.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startHub, launchBrowser, resultsDir, hs256 } from './harness.mjs';

const KEY = 'logs-demo-test-secret-long-enough-for-hs256';
const TOKEN = hs256(KEY, { mercure: { publish: ['/demo/logs'] } });
let hub;
let browser;

before(async () => {
  hub = await startHub(['--demo', '--publisher-jwt-key', KEY], { anonymous: false });
  browser = await launchBrowser();
});
after(async () => {
  if (browser) await browser.close();
  if (hub) await hub.stop();
});

async function publish(data) {
  const r = await fetch(`${hub.url}/.well-known/mercure`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ topic: '/demo/logs', data }),
  });
  assert.equal(r.status, 200, await r.text());
}

async function openLogs() {
  const page = await browser.context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  await page.goto(`${hub.url}/demo/logs`);
  await page.waitForFunction(() => document.getElementById('state').dataset.state === 'open');
  return { page, errors };
}

/** The lines shown that are not simulated, as text. */
const ownLines = (page) => page.evaluate(() =>
  [...document.querySelectorAll('#log .line:not([data-simulated])')].map((l) => l.textContent));

const waitLine = (page, text) => page.waitForFunction(
  (t) => [...document.querySelectorAll('#log .line')].some((l) => l.textContent === t), text);

it('shows lines live with their level, simulated ones labelled, and pause holds new ones back', async () => {
  const { page, errors } = await openLogs();
  const lines = {
    error: '2026-12-04T10:00:01Z ERROR payment: card declined for order 1042',
    warn: '2026-12-04T10:00:02Z WARN  db: pool 91% busy',
    info: '2026-12-04T10:00:03Z INFO  api: GET /orders 200 in 12 ms',
    debug: '2026-12-04T10:00:04Z DEBUG cache: hit ratio 97%',
    plain: 'a line with no level at all <b>not bold</b>',
  };
  for (const text of Object.values(lines)) await publish(text);
  for (const [level, text] of Object.entries(lines)) {
    await waitLine(page, text);
    const line = page.locator('#log .line', { hasText: text });
    assert.equal(await line.getAttribute('data-level'), level);
  }
  assert.equal(await page.locator('#log b').count(), 0, 'data is text, never markup');
  // The simulated lines (--demo) arrive too, labelled.
  await page.waitForSelector('#log .line[data-simulated] .sim');

  await page.click('#follow');
  assert.equal(await page.getAttribute('#follow', 'aria-pressed'), 'false');
  await publish('INFO held while paused');
  await page.waitForFunction(() => /new lines? held/.test(document.getElementById('held').textContent));
  assert.ok(!(await ownLines(page)).includes('INFO held while paused'));
  await page.click('#follow');
  await waitLine(page, 'INFO held while paused');

  await page.waitForFunction(() => document.querySelectorAll('#log .line[data-simulated]').length >= 4);
  mkdirSync(resultsDir, { recursive: true });
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.screenshot({ path: join(resultsDir, 'demo-logs.png') });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: join(resultsDir, 'demo-logs-phone.png') });
  assert.deepEqual(errors, []);
  await page.close();
});

it('ssehub publish --follow feeds the page from a file, across its rotation', async () => {
  const { page, errors } = await openLogs();
  const dir = mkdtempSync(join(tmpdir(), 'ssehub-follow-'));
  const file = join(dir, 'app.log');
  appendFileSync(file, '');
  const bin = process.env.SSEHUB_BIN || resolve(fileURLToPath(new URL('../..', import.meta.url)), 'target/debug/ssehub');
  const follower = spawn(bin, ['publish', '--hub', `${hub.url}/.well-known/mercure`, '--topic', '/demo/logs',
    '--token', TOKEN, '--follow', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    await new Promise((ready, fail) => {
      let said = '';
      follower.stderr.on('data', (b) => {
        said += b;
        if (said.includes('following')) ready();
      });
      follower.on('exit', (code) => fail(new Error(`the follower exited with ${code}: ${said}`)));
    });
    appendFileSync(file, 'ERROR from the file, first line\n');
    await waitLine(page, 'ERROR from the file, first line');
    // copytruncate: the file emptied in place, then written again (less than it held).
    writeFileSync(file, '');
    appendFileSync(file, 'INFO truncated\n');
    await waitLine(page, 'INFO truncated');
    // Replaced: removed, and created anew.
    rmSync(file);
    appendFileSync(file, 'WARN from the new file\n');
    await waitLine(page, 'WARN from the new file');
    assert.equal(await page.locator('#log .line', { hasText: 'WARN from the new file' }).getAttribute('data-level'), 'warn');
  } finally {
    follower.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
  assert.deepEqual(errors, []);
  await page.close();
});

it('a page away while lines were written shows each of them once, in order, and says it resumed', async () => {
  const { page, errors } = await openLogs();
  await publish('INFO before leaving');
  await waitLine(page, 'INFO before leaving');
  await page.goto('about:blank');
  const away = Array.from({ length: 8 }, (_, i) => `INFO written while away ${i + 1}`);
  for (const text of away) await publish(text);
  await page.goto(`${hub.url}/demo/logs`);
  await page.waitForFunction(() => /^resumed from id urn:uuid:/.test(document.getElementById('resume').textContent));
  await waitLine(page, away.at(-1));
  const missed = Number(await page.getAttribute('#resume', 'data-missed'));
  assert.ok(missed >= away.length, `missed ${missed}`);
  const own = await ownLines(page);
  const from = own.indexOf('INFO before leaving');
  assert.ok(from >= 0, 'the lines from before are restored');
  assert.deepEqual(own.slice(from, from + 1 + away.length), ['INFO before leaving', ...away]);
  // A plain reload as well.
  await page.reload();
  await page.waitForFunction(() => /^resumed from id urn:uuid:/.test(document.getElementById('resume').textContent));
  await publish('INFO after the reload');
  await waitLine(page, 'INFO after the reload');
  const again = await ownLines(page);
  assert.equal(again.filter((l) => l === away.at(-1)).length, 1, 'no line twice');
  assert.deepEqual(errors, []);
  await page.close();
});
