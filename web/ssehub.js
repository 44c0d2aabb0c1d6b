// ssehub.js: Server-Sent Events for browsers, without the limits of the built-in EventSource.
//
// Data flow: fetch() -> response body bytes -> Parser (the WHATWG event-stream rules, the same
// ones the Rust `sse-wire` crate implements) -> events -> callbacks. When the stream ends or
// the network drops, connect() waits (the server's `retry`, doubled per failed attempt, with
// jitter, capped) and asks again with `Last-Event-ID`, so nothing is lost and no client storm
// follows a server restart. On top of that: an EventSource-compatible class, for code written
// against the standard API, and a Markdown renderer that is safe for model output.
//
// Why fetch and not EventSource: EventSource cannot POST, cannot send an Authorization header,
// and cannot be stopped from resuming against a URL that must not be asked twice (a POST that
// starts a generation); fetch can do all of that and is cancelled by an AbortSignal.

/** Reconnection delay (ms) when the server never sent `retry:`. */
export const DEFAULT_RETRY_MS = 1000;
/** Upper bound (ms) of the backoff between reconnection attempts. */
export const DEFAULT_MAX_RETRY_MS = 30000;
/** Longest line (in UTF-16 code units) the parser buffers before failing the stream. */
export const DEFAULT_MAX_LINE = 1 << 20;
/** Largest event data (in UTF-16 code units) the parser buffers before failing the stream. */
export const DEFAULT_MAX_EVENT = 1 << 23;

const LF = 10;
const CR = 13;

/**
 * An error of the connection. `fatal` is true when retrying cannot help (a 4xx status, a wrong
 * content type, an over-long line): the connection is then closed for good.
 */
export class SSEError extends Error {
  constructor(message, { status = 0, fatal = false, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'SSEError';
    /** HTTP status, 0 when no response arrived. */
    this.status = status;
    /** True when the connection will not be retried. */
    this.fatal = fatal;
    /** The wait (ms) a 429 or 5xx asked for with `Retry-After`; 0 when it did not. */
    this.retryAfterMs = 0;
    /** For a refusal (a status other than 200): the first 4 KiB of its body, and its headers. */
    this.body = '';
    this.headers = null;
  }
}

/**
 * Incremental event-stream parser. Feed it bytes as they arrive, in any split; it calls
 * `onEvent({type, data, id})` for every dispatched event, `id` being the last event ID in force.
 */
export class Parser {
  /**
   * @param {(event: {type: string, data: string, id: string}) => void} onEvent
   * @param {{maxLine?: number, maxEvent?: number}} [options]
   */
  constructor(onEvent, { maxLine = DEFAULT_MAX_LINE, maxEvent = DEFAULT_MAX_EVENT } = {}) {
    this.onEvent = onEvent;
    // Both caps keep a broken or hostile server from growing the page's memory without end.
    this.maxLine = maxLine;
    this.maxEvent = maxEvent;
    // The decoder keeps a multi-byte character split across chunks, and drops a leading BOM
    // once (also when the BOM itself is split), which is exactly the stream rule.
    this.decoder = new TextDecoder('utf-8');
    /** Text received but not yet ended by a line terminator. */
    this.pending = '';
    /** A CR ended the previous chunk: a LF opening the next one belongs to it. */
    this.afterCR = false;
    this.data = '';
    this.hasData = false;
    this.type = '';
    /** The id of the block being read; it becomes `lastEventId` at the blank line. */
    this.idBuffer = '';
    /** The last event ID in force, sent back as `Last-Event-ID` when reconnecting. */
    this.lastEventId = '';
    /** The reconnection time (ms) the stream asked for, or null. */
    this.retry = null;
  }

  /**
   * Feeds bytes (a Uint8Array) or already decoded text.
   * @throws {SSEError} when a line grows beyond `maxLine` or an event beyond `maxEvent`
   */
  push(chunk) {
    const text = typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    this.pushText(text);
  }

  /** Ends the stream: an unfinished event is dropped, as the standard says. */
  end() {
    this.pushText(this.decoder.decode());
    this.pending = '';
    this.afterCR = false;
    this.data = '';
    this.hasData = false;
    this.type = '';
    this.idBuffer = this.lastEventId;
  }

