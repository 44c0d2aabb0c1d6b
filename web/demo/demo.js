// What the demo pages share: a Mercure subscription that keeps its place across reloads, and
// says so ("resumed from id …, missed N updates").
//
// The place is the last event id, kept in sessionStorage with whatever the page wants to
// restore (its prices, its lines) when the page goes away, so a reload comes back where it was
// and asks the hub for what it missed with Last-Event-ID: the hub replays it from history, then
// continues live. To say how many updates were missed, the page first asks the hub where its
// history ends now (a subscription's `Last-Event-ID` response header names the last update it
// delivered) and counts the replayed updates up to there. The hub's ids are UUIDv7, ordered by
// the time they were made on the hub, so that comparison needs no clock of the browser's.
import { connect } from '/ssehub.js';

export const HUB = '/.well-known/mercure';

/** The pages every demo page links to, in the order of its header. */
const PAGES = [['/', 'Chat'], ['/console', 'Console'], ['/demo/ticker', 'Ticker'], ['/demo/logs', 'Logs'], ['/demo/online', 'Online']];

/** Fills a page's `<nav data-demo-nav>` with the links, the page itself marked current. */
function fillNav() {
  const nav = document.querySelector('nav[data-demo-nav]');
  if (!nav) return;
  nav.replaceChildren(...PAGES.map(([href, text]) => {
    const a = Object.assign(document.createElement('a'), { href, textContent: text });
    if (href === location.pathname) a.setAttribute('aria-current', 'page');
    return a;
  }));
}
if (typeof document !== 'undefined') fillNav();

/** A topic that only serves to ask where history ends; nobody publishes to it. */
const PROBE_TOPIC = '/demo/probe';

/** The subscription URL for these topic selectors. */
export function hubUrl(topics) {
  const q = new URLSearchParams();
  for (const t of topics) q.append('topic', t);
  return `${HUB}?${q}`;
}

/** Where history ends now: the id of the newest update, `earliest` if none, or null. */
async function historyEnd() {
  const ac = new AbortController();
  try {
    const r = await fetch(hubUrl([PROBE_TOPIC]), { headers: { Accept: 'text/event-stream' }, signal: ac.signal, cache: 'no-store' });
    return r.status === 200 ? r.headers.get('Last-Event-ID') : null;
  } catch {
    return null;
  } finally {
    ac.abort();
  }
}

const UUID = /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Whether update `id` was made no later than update `end`; null when the ids cannot say. */
function notAfter(id, end) {
  if (end === 'earliest') return false;
  if (!UUID.test(id) || !UUID.test(end)) return null;
  return id <= end;
}

/**
 * Subscribes to `topics`, resuming from the place saved under `key` by an earlier load of
 * this page in this tab. Callbacks:
 * - `restore(state)`: the state `save()` returned when the page went away (before any event);
 * - `save()`: the state to keep (called when the page goes away, and every few seconds);
 * - `onupdate({type, data, id}, {missed})`: each update; `missed` is true for one published
 *   while the page was away;
 * - `onresume(text, info)`: the line to show about where the stream started;
 * - `onstate(state, detail)`: `connecting`, `open`, `reconnecting`, `closed`;
 * - `onrefused(status)`: the hub refused the subscription for good (no `--demo`).
 */
export async function subscribe({ key, topics, restore, save, onupdate, onresume, onstate, onrefused }) {
  const storageKey = `ssehub.demo.${key}`;
  let saved = null;
  try {
    saved = JSON.parse(sessionStorage.getItem(storageKey) || 'null');
  } catch {
    saved = null;
  }
  const resumeFrom = saved && typeof saved.lastEventId === 'string' && saved.lastEventId ? saved.lastEventId : '';
  if (saved && restore) restore(saved.state);
  const end = resumeFrom ? await historyEnd() : null;
  let missed = 0;
  let unknown = false;
  let counting = Boolean(resumeFrom);
  let opened = 0;
  let lastEventId = resumeFrom;

  const persist = () => {
    try {
      sessionStorage.setItem(storageKey, JSON.stringify({ lastEventId, state: save ? save() : null }));
    } catch {
      // Storage full or disabled: the next load starts afresh, which is all that is lost.
    }
  };
  addEventListener('pagehide', persist);
  setInterval(persist, 2000);

  const describe = () => {
    if (!resumeFrom) return 'live from now on (a reload resumes from the last update shown)';
    if (unknown) return `id ${resumeFrom} is no longer in history: replayed all ${missed} retained updates`;
    if (!end) return `resumed from id ${resumeFrom}`;
    const n = missed === 1 ? '1 update' : `${missed} updates`;
    return `resumed from id ${resumeFrom}, missed ${n}`;
  };
  const tell = () => onresume && onresume(describe(), { lastEventId: resumeFrom, missed, unknown });

  onstate && onstate('connecting');
  const conn = connect(hubUrl(topics), {
    lastEventId: resumeFrom,
    onopen(response) {
      opened++;
      if (opened === 1) {
        // The hub answers `earliest` for an id it no longer keeps, and replays all it has.
        unknown = Boolean(resumeFrom) && resumeFrom !== 'earliest' && response.headers.get('Last-Event-ID') === 'earliest';
        tell();
      }
      onstate && onstate('open', opened > 1 ? 'reconnected: the hub replayed what the drop missed' : '');
    },
    onmessage(event) {
      let wasMissed = false;
      if (counting) {
        const before = end ? notAfter(event.id, end) : null;
        if (before) {
          wasMissed = true;
          missed++;
          tell();
        } else {
          counting = false;
        }
      }
      if (event.id) lastEventId = event.id;
      onupdate && onupdate(event, { missed: wasMissed });
    },
    onerror(error, { willRetry }) {
      if (!willRetry && error.status >= 400 && error.status < 500) {
        onrefused && onrefused(error.status);
      }
      onstate && onstate(willRetry ? 'reconnecting' : 'closed', error.message);
    },
  });
  return conn;
}
