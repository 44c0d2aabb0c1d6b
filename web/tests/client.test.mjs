// connect() and the EventSource-compatible class against a scripted fake fetch: reconnection
// with Last-Event-ID, the server's retry, backoff with jitter and a cap, and when not to retry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, backoffDelay, EventSource, SSEError } from '../ssehub.js';

const enc = new TextEncoder();

/** A response whose body yields the given chunks, then ends (or errors, if `fail`). */
function sse(chunks, { status = 200, type = 'text/event-stream', fail = false } = {}) {
  const queue = [...chunks];
  const body = new ReadableStream({
    pull(c) {
      if (queue.length > 0) c.enqueue(enc.encode(queue.shift()));
      else if (fail) c.error(new TypeError('network changed'));
      else c.close();
    },
  });
  return new Response(status === 204 ? null : body, { status, headers: { 'content-type': type } });
}

/** A fetch that answers each call with the next scripted reply and records the requests. */
function fakeFetch(replies) {
  const calls = [];
  const fn = async (url, init) => {
    calls.push({ url, method: init.method, headers: Object.fromEntries(init.headers.entries()), body: init.body });
    const next = replies.shift();
    if (next === undefined) {
      // Past the script the connection hangs, as a real one would, until aborted.
      return new Promise((_, reject) => init.signal.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError'))));
    }
    if (next instanceof Error) throw next;
    return typeof next === 'function' ? next() : next;
  };
  fn.calls = calls;
  return fn;
}

function recorder() {
  const delays = [];
  const sleep = async (ms) => {
    delays.push(ms);
  };
  return { delays, sleep };
}

test('reconnects with Last-Event-ID and the server retry after the stream ends', async () => {
  const fetch = fakeFetch([sse(['retry: 2500\nid: 7\ndata: a\n\n']), sse(['id: 8\ndata: b\n\n'])]);
  const { delays, sleep } = recorder();
  const events = [];
  const conn = connect('http://h/s', {
    fetch,
    sleep,
    random: () => 1,
    onmessage(e) {
      events.push(e);
      if (e.data === 'b') conn.close();
    },
  });
  await conn.closed;
  assert.deepEqual(events.map((e) => [e.data, e.id]), [['a', '7'], ['b', '8']]);
  assert.equal(fetch.calls[0].headers['last-event-id'], undefined);
  assert.equal(fetch.calls[0].headers.accept, 'text/event-stream');
  assert.equal(fetch.calls[1].headers['last-event-id'], '7');
  assert.deepEqual(delays, [3000]); // 2500 and at most 20 % of jitter on top
  assert.equal(conn.lastEventId, '8');
});

test('failed attempts back off exponentially up to the cap, and progress resets the backoff', async () => {
  const err = () => new TypeError('connection refused');
  const fetch = fakeFetch([err(), err(), err(), err(), err(), sse(['data: x\n\n']), err()]);
  const { delays, sleep } = recorder();
  const conn = connect('http://h/s', {
    fetch,
    sleep,
    random: () => 1,
    retry: 1000,
    maxRetry: 5000,
    onerror() {
      if (fetch.calls.length === 7) conn.close();
    },
  });
  await conn.closed;
  assert.deepEqual(delays, [1200, 2400, 4800, 6000, 6000, 1200]);
});

// Regression (issue 15): jitter drew from [d/2, d], so a client came back up to half the
// server's `retry` sooner than asked.
test('jitter only lengthens a delay, never below the server retry', () => {
  assert.equal(backoffDelay(0, 1000, 30000, () => 0), 1000);
  assert.equal(backoffDelay(0, 1000, 30000, () => 1), 1200);
  assert.equal(backoffDelay(3, 1000, 30000, () => 0.5), 8800);
  assert.equal(backoffDelay(50, 1000, 30000, () => 1), 36000);
  // A retry above the cap is still honoured.
  assert.equal(backoffDelay(5, 60000, 30000, () => 0), 60000);
  for (let i = 0; i < 1000; i++) {
    const d = backoffDelay(0, 2500, 30000);
    assert.ok(d >= 2500 && d <= 3000, `${d}`);
  }
  const seen = new Set();
  for (const r of [0, 0.25, 0.5, 0.75, 1]) seen.add(backoffDelay(2, 1000, 30000, () => r));
  assert.equal(seen.size, 5);
});

test('204 closes without retry and without an error', async () => {
  const fetch = fakeFetch([sse([], { status: 204 })]);
  const errors = [];
  let closed = 0;
  const conn = connect('http://h/s', { fetch, onerror: (e) => errors.push(e), onclose: () => closed++ });
  await conn.closed;
  assert.equal(fetch.calls.length, 1);
  assert.deepEqual(errors, []);
  assert.equal(closed, 1);
  assert.equal(conn.readyState, 2);
});

for (const status of [400, 401, 403, 404]) {
  test(`${status} is fatal: one error, no retry`, async () => {
    const fetch = fakeFetch([sse([], { status, type: 'application/json' })]);
    const errors = [];
    const conn = connect('http://h/s', { fetch, onerror: (e, info) => errors.push([e, info]) });
    await conn.closed;
    assert.equal(fetch.calls.length, 1);
    assert.equal(errors.length, 1);
    assert.ok(errors[0][0] instanceof SSEError);
    assert.equal(errors[0][0].status, status);
    assert.equal(errors[0][1].willRetry, false);
  });
}

test('a refusal carries the server\'s body (bounded) and headers, for a page to show why', async () => {
  const refusal = () => new Response('unauthorized: this hub requires a subscriber token\n', {
    status: 401,
    headers: { 'content-type': 'text/plain', 'www-authenticate': 'Bearer realm="mercure"' },
  });
  const huge = () => new Response('x'.repeat(100000), { status: 403 });
  for (const [reply, body] of [[refusal, 'unauthorized: this hub requires a subscriber token\n'], [huge, 'x'.repeat(4096)]]) {
    const fetch = fakeFetch([reply()]);
    const errors = [];
    const conn = connect('http://h/s', { fetch, onerror: (e) => errors.push(e) });
    await conn.closed;
    assert.equal(errors[0].body, body);
  }
  const fetch = fakeFetch([refusal()]);
  let error;
  await connect('http://h/s', { fetch, onerror: (e) => (error = e) }).closed;
  assert.equal(error.headers.get('www-authenticate'), 'Bearer realm="mercure"');
});

for (const status of [500, 503, 429]) test(`${status} is retried`, async () => {
  const fetch = fakeFetch([sse([], { status }), sse(['data: ok\n\n'])]);
  const { sleep } = recorder();
  const got = [];
  const conn = connect('http://h/s', {
    fetch,
    sleep,
    onmessage: (e) => {
      got.push(e.data);
      conn.close();
    },
  });
  await conn.closed;
  assert.deepEqual(got, ['ok']);
});

test('a response that is not text/event-stream fails without retry', async () => {
  const fetch = fakeFetch([sse(['data: x\n\n'], { type: 'text/html' })]);
  const errors = [];
  const conn = connect('http://h/s', { fetch, onerror: (e, i) => errors.push([e.fatal, i.willRetry]) });
  await conn.closed;
  assert.equal(fetch.calls.length, 1);
  assert.deepEqual(errors, [[true, false]]);
});

test('a network drop mid-stream resumes from the last id, without repeating events', async () => {
  const fetch = fakeFetch([sse(['id: 1\ndata: a\n\nid: 2\ndata: b\n\ndata: half'], { fail: true }), sse(['id: 3\ndata: c\n\n'])]);
  const { sleep } = recorder();
  const got = [];
  const conn = connect('http://h/s', {
    fetch,
    sleep,
    onmessage: (e) => {
      got.push(e.data);
      if (e.id === '3') conn.close();
    },
  });
  await conn.closed;
  assert.deepEqual(got, ['a', 'b', 'c']);
  assert.equal(fetch.calls[1].headers['last-event-id'], '2');
});

test('method, headers and body are sent; resume() replaces the request for reconnections', async () => {
  const fetch = fakeFetch([sse(['id: s-1\ndata: x\n\n']), sse(['id: s-2\ndata: y\n\n'])]);
  const { sleep } = recorder();
  const conn = connect('http://h/v1/chat/completions', {
    fetch,
    sleep,
    method: 'POST',
    headers: { Authorization: 'Bearer k', 'Content-Type': 'application/json' },
    body: '{"stream":true}',
    resume: ({ lastEventId }) => ({ url: `http://h/v1/streams/s?from=${lastEventId}`, method: 'GET', body: undefined }),
    onmessage: (e) => {
      if (e.id === 's-2') conn.close();
    },
  });
  await conn.closed;
  assert.equal(fetch.calls[0].method, 'POST');
  assert.equal(fetch.calls[0].headers.authorization, 'Bearer k');
  assert.equal(fetch.calls[0].body, '{"stream":true}');
  assert.equal(fetch.calls[1].method, 'GET');
  assert.equal(fetch.calls[1].url, 'http://h/v1/streams/s?from=s-1');
  assert.equal(fetch.calls[1].body, undefined);
  assert.equal(fetch.calls[1].headers['last-event-id'], 's-1');
});

test('reconnect: false reports the end and stops', async () => {
  const fetch = fakeFetch([sse(['data: x\n\n'])]);
  const errors = [];
  const conn = connect('http://h/s', { fetch, reconnect: false, onerror: (e, i) => errors.push(i.willRetry) });
  await conn.closed;
  assert.equal(fetch.calls.length, 1);
  assert.deepEqual(errors, [false]);
});

test('an aborted signal closes the connection and stops reconnecting', async () => {
  const ac = new AbortController();
  const fetch = fakeFetch([]);
  let closed = 0;
  const conn = connect('http://h/s', { fetch, signal: ac.signal, onclose: () => closed++ });
  ac.abort();
  await conn.closed;
  assert.equal(closed, 1);
  assert.equal(conn.readyState, 2);
});

test('EventSource class: open, message, named events, lastEventId, close', async () => {
  const fetch = fakeFetch([sse([':\n\nid: 1\ndata: hello\n\nevent: update\nid: 2\ndata: {"a":1}\n\n'])]);
  const { sleep } = recorder();
  const es = new EventSource('http://h/.well-known/mercure?topic=x', { fetch, sleep });
  assert.equal(es.readyState, EventSource.CONNECTING);
  assert.equal(es.url, 'http://h/.well-known/mercure?topic=x');
  const seen = [];
  await new Promise((resolve) => {
    es.onopen = () => seen.push(['open', es.readyState]);
    es.onmessage = (e) => seen.push(['message', e.data, e.lastEventId, e instanceof MessageEvent]);
    es.addEventListener('update', (e) => {
      seen.push(['update', e.data, e.lastEventId]);
      es.close();
      resolve();
    });
  });
  assert.deepEqual(seen, [
    ['open', 1],
    ['message', 'hello', '1', true],
    ['update', '{"a":1}', '2'],
  ]);
  assert.equal(es.readyState, EventSource.CLOSED);
  assert.equal(es.CLOSED, 2);
});

test('EventSource class: error with CONNECTING while it reconnects, CLOSED when fatal', async () => {
  const fetch = fakeFetch([new TypeError('down'), sse([], { status: 404 })]);
  const { sleep } = recorder();
  const es = new EventSource('http://h/s', { fetch, sleep });
  const states = [];
  await new Promise((resolve) => {
    es.onerror = () => {
      states.push(es.readyState);
      if (es.readyState === EventSource.CLOSED) resolve();
    };
  });
  assert.deepEqual(states, [EventSource.CONNECTING, EventSource.CLOSED]);
  assert.equal(fetch.calls.length, 2);
});

test('a non-ASCII last event id is sent as its UTF-8 bytes instead of failing every reconnection', async () => {
  const fetch = fakeFetch([sse(['id: \u00e9t\u00e9-\u{1F600}\ndata: a\n\n']), sse(['data: b\n\n'])]);
  const { sleep } = recorder();
  const conn = connect('http://h/s', {
    fetch,
    sleep,
    onmessage: (e) => {
      if (e.data === 'b') conn.close();
    },
  });
  await conn.closed;
  const sent = fetch.calls[1].headers['last-event-id'];
  assert.equal(new TextDecoder().decode(Uint8Array.from(sent, (c) => c.charCodeAt(0))), '\u00e9t\u00e9-\u{1F600}');
});

test('an over-size event fails the connection for good instead of reconnecting into it', async () => {
  const fetch = fakeFetch([sse(['data: ' + 'x'.repeat(100) + '\n\n'])]);
  const errors = [];
  const conn = connect('http://h/s', { fetch, maxEvent: 64, onerror: (e, i) => errors.push([e.fatal, i.willRetry]) });
  await conn.closed;
  assert.equal(fetch.calls.length, 1);
  assert.deepEqual(errors, [[true, false]]);
});

test('EventSource class: a 204 fires one error and closes, as the standard says', async () => {
  const fetch = fakeFetch([sse([], { status: 204 })]);
  const es = new EventSource('http://h/s', { fetch });
  const states = [];
  await new Promise((resolve) => {
    es.onerror = () => {
      states.push(es.readyState);
      resolve();
    };
  });
  await es._conn.closed;
  assert.deepEqual(states, [EventSource.CLOSED]);
  assert.equal(fetch.calls.length, 1);
});

test('EventSource class: close() fires no error', async () => {
  const fetch = fakeFetch([]);
  const es = new EventSource('http://h/s', { fetch });
  let errors = 0;
  es.onerror = () => errors++;
  es.close();
  await es._conn.closed;
  assert.equal(errors, 0);
  assert.equal(es.readyState, EventSource.CLOSED);
});

test('Retry-After on a 503 is honoured: the next attempt never comes sooner', async () => {
  const busy = () => new Response(null, { status: 503, headers: { 'retry-after': '7' } });
  const fetch = fakeFetch([busy(), sse(['data: ok\n\n'])]);
  const { delays, sleep } = recorder();
  const conn = connect('http://h/s', { fetch, sleep, random: () => 1, onmessage: () => conn.close() });
  await conn.closed;
  assert.deepEqual(delays, [7000]);
});