  pushText(text) {
    let start = 0;
    if (this.afterCR && text.length > 0) {
      if (text.charCodeAt(0) === LF) start = 1;
      this.afterCR = false;
    }
    const buf = this.pending.length > 0 ? this.pending + text.slice(start) : text.slice(start);
    let lineStart = 0;
    const n = buf.length;
    for (let i = 0; i < n; i++) {
      const c = buf.charCodeAt(i);
      if (c !== LF && c !== CR) continue;
      this.line(buf.slice(lineStart, i));
      if (c === CR) {
        if (i + 1 < n) {
          if (buf.charCodeAt(i + 1) === LF) i++;
        } else {
          this.afterCR = true;
        }
      }
      lineStart = i + 1;
    }
    this.pending = lineStart === 0 ? buf : buf.slice(lineStart);
    if (this.pending.length > this.maxLine) {
      this.pending = '';
      throw new SSEError(`event-stream line longer than ${this.maxLine} characters`, { fatal: true });
    }
  }

  line(line) {
    if (line.length === 0) {
      this.dispatch();
      return;
    }
    if (line.charCodeAt(0) === 58 /* ':' */) return;
    const colon = line.indexOf(':');
    let field = line;
    let value = '';
    if (colon >= 0) {
      field = line.slice(0, colon);
      value = line.slice(line.charCodeAt(colon + 1) === 32 ? colon + 2 : colon + 1);
    }
    switch (field) {
      case 'data':
        this.data += value + '\n';
        this.hasData = true;
        if (this.data.length > this.maxEvent) {
          this.data = '';
          throw new SSEError(`event data longer than ${this.maxEvent} characters`, { fatal: true });
        }
        break;
      case 'event':
        this.type = value;
        break;
      case 'id':
        if (!value.includes('\0')) this.idBuffer = value;
        break;
      case 'retry':
        if (/^[0-9]+$/.test(value)) this.retry = Number(value);
        break;
      default:
        break;
    }
  }

