// Shared fixtures for the browser tests: the real `ssehub` binary on a free loopback port, and
// headless Chromium (Debian's, driven by playwright-core). Both are stopped by the tests that
// started them, by PID.
import { spawn, execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const repo = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const resultsDir = resolve(repo, 'web/test-results');

/**
 * Starts `ssehub serve` on 127.0.0.1:0 with a fresh data directory and resolves once it logs
 * the address it listens on. `SSEHUB_BIN` overrides the binary. Subscribers need no token
 * unless `anonymous` is false.
 */
export async function startHub(extraArgs = [], { anonymous = true } = {}) {
  const bin = process.env.SSEHUB_BIN || join(repo, 'target/debug/ssehub');
  const dataDir = mkdtempSync(join(tmpdir(), 'ssehub-web-'));
  const args = ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir, ...(anonymous ? ['--anonymous'] : []), ...extraArgs];
  const child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NO_COLOR: '1', RUST_LOG: 'warn,ssehub=info' } });
  let log = '';
  const url = await new Promise((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`ssehub did not report its address in 30 s:\n${log}`)), 30000);
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (text) => {
      log += text;
      // eslint-disable-next-line no-control-regex
      const m = /ssehub listening on (https?:\/\/[^\s\u001b]+)/.exec(log.replace(/\u001b\[[0-9;]*m/g, ''));
      if (m) {
        clearTimeout(timer);
        resolveUrl(m[1].replace(/\/$/, ''));
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`ssehub exited with ${code}:\n${log}`));
    });
  });
  child.removeAllListeners('exit');
  return {
    url,
    log: () => log,
    async stop() {
      const exited = new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
      process.kill(child.pid, 'SIGTERM');
      const timer = setTimeout(() => child.exitCode === null && process.kill(child.pid, 'SIGKILL'), 15000);
      await exited;
      clearTimeout(timer);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Launches headless Chromium with a fresh profile; `extraArgs` are added to the usual flags. */
export async function launchBrowser(extraArgs = []) {
  const userDataDir = mkdtempSync(join(tmpdir(), 'ssehub-chromium-'));
  const args = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    ...extraArgs,
  ];
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args,
    viewport: { width: 1000, height: 760 },
    ignoreHTTPSErrors: extraArgs.includes('--ignore-certificate-errors'),
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

/** A self-signed certificate for 127.0.0.1 in a fresh directory: `{cert, key, dir}`. */
export function selfSignedCert() {
  const dir = mkdtempSync(join(tmpdir(), 'ssehub-tls-'));
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ], { stdio: 'ignore' });
  return { cert, key, dir };
}

/**
 * Reads a whole relay stream from the start (`GET /v1/streams/{id}`) outside the browser and
 * returns `{text, finish, chunks}`: the reference the pages are compared with.
 */
export async function readStream(base, id) {
  const r = await fetch(`${base}/v1/streams/${encodeURIComponent(id)}`, { headers: { accept: 'text/event-stream' } });
  if (r.status !== 200) throw new Error(`GET /v1/streams/${id}: ${r.status}`);
  const body = await r.text();
  let text = '';
  let finish = null;
  let chunks = 0;
  for (const block of body.split('\n\n')) {
    const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, '')).join('\n');
    if (!data || data === '[DONE]') continue;
    const chunk = JSON.parse(data);
    chunks++;
    const choice = chunk.choices && chunk.choices[0];
    if (choice && choice.delta && typeof choice.delta.content === 'string') text += choice.delta.content;
    if (choice && choice.finish_reason) finish = choice.finish_reason;
    if (chunk.ssehub && chunk.ssehub.cancelled) finish = 'cancelled';
  }
  return { text, finish, chunks };
}

/**
 * A TCP proxy on a free loopback port in front of `target` (`http://host:port`), whose
 * `drop()` cuts every open connection at once: a network failure, as the browser sees one.
 */
export async function startProxy(target) {
  const net = await import('node:net');
  const { hostname, port } = new URL(target);
  const sockets = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(port), hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    drop() {
      for (const s of sockets) s.destroy();
    },
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

/** An HS256 JWT signed with `key`, expiring in an hour: for `--publisher-jwt-key key`. */
export function hs256(key, claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ exp: Math.floor(Date.now() / 1000) + 3600, ...claims })}`;
  return `${head}.${createHmac('sha256', key).update(head).digest('base64url')}`;
}

/**
 * Subscribes outside the browser and resolves with the first `n` events (`{id, type, data}`),
 * then closes the stream. `onopen` runs once the hub answered (the subscription is in place).
 */
export async function takeEvents(url, n, { headers = {}, onopen } = {}) {
  const ac = new AbortController();
  const r = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: ac.signal });
  if (r.status !== 200) throw new Error(`GET ${url}: ${r.status}`);
  if (onopen) onopen();
  const events = [];
  const decoder = new TextDecoder();
  let buffer = '';
  try {
    for await (const chunk of r.body) {
      buffer += decoder.decode(chunk, { stream: true });
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = { id: '', type: 'message', data: [] };
        for (const line of block.split('\n')) {
          const [field, ...rest] = line.split(':');
          const value = rest.join(':').replace(/^ /, '');
          if (field === 'id') event.id = value;
          else if (field === 'event') event.type = value;
          else if (field === 'data') event.data.push(value);
        }
        if (event.data.length === 0) continue;
        events.push({ ...event, data: event.data.join('\n') });
        if (events.length >= n) return events;
      }
    }
  } finally {
    ac.abort();
  }
  throw new Error(`the stream ended after ${events.length} of ${n} events`);
}
