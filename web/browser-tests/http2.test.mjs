// Ten answers streaming at once in one page: over HTTP/1.1 a browser opens at most six
// connections per host, so streams 7 to 10 would wait for earlier ones to finish. Over TLS the
// hub offers HTTP/2 by ALPN and all ten share one connection.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { startHub, launchBrowser, selfSignedCert } from './harness.mjs';

let hub;
let browser;
let tls;

before(async () => {
  tls = selfSignedCert();
  hub = await startHub(['--tls-cert', tls.cert, '--tls-key', tls.key, '--simulator-tokens-per-second', '20']);
  browser = await launchBrowser(['--ignore-certificate-errors']);
});
after(async () => {
  if (browser) await browser.close();
  if (hub) await hub.stop();
  if (tls) rmSync(tls.dir, { recursive: true, force: true });
});

it('ten simultaneous streams in one page all progress over HTTP/2', async () => {
  assert.match(hub.url, /^https:/);
  const page = await browser.context.newPage();
  await page.goto(`${hub.url}/`);
  const result = await page.evaluate(async () => {
    const { connect } = await import('/ssehub.js');
    const N = 10;
    const counts = new Array(N).fill(0);
    let firstDone = null;
    const ids = [];
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`counts stuck at ${counts}`)), 45000);
      for (let i = 0; i < N; i++) {
        const conn = connect('/v1/chat/completions', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'ssehub-simulator', messages: [{ role: 'user', content: `stream ${i}` }], stream: true }),
          reconnect: false,
          onopen: (r) => ids.push(r.headers.get('x-stream-id')),
          onmessage: (e) => {
            if (e.data === '[DONE]') {
              if (firstDone === null) firstDone = [...counts];
              conn.close();
              return;
            }
            counts[i]++;
            // Every stream has made progress (three chunks) while all are still running.
            if (firstDone === null && counts.every((c) => c >= 3)) {
              clearTimeout(timer);
              resolve();
            }
          },
        });
      }
    });
    // A fetch's resource timing entry is recorded when its body ends, so the streams' own
    // entries are not there yet; one more request shows the protocol they share.
    await (await fetch('/healthz')).text();
    const protocols = performance
      .getEntriesByType('resource')
      .map((e) => ({ path: new URL(e.name).pathname, protocol: e.nextHopProtocol }));
    return { counts, firstDone, ids, protocols, nav: performance.getEntriesByType('navigation')[0].nextHopProtocol };
  });
  assert.equal(result.nav, 'h2');
  // Every request of the page went over HTTP/2: the module, and the request made while the
  // ten streams were open on the same origin.
  const paths = result.protocols.map((p) => p.path);
  assert.ok(paths.includes('/ssehub.js'), `resources: ${JSON.stringify(result.protocols)}`);
  assert.ok(paths.includes('/healthz'), `resources: ${JSON.stringify(result.protocols)}`);
  for (const { path, protocol } of result.protocols) {
    assert.equal(protocol, 'h2', `${path} was fetched over ${protocol}`);
  }
  assert.equal(result.firstDone, null, 'a stream finished before all ten had started');
  assert.ok(result.counts.every((c) => c >= 3), `counts ${result.counts}`);
  assert.equal(new Set(result.ids).size, 10);
  await page.close();
});
