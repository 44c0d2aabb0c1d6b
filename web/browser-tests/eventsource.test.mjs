// The EventSource-compatible class, in Chromium, against every case the Rust parser passes
// (conformance/parse-cases.json). The bytes reach the class through a fetch stand-in that
// keeps each case's chunk boundaries exactly, which the network would not; the lastEventId and
// retry of each case are checked through what the class does next: the Last-Event-ID it sends
// and the delay it waits when it reconnects.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startHub, launchBrowser, hs256 } from './harness.mjs';

const cases = JSON.parse(readFileSync(fileURLToPath(new URL('../../conformance/parse-cases.json', import.meta.url)), 'utf8'));
const hex = (s) => Buffer.from(s, 'utf8').toString('hex');
const prepared = cases.map((c) => ({ ...c, hex: c.chunks_hex || c.chunks.map(hex) }));

const KEY = 'eventsource-test-secret-long-enough-for-hs256';
let hub;
let browser;
before(async () => {
  hub = await startHub(['--publisher-jwt-key', KEY]);
  browser = await launchBrowser();
});
after(async () => {
  if (browser) await browser.close();
  if (hub) await hub.stop();
});

it('the EventSource-compatible class passes every event-format case in the browser', async () => {
  const page = await browser.context.newPage();
  await page.goto(`${hub.url}/console`);
  const results = await page.evaluate(async (cases) => {
    const { EventSource, DEFAULT_RETRY_MS } = await import('/ssehub.js');
    const bytes = (h) => Uint8Array.from(h.match(/../g) || [], (b) => parseInt(b, 16));
    const out = [];
    for (const c of cases) {
      const got = [];
      const requests = [];
      let delay = null;
      await new Promise((resolve) => {
        const fetch = async (url, init) => {
          // Header values travel as bytes: decode them as the server would.
          const sent = init.headers.get('last-event-id');
          requests.push(sent === null ? null : new TextDecoder().decode(Uint8Array.from(sent, (ch) => ch.charCodeAt(0))));
          if (requests.length > 1) return new Response(null, { status: 204 });
          const chunks = c.hex.map(bytes);
          const body = new ReadableStream({
            pull(ctl) {
              if (chunks.length) ctl.enqueue(chunks.shift());
              else ctl.close();
            },
          });
          return new Response(body, { headers: { 'content-type': 'text/event-stream' } });
        };
        class Recording extends EventSource {
          dispatchEvent(e) {
            if (e instanceof MessageEvent) got.push({ type: e.type, data: e.data, id: e.lastEventId });
            return super.dispatchEvent(e);
          }
        }
        const es = new Recording('/case', {
          fetch,
          // No jitter: the delay must be exactly the case's retry (jitter only adds to it).
          random: () => 0,
          sleep: async (ms) => {
            delay = ms;
          },
        });
        const started = Date.now();
        const poll = setInterval(() => {
          if (es.readyState === EventSource.CLOSED || Date.now() - started > 5000) {
            es.close();
            clearInterval(poll);
            resolve();
          }
        }, 5);
      });
      out.push({ name: c.name, events: got, lastEventId: requests[1] || '', delay, expectedDelay: c.retry ?? DEFAULT_RETRY_MS });
    }
    return out;
  }, prepared);
  assert.equal(results.length, cases.length);
  for (const [i, r] of results.entries()) {
    const c = cases[i];
    assert.deepEqual(r.events, c.events, c.name);
    // A header value loses surrounding whitespace on its way (RFC 9110 optional whitespace),
    // with fetch as with every HTTP client; the id itself was checked on the events above.
    assert.equal(r.lastEventId, c.last_event_id.trim(), `${c.name}: Last-Event-ID on reconnect`);
    assert.equal(r.delay, r.expectedDelay, `${c.name}: reconnection delay`);
  }
  await page.close();
});

it('the EventSource-compatible class receives a real Mercure update, named, with its id', async () => {
  const page = await browser.context.newPage();
  await page.goto(`${hub.url}/console`);
  const topic = 'https://example.com/es';
  await page.evaluate(async (topic) => {
    const { EventSource } = await import('/ssehub.js');
    const es = new EventSource('/.well-known/mercure?topic=' + encodeURIComponent(topic));
    window.__got = new Promise((resolve) => {
      es.addEventListener('update', (e) => {
        resolve({ type: e.type, data: e.data, lastEventId: e.lastEventId, readyState: es.readyState });
        es.close();
      });
    });
    await new Promise((r) => (es.onopen = r));
  }, topic);
  const form = new URLSearchParams({ topic, data: 'line 1\nline 2', type: 'update', id: 'es-1' });
  const r = await fetch(`${hub.url}/.well-known/mercure`, {
    method: 'POST',
    headers: { authorization: `Bearer ${hs256(KEY, { mercure: { publish: ['*'] } })}` },
    body: form,
  });
  assert.equal(r.status, 200, await r.text());
  const got = await page.evaluate(() => window.__got);
  assert.deepEqual(got, { type: 'update', data: 'line 1\nline 2', lastEventId: 'es-1', readyState: 1 });
  await page.close();
});