  dispatch() {
    this.lastEventId = this.idBuffer;
    const type = this.type || 'message';
    const data = this.data;
    const hasData = this.hasData;
    this.type = '';
    this.data = '';
    this.hasData = false;
    if (!hasData) return;
    this.onEvent({ type, data: data.slice(0, -1), id: this.lastEventId });
  }
}

/** Fraction by which jitter may lengthen a reconnection delay (never shorten it). */
export const JITTER = 0.2;

/**
 * Delay (ms) before reconnection attempt number `attempt` (0 for the first after a stream
 * that made progress): `base * 2^attempt`, capped at `cap` (but never below `base`, the
 * server's `retry`), then lengthened by a random fraction of at most `JITTER`, so that clients
 * dropped together by a restart do not come back together. Jitter only adds: a server that asks
 * for a delay (to shed load) never sees a client return sooner.
 */
export function backoffDelay(attempt, base = DEFAULT_RETRY_MS, cap = DEFAULT_MAX_RETRY_MS, random = Math.random) {
  const exp = Math.min(Math.max(attempt, 0), 30);
  const d = Math.min(Math.max(cap, base), base * 2 ** exp);
  return Math.round(d + random() * JITTER * d);
}

function abortableSleep(ms, signal) {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

function isEventStream(response) {
  const ct = (response.headers.get('content-type') || '').toLowerCase();
  return ct.split(';')[0].trim() === 'text/event-stream';
}

/**
 * Opens an event stream with fetch and keeps it open across drops.
 *
 * Options: `method`, `headers`, `body`, `credentials` (as for fetch), `signal` (an AbortSignal
 * that closes the connection), `lastEventId` (to resume from), `retry` (ms, until the server
 * says otherwise), `maxRetry` (the backoff cap, ms), `reconnect` (false: never reconnect),
 * `resume(ctx)` (returns `{url, method, headers, body}` overrides for reconnections, for a POST
 * that must not be repeated; `ctx` = `{lastEventId, response}`), and the callbacks
 * `onopen(response)`, `onmessage(event)` (`{type, data, id}`, every event type),
 * `onerror(error, {willRetry, delay})` and `onclose()`. `maxLine` and `maxEvent` cap what one
 * line or one event may buffer (beyond them the connection fails for good). `fetch`, `random`
 * and `sleep` can be replaced, for tests.
 *
 * No retry after a 204 (the server says "done"), a 4xx, or a response that is not
 * `text/event-stream`; a 5xx, a 429 (the server asks to come back later) or a network error
 * is retried, with the backoff.
 *
 * Returns `{close(), closed: Promise<void>, lastEventId, readyState}`.
 */
export function connect(url, options = {}) {
  const {
    method = 'GET',
    headers = {},
    body,
    credentials,
    signal,
    retry = DEFAULT_RETRY_MS,
    maxRetry = DEFAULT_MAX_RETRY_MS,
    maxLine = DEFAULT_MAX_LINE,
    maxEvent = DEFAULT_MAX_EVENT,
    reconnect = true,
    resume,
    onopen,
    onmessage,
    onerror,
    onclose,
    fetch: fetchFn = globalThis.fetch.bind(globalThis),
    random = Math.random,
    sleep = abortableSleep,
  } = options;

  const controller = new AbortController();
  const conn = {
    /** The last event ID in force (what a reconnection sends). */
    lastEventId: options.lastEventId || '',
    /** 0 connecting, 1 open, 2 closed: as EventSource. */
    readyState: 0,
    /** The reconnection base delay in force (ms): the server's `retry` once it sent one. */
    retry,
    /** Closes the connection for good; callbacks stop, `onclose` runs once. */
    close() {
      controller.abort();
    },
    closed: null,
  };
  if (signal) {
    if (signal.aborted) controller.abort();
    else signal.addEventListener('abort', () => controller.abort(), { once: true });
  }

  async function run() {
    let request = { url, method, headers, body };
    let attempt = 0;
    let lastResponse = null;
    while (!controller.signal.aborted) {
      conn.readyState = 0;
      let progressed = false;
      let error = null;
      try {
        const h = new Headers(request.headers || {});
        h.set('Accept', 'text/event-stream');
        if (!h.has('Cache-Control')) h.set('Cache-Control', 'no-cache');
        if (conn.lastEventId) h.set('Last-Event-ID', headerValue(conn.lastEventId));
        else h.delete('Last-Event-ID');
        const init = { method: request.method || 'GET', headers: h, signal: controller.signal, cache: 'no-store' };
        if (request.body !== undefined && request.body !== null) init.body = request.body;
        if (credentials) init.credentials = credentials;
        const response = await fetchFn(request.url, init);
        lastResponse = response;
        if (response.status === 204) {
          cancelBody(response);
          break;
        }
        if (response.status !== 200) {
          const transient = response.status >= 500 || response.status === 429;
          const err = new SSEError(`unexpected HTTP status ${response.status}`, { status: response.status, fatal: !transient });
          err.headers = response.headers;
          // The server's own words on why, for a page to show; only for a refusal that ends the
          // connection, so a retry never waits on a body.
          if (transient) cancelBody(response);
          else err.body = await readSome(response, MAX_ERROR_BODY);
          // An overloaded server may say when to come back; never come back sooner.
          const after = response.headers.get('retry-after');
          if (transient && after && /^[0-9]+$/.test(after.trim())) err.retryAfterMs = Number(after.trim()) * 1000;
          throw err;
        }
        if (!isEventStream(response)) {
          cancelBody(response);
          throw new SSEError(`expected text/event-stream, got ${response.headers.get('content-type') || 'no content type'}`, {
            status: 200,
            fatal: true,
          });
        }
        conn.readyState = 1;
        if (onopen) onopen(response);
        const parser = new Parser((event) => {
          progressed = true;
          conn.lastEventId = event.id;
          if (onmessage && !controller.signal.aborted) onmessage(event);
        }, { maxLine, maxEvent });
        if (response.body) {
          const reader = response.body.getReader();
          try {
            for (;;) {
              const { value, done } = await reader.read();
              if (done) break;
              parser.push(value);
              if (parser.retry !== null) conn.retry = parser.retry;
              if (controller.signal.aborted) break;
            }
          } finally {
            reader.cancel().catch(() => {});
          }
        }
        parser.end();
        // An id set by a data-less block counts too: the server moved us forward.
        if (parser.lastEventId !== conn.lastEventId) {
          conn.lastEventId = parser.lastEventId;
          progressed = true;
        }
        if (controller.signal.aborted) break;
        error = new SSEError('stream ended', { status: 200 });
      } catch (e) {
        if (controller.signal.aborted) break;
        error = e instanceof SSEError ? e : new SSEError(`network error: ${e && e.message ? e.message : e}`, { cause: e });
      }
      if (progressed) attempt = 0;
      const willRetry = reconnect && !error.fatal;
      let delay = willRetry ? backoffDelay(attempt, conn.retry, maxRetry, random) : 0;
      if (willRetry && error.retryAfterMs) delay = Math.max(delay, error.retryAfterMs);
      conn.readyState = willRetry ? 0 : 2;
      if (onerror) onerror(error, { willRetry, delay });
      if (!willRetry || controller.signal.aborted) break;
      attempt++;
      await sleep(delay, controller.signal);
      if (resume && !controller.signal.aborted) {
        request = { ...request, ...resume({ lastEventId: conn.lastEventId, response: lastResponse }) };
      }
    }
    conn.readyState = 2;
    controller.abort();
    if (onclose) onclose();
  }

  conn.closed = run();
  return conn;
}

// Header values are byte strings: an id with characters beyond Latin-1 would make fetch throw
// (and the connection retry forever). Sending its UTF-8 bytes, one per character, puts on the
// wire exactly what a native EventSource sends.
function headerValue(text) {
  return /^[\x20-\x7e]*$/.test(text) ? text : String.fromCharCode(...new TextEncoder().encode(text));
}

function cancelBody(response) {
  if (response.body) response.body.cancel().catch(() => {});
}

/** How much of a refusal's body an SSEError keeps. */
const MAX_ERROR_BODY = 4096;

/** The first `limit` characters of a response body (bounded, whatever the server sends). */
async function readSome(response, limit) {
  if (!response.body || typeof response.body.getReader !== 'function') {
    try {
      return (await response.text()).slice(0, limit);
    } catch {
      return '';
    }
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  try {
    while (text.length < limit) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
  } catch {
    // A body cut short still says what it said so far.
  } finally {
    reader.cancel().catch(() => {});
  }
  return text.slice(0, limit);
}

/**
 * A drop-in for the standard EventSource (same constructor, `readyState`, `onopen`,
 * `onmessage`, `onerror`, `addEventListener` for named events, `close()`, MessageEvent with
 * `lastEventId`), built on connect(). The init dictionary also takes `headers`, `method` and
 * `body`, which the standard class cannot send.
 */
export class EventSource extends EventTarget {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSED = 2;

  constructor(url, init = {}) {
    super();
    const base = globalThis.location ? globalThis.location.href : undefined;
    this.url = new URL(String(url), base).href;
    this.withCredentials = Boolean(init.withCredentials);
    this.readyState = EventSource.CONNECTING;
    this.onopen = null;
    this.onmessage = null;
    this.onerror = null;
    const origin = new URL(this.url).origin;
    this._conn = connect(this.url, {
      method: init.method,
      headers: init.headers,
      body: init.body,
      credentials: this.withCredentials ? 'include' : 'same-origin',
      retry: init.retry,
      maxRetry: init.maxRetry,
      fetch: init.fetch,
      random: init.random,
      sleep: init.sleep,
      onopen: () => {
        this.readyState = EventSource.OPEN;
        this._fire(new Event('open'));
      },
      onmessage: (e) => {
        this._fire(new MessageEvent(e.type, { data: e.data, lastEventId: e.id, origin }));
      },
      onerror: (_error, { willRetry }) => {
        this.readyState = willRetry ? EventSource.CONNECTING : EventSource.CLOSED;
        this._fire(new Event('error'));
      },
      onclose: () => {
        // Ending without an error report means a 204: the standard fails the connection
        // with an error event there, which code written for EventSource waits for.
        if (this.readyState !== EventSource.CLOSED) {
          this.readyState = EventSource.CLOSED;
          this._fire(new Event('error'));
        }
      },
    });
  }

  get CONNECTING() {
    return 0;
  }
  get OPEN() {
    return 1;
  }
  get CLOSED() {
    return 2;
  }

  /** Stops the connection; no event is delivered after this. */
  close() {
    this.readyState = EventSource.CLOSED;
    this._conn.close();
  }

  _fire(event) {
    if (this.readyState === EventSource.CLOSED && event.type !== 'error') return;
    const handler = this['on' + event.type];
    if (typeof handler === 'function') handler.call(this, event);
    this.dispatchEvent(event);
  }
}

// ---- Markdown for model output ----------------------------------------------------------

const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

// Inline rules work on already escaped text, so they can only ever add the tags below; a
// link's URL must start with http:// or https:// (no javascript:, data:, or relative tricks).
function inline(escaped) {
  const codes = [];
  let s = escaped.replace(/`([^`]+)`/g, (_, code) => {
    codes.push(code);
    return `\u0000${codes.length - 1}\u0000`;
  });
  s = s.replace(/\[([^\]]+)\]\((https?:\/\/[^\s)]+)\)/g, (_, text, href) => {
    return `<a href="${href}" rel="noopener noreferrer nofollow" target="_blank">${text}</a>`;
  });
  s = s.replace(/\*\*([^*]+)\*\*/g, '<strong>$1</strong>');
  s = s.replace(/(^|[^*\w])\*([^*\s][^*]*?)\*(?!\w)/g, '$1<em>$2</em>');
  s = s.replace(/(^|[^_\w])_([^_\s][^_]*?)_(?!\w)/g, '$1<em>$2</em>');
  return s.replace(/\u0000(\d+)\u0000/g, (_, i) => `<code>${codes[Number(i)]}</code>`);
}

/**
 * Renders model output as HTML: everything is escaped first, then a small subset is turned
 * into tags (paragraphs, headings, bullet and numbered lists, fenced code, `code`, **bold**,
 * *italic*, links to http/https only). Unfinished constructs (an open code fence while the
 * answer streams) render sensibly. Never produces markup from the input itself.
 */
export function renderMarkdown(text) {
  const lines = String(text).replace(/\r\n?/g, '\n').replace(/\u0000/g, '\uFFFD').split('\n');
  const out = [];
  let para = [];
  let list = null;
  const flushPara = () => {
    if (para.length) out.push(`<p>${para.map((l) => inline(escapeHtml(l))).join('<br>')}</p>`);
    para = [];
  };
  const flushList = () => {
    if (list) out.push(`<${list.tag}>${list.items.map((i) => `<li>${inline(escapeHtml(i))}</li>`).join('')}</${list.tag}>`);
    list = null;
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const fence = /^\s*```(.*)$/.exec(line);
    if (fence) {
      flushPara();
      flushList();
      const code = [];
      i++;
      while (i < lines.length && !/^\s*```\s*$/.test(lines[i])) code.push(lines[i++]);
      const lang = fence[1].trim().replace(/[^\w+-]/g, '');
      const cls = lang ? ` class="language-${lang}"` : '';
      out.push(`<pre><code${cls}>${escapeHtml(code.join('\n'))}</code></pre>`);
      continue;
    }
    const heading = /^(#{1,6})\s+(.*)$/.exec(line);
    if (heading) {
      flushPara();
      flushList();
      const level = heading[1].length;
      out.push(`<h${level}>${inline(escapeHtml(heading[2]))}</h${level}>`);
      continue;
    }
    const item = /^\s*(?:([-*+])|(\d+)[.)])\s+(.*)$/.exec(line);
    if (item) {
      flushPara();
      const tag = item[1] ? 'ul' : 'ol';
      if (!list || list.tag !== tag) {
        flushList();
        list = { tag, items: [] };
      }
      list.items.push(item[3]);
      continue;
    }
    if (line.trim() === '') {
      flushPara();
      flushList();
      continue;
    }
    flushList();
    para.push(line);
  }
  flushPara();
  flushList();
  return out.join('\n');
}
