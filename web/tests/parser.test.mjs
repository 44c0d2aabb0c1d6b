// The JavaScript parser must agree with the Rust one: both run conformance/parse-cases.json.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Parser, SSEError } from '../ssehub.js';

const casesPath = fileURLToPath(new URL('../../conformance/parse-cases.json', import.meta.url));
const cases = JSON.parse(readFileSync(casesPath, 'utf8'));

function chunksOf(c) {
  if (c.chunks_hex) return c.chunks_hex.map((h) => Uint8Array.from(Buffer.from(h, 'hex')));
  const enc = new TextEncoder();
  return c.chunks.map((s) => enc.encode(s));
}

function run(chunks) {
  const events = [];
  const p = new Parser((e) => events.push(e));
  for (const chunk of chunks) p.push(chunk);
  p.end();
  return { events, retry: p.retry, last_event_id: p.lastEventId };
}

test('conformance cases are present', () => {
  assert.ok(cases.length >= 50, `only ${cases.length} cases`);
});

for (const c of cases) {
  test(`conformance: ${c.name}`, () => {
    const got = run(chunksOf(c));
    assert.deepEqual(got.events, c.events);
    assert.equal(got.retry, c.retry);
    assert.equal(got.last_event_id, c.last_event_id);
  });

  // The same bytes split one by one must give the same result: no rule may depend on where
  // a read happens to end.
  test(`conformance, byte by byte: ${c.name}`, () => {
    const bytes = Buffer.concat(chunksOf(c).map((b) => Buffer.from(b)));
    const got = run([...bytes].map((b) => Uint8Array.of(b)));
    assert.deepEqual(got.events, c.events);
    assert.equal(got.retry, c.retry);
    assert.equal(got.last_event_id, c.last_event_id);
  });
}

test('an over-long line fails the stream instead of growing without bound', () => {
  const p = new Parser(() => {}, { maxLine: 16 });
  assert.throws(() => p.push(new TextEncoder().encode('data: ' + 'x'.repeat(32))), (e) => e instanceof SSEError && e.fatal);
});

test('text chunks are accepted as well as bytes', () => {
  const events = [];
  const p = new Parser((e) => events.push(e));
  p.push('data: a\r');
  p.push('\ndata: b\n\n');
  assert.deepEqual(events, [{ type: 'message', data: 'a\nb', id: '' }]);
});

test('an event of many data lines is capped as well', () => {
  const p = new Parser(() => {}, { maxEvent: 64 });
  const many = 'data: 0123456789\n'.repeat(10);
  assert.throws(() => p.push(many), (e) => e instanceof SSEError && e.fatal);
});

