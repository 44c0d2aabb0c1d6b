//! Interned selectors and a bounded memo of `(selector, topic) -> bool`.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};

use url::Url;

use super::error::SelectorError;
use super::selector::{Selector, SelectorKind};

/// Number of independently locked memo shards; spreads lock contention when many
/// fan-out tasks match at once.
pub(super) const MEMO_SHARDS: usize = 16;

/// Sizes of a [`SelectorCache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheLimits {
    /// Maximum number of interned selectors (per kind).
    pub selectors: usize,
    /// Maximum number of memoized `(selector, topic)` results.
    pub matches: usize,
}

impl Default for CacheLimits {
    fn default() -> Self {
        CacheLimits {
            selectors: 10_000,
            matches: 65_536,
        }
    }
}

/// A topic with its memo hash computed once; see [`SelectorCache::prepare`].
#[derive(Debug, Clone, Copy)]
pub struct PreparedTopic<'a> {
    /// The topic.
    topic: &'a str,
    /// Keyed hash of the topic, specific to the cache that prepared it.
    hash: u64,
}

impl<'a> PreparedTopic<'a> {
    /// The topic.
    pub fn as_str(&self) -> &'a str {
        self.topic
    }
}

/// Passes already-random `u64` memo keys through instead of hashing them again.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed; fold anything else in for completeness.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type MemoMap = HashMap<u64, MemoEntry, BuildHasherDefault<IdentityHasher>>;

/// One memo entry; the full key is kept to rule out hash collisions.
struct MemoEntry {
    selector: u64,
    topic: Box<str>,
    matched: bool,
}

/// Interns compiled selectors and memoizes match results. Thread-safe; share it
/// behind an `Arc`.
///
/// Bounds: the intern table holds at most `limits.selectors` entries per kind; when
/// full, entries no one else holds are dropped, and if every entry is in use, new
/// selectors are handed out without being interned. Each memo shard holds at most
/// `limits.matches / 16` results and is cleared when full (cheap, and a hot working
/// set refills quickly).
pub struct SelectorCache {
    /// Interned selectors, one table per [`SelectorKind`], keyed by source string.
    interned: Mutex<[HashMap<Box<str>, Arc<Selector>>; 3]>,
    /// Memoized results, keyed by a hash of (selector id, topic).
    memo: [Mutex<MemoMap>; MEMO_SHARDS],
    /// Keyed topic hash for memo keys, so clients cannot aim topics at one slot.
    hasher: RandomState,
    /// Resolves relative URL patterns and topics.
    base: Option<Url>,
    /// Size bounds.
    limits: CacheLimits,
    /// Shared `*` selector, so the common wildcard costs no allocation.
    all: Arc<Selector>,
}

impl fmt::Debug for SelectorCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelectorCache")
            .field("base", &self.base.as_ref().map(Url::as_str))
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Default for SelectorCache {
    fn default() -> Self {
        SelectorCache::new(CacheLimits::default())
    }
}

