// The chat page in headless Chromium against the real hub and its built-in simulator: the
// typewriter effect, resume after reload, stop, a second tab watching the same answer, the
// scroll that follows the newest text, code blocks with Copy, regenerate, the conversation list
// and the empty state's example prompts.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHub, startProxy, launchBrowser, readStream } from './harness.mjs';
import { openPage, ask, state, saved, mode, waitState, waitChars } from './chat-helpers.mjs';

let hub;
let browser;

// Slow enough that a reload or a stop lands mid-answer, fast enough to keep the suite short.
const PACE = ['--simulator-tokens-per-second', '25', '--simulator-first-token-delay', '100ms'];

before(async () => {
  hub = await startHub(PACE);
  browser = await launchBrowser();
});
after(async () => {
  if (browser) await browser.close();
  if (hub) await hub.stop();
});

const openChat = (base = hub.url) => openPage(browser, `${base}/`);

describe('chat page', () => {
  it('renders the answer as it streams, in many intermediate states, not one blob', async () => {
    const { page, errors } = await openChat();
    // Record every distinct rendering of the answer, in the page, so none is missed.
    await page.evaluate(() => {
      window.__states = [];
      new MutationObserver(() => {
        const all = document.querySelectorAll('.turn.assistant .answer');
        const t = all.length ? all[all.length - 1].textContent : '';
        if (t && window.__states[window.__states.length - 1] !== t) window.__states.push(t);
      }).observe(document.getElementById('conversation'), { subtree: true, childList: true, characterData: true });
    });
    await ask(page, 'Tell me something about server-sent events.');
    await waitChars(page, 60);
    assert.equal(await state(page), 'streaming');
    assert.equal(await page.getAttribute('.turn.assistant .answer', 'aria-busy'), 'true');
    assert.equal(await page.getAttribute('.turn.assistant .answer', 'aria-live'), 'polite');
    assert.equal(await mode(page), 'stop');
    assert.equal(await page.getAttribute('#send', 'aria-label'), 'Stop');
    await waitState(page, 'done');
    const states = await page.evaluate(() => window.__states);
    assert.ok(states.length >= 10, `only ${states.length} renderings`);
    const final = states[states.length - 1];
    assert.ok(states[0].length < final.length / 4, 'the first rendering already held most of the answer');
    const s = await saved(page);
    assert.equal(s.current, null);
    assert.equal(s.messages.length, 2);
    assert.equal(await page.getAttribute('.turn.assistant .answer', 'aria-busy'), 'false');
    assert.ok(await page.isEnabled('#send'));
    assert.equal(await mode(page), 'send');
    assert.equal(await page.getAttribute('#send', 'aria-label'), 'Send');
    assert.deepEqual(errors, []);
    await page.close();
  });

  it('continues after a reload mid-answer, ending with the full answer exactly once', async () => {
    const { page, errors } = await openChat();
    await ask(page, 'A long answer, please.');
    await waitChars(page, 40);
    const before = await saved(page);
    assert.ok(before.current && before.current.streamId, 'no stream id saved');
    const id = before.current.streamId;
    await page.reload();
    await waitState(page, 'done');
    const after = await saved(page);
    const reference = await readStream(hub.url, id);
    assert.equal(reference.finish, 'stop');
    assert.ok(before.current.text.length > 0 && before.current.text.length < reference.text.length, 'the reload was not mid-answer');
    assert.equal(after.messages.length, 2);
    assert.equal(after.messages[1].content, reference.text);
    // The DOM shows that text once: one assistant turn, rendered exactly as the module renders
    // the reference text.
    assert.equal(await page.locator('.turn.assistant').count(), 1);
    const expected = await page.evaluate(async (t) => (await import('/ssehub.js')).renderMarkdown(t), reference.text);
    assert.equal(await page.innerHTML('.turn.assistant .answer'), expected);
    assert.deepEqual(errors, []);
    await page.close();
  });

  it('a network drop mid-answer reconnects with Last-Event-ID and loses nothing', async () => {
    const proxy = await startProxy(hub.url);
    try {
      const { page, errors } = await openChat(proxy.url);
      await ask(page, 'Survive a network drop.');
      await waitChars(page, 30);
      const id = (await saved(page)).current.streamId;
      const during = (await saved(page)).current.text;
      // Count reconnections as the page reports them, so a silent fallback cannot pass.
      await page.evaluate(() => {
        window.__reconnecting = 0;
        new MutationObserver(() => {
          if (document.getElementById('state').dataset.state === 'reconnecting') window.__reconnecting++;
        }).observe(document.getElementById('state'), { attributes: true });
      });
      proxy.drop();
      await waitState(page, 'done');
      assert.ok((await page.evaluate(() => window.__reconnecting)) >= 1, 'the page never reconnected');
      const reference = await readStream(hub.url, id);
      assert.equal(reference.finish, 'stop');
      assert.ok(during.length < reference.text.length, 'the drop was not mid-answer');
      assert.equal((await saved(page)).messages[1].content, reference.text);
      const expected = await page.evaluate(async (t) => (await import('/ssehub.js')).renderMarkdown(t), reference.text);
      assert.equal(await page.innerHTML('.turn.assistant .answer'), expected);
      // The cut itself is logged by the browser (net::ERR_...); nothing else may be.
      assert.deepEqual(errors.filter((e) => !e.includes('net::ERR_')), []);
      await page.close();
    } finally {
      await proxy.stop();
    }
  });

  it('stop cancels the generation upstream, for every watcher', async () => {
    const { page, errors } = await openChat();
    await ask(page, 'Something I will interrupt.');
    await waitChars(page, 20);
    const id = (await saved(page)).current.streamId;
    await page.click('#send');
    await waitState(page, 'stopped', 15000);
    const reference = await readStream(hub.url, id);
    assert.equal(reference.finish, 'cancelled');
    const s = await saved(page);
    assert.equal(s.messages[1].content, reference.text);
    // A complete answer is far longer than what had arrived when stop was pressed.
    const full = await readStream(hub.url, await completeOne());
    assert.ok(reference.text.length < full.text.length, 'the cancelled answer is as long as a complete one');
    assert.equal(await mode(page), 'send');
    assert.ok(await page.isEnabled('#send'));
    assert.deepEqual(errors, []);
    await page.close();
  });

  it('a second tab watching the stream sees the same answer', async () => {
    const { page } = await openChat();
    await ask(page, 'Watch me from another tab.');
    await waitChars(page, 10);
    const link = await page.getAttribute('#watch-link', 'href');
    assert.match(link, /\?stream=/);
    const watcher = await browser.context.newPage();
    await watcher.goto(link);
    await waitState(page, 'done');
    await waitState(watcher, 'done');
    const a = await page.innerHTML('.turn.assistant .answer');
    const b = await watcher.innerHTML('.turn.assistant .answer');
    assert.ok(a.length > 100);
    assert.equal(b, a);
    await watcher.close();
    await page.close();
  });

  it('watching an unknown stream fails once, without a retry loop', async () => {
    const page = await browser.context.newPage();
    const asked = [];
    page.on('request', (r) => {
      if (r.url().includes('/v1/streams/')) asked.push(r.url());
    });
    await page.goto(`${hub.url}/?stream=no-such-stream`);
    await waitState(page, 'error', 15000);
    assert.match(await page.textContent('.turn.assistant .note'), /no longer available/);
    assert.equal(asked.length, 1);
    await page.close();
  });

  it('model output cannot inject HTML into the page', async () => {
    const { page } = await openChat();
    const html = await page.evaluate(async () => {
      const { renderMarkdown } = await import('/ssehub.js');
      const el = document.createElement('div');
      el.innerHTML = renderMarkdown('<img src=x onerror="window.__pwned=1"> [x](javascript:window.__pwned=2)');
      document.body.append(el);
      await new Promise((r) => setTimeout(r, 50));
      return { pwned: window.__pwned, imgs: el.querySelectorAll('img').length, links: el.querySelectorAll('a').length };
    });
    assert.deepEqual(html, { pwned: undefined, imgs: 0, links: 0 });
    // Defence in depth: the page's Content-Security-Policy refuses inline handlers even if
    // markup got through.
    const blocked = await page.evaluate(async () => {
      const el = document.createElement('div');
      el.innerHTML = '<img src="/no-such-image.png" onerror="window.__pwned=3" onload="window.__pwned=3">';
      document.body.append(el);
      await new Promise((r) => setTimeout(r, 100));
      return window.__pwned === undefined;
    });
    assert.ok(blocked, 'an inline event handler ran: the CSP is missing');
    await page.close();
  });
});

/** Runs one generation to its end with the API, returning its stream id. */
async function completeOne() {
  const r = await fetch(`${hub.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'ssehub-simulator', messages: [{ role: 'user', content: 'x' }], stream: true }),
  });
  await r.text();
  return r.headers.get('x-stream-id');
}