/// Locks a mutex, recovering from poisoning: the tables hold only caches, which
/// stay valid whatever a panicking thread was doing.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SelectorCache {
    /// Creates an empty cache with the given bounds.
    pub fn new(limits: CacheLimits) -> Self {
        SelectorCache {
            interned: Mutex::new([HashMap::new(), HashMap::new(), HashMap::new()]),
            memo: std::array::from_fn(|_| Mutex::new(MemoMap::default())),
            hasher: RandomState::new(),
            base: None,
            limits,
            all: Arc::new(Selector::All),
        }
    }

    /// Sets the hub URL that relative URL patterns and topics are resolved against.
    pub fn with_base_url(mut self, base: Url) -> Self {
        self.base = Some(base);
        self
    }

    /// Returns the compiled selector for `source`, compiling and interning it on
    /// first use.
    ///
    /// # Errors
    ///
    /// As [`Selector::parse`]. Failures are not cached.
    pub fn get(&self, kind: SelectorKind, source: &str) -> Result<Arc<Selector>, SelectorError> {
        if source == "*" {
            return Ok(self.all.clone());
        }
        if let Some(found) = lock(&self.interned)[kind.index()].get(source) {
            return Ok(found.clone());
        }
        // Compile outside the lock: compiling a pattern is the slow part.
        let compiled = Arc::new(Selector::parse(kind, source, self.base.as_ref())?);
        let mut tables = lock(&self.interned);
        let table = &mut tables[kind.index()];
        if let Some(found) = table.get(source) {
            return Ok(found.clone());
        }
        if table.len() >= self.limits.selectors {
            table.retain(|_, s| Arc::strong_count(s) > 1);
        }
        if table.len() < self.limits.selectors {
            table.insert(source.into(), compiled.clone());
        }
        Ok(compiled)
    }

    /// [`SelectorCache::get`] with 0.x rules.
    ///
    /// # Errors
    ///
    /// As [`Selector::parse_topic`].
    pub fn topic(&self, source: &str) -> Result<Arc<Selector>, SelectorError> {
        self.get(SelectorKind::Topic, source)
    }

    /// [`SelectorCache::get`] for a 1.0 exact selector.
    ///
    /// # Errors
    ///
    /// As [`Selector::exact`].
    pub fn exact(&self, source: &str) -> Result<Arc<Selector>, SelectorError> {
        self.get(SelectorKind::Exact, source)
    }

    /// [`SelectorCache::get`] for a 1.0 URL pattern.
    ///
    /// # Errors
    ///
    /// As [`Selector::url_pattern`].
    pub fn url_pattern(&self, source: &str) -> Result<Arc<Selector>, SelectorError> {
        self.get(SelectorKind::UrlPattern, source)
    }

    /// Hashes `topic` once, for matching one update against many selectors with
    /// [`SelectorCache::matches_prepared`].
    pub fn prepare<'a>(&self, topic: &'a str) -> PreparedTopic<'a> {
        PreparedTopic {
            topic,
            hash: self.hasher.hash_one(topic),
        }
    }

    /// Whether `selector` matches `topic`, memoized for templates and URL patterns.
    pub fn matches(&self, selector: &Selector, topic: &str) -> bool {
        if selector.memo_id().is_none() {
            return selector.matches(topic);
        }
        self.matches_prepared(selector, &self.prepare(topic))
    }

    /// [`SelectorCache::matches`] with the topic hashed beforehand.
    pub fn matches_prepared(&self, selector: &Selector, topic: &PreparedTopic<'_>) -> bool {
        let Some(id) = selector.memo_id() else {
            return selector.matches(topic.topic);
        };
        // The topic hash is keyed (SipHash with a random key), so mixing in the id
        // with an invertible step keeps keys unpredictable to clients choosing topics.
        let key = topic.hash ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let shard = &self.memo[((key >> 32) as usize) % MEMO_SHARDS];
        if let Some(e) = lock(shard).get(&key)
            && e.selector == id
            && &*e.topic == topic.topic
        {
            return e.matched;
        }
        let matched = selector.matches(topic.topic);
        let per_shard = (self.limits.matches / MEMO_SHARDS).max(1);
        let mut memo = lock(shard);
        if memo.len() >= per_shard {
            memo.clear();
        }
        memo.insert(
            key,
            MemoEntry {
                selector: id,
                topic: topic.topic.into(),
                matched,
            },
        );
        matched
    }

    /// Whether any of `selectors` matches any of `topics` (an update reaches a
    /// subscription when one of its topics, canonical or alternate, matches one of
    /// the subscription's selectors).
    pub fn matches_any<S, T>(&self, selectors: &[S], topics: &[T]) -> bool
    where
        S: AsRef<Selector>,
        T: AsRef<str>,
    {
        selectors
            .iter()
            .any(|s| topics.iter().any(|t| self.matches(s.as_ref(), t.as_ref())))
    }

    /// [`SelectorCache::matches_any`] with the topics hashed beforehand: prepare an
    /// update's topics once, then test every subscriber with this.
    pub fn matches_any_prepared<S>(&self, selectors: &[S], topics: &[PreparedTopic<'_>]) -> bool
    where
        S: AsRef<Selector>,
    {
        selectors
            .iter()
            .any(|s| topics.iter().any(|t| self.matches_prepared(s.as_ref(), t)))
    }

    /// Number of memoized results (for metrics and tests).
    pub fn memo_len(&self) -> usize {
        self.memo.iter().map(|s| lock(s).len()).sum()
    }

    /// Number of interned selectors across kinds (for metrics and tests).
    pub fn interned_len(&self) -> usize {
        lock(&self.interned).iter().map(HashMap::len).sum()
    }
}
