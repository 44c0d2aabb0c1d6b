//! Topic selectors: which topics a subscription (or a token's grant) covers.
//!
//! Three generations of syntax meet here:
//! - 0.x `topic=` selectors and 0.x `mercure.publish`/`mercure.subscribe` claims:
//!   `*` matches everything, otherwise the selector matches the identical topic,
//!   otherwise, when it contains `{`, it is an RFC 6570 URI template compiled to an
//!   anchored regular expression (the approach of the reference Go hub).
//! - 1.0 `match=`/`match_exact=`: exact, byte-for-byte comparison (`*` = all).
//! - 1.0 `match_urlpattern=`: a WHATWG URL Pattern. Relative patterns and relative
//!   topics are resolved against a base URL (the hub's URL when configured).
//!
//! Matching runs for every update against every subscriber's selectors, so a
//! [`SelectorCache`] interns compiled selectors (thousands of subscribers with the
//! same selector string share one `Arc<Selector>`) and memoizes
//! `(selector, topic) -> bool` for the kinds that cost more than a string compare.
//! Both are bounded. Fan-out should [`SelectorCache::prepare`] an update's topics once
//! and test each subscriber with [`SelectorCache::matches_any_prepared`], so the topic
//! is hashed once per update rather than once per subscriber. Both regex engines in play (the `regex` crate for templates,
//! and the one inside `urlpattern`) match in linear time, so a hostile pattern cannot
//! trigger catastrophic backtracking; pattern length is capped as well.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use url::Url;

/// Longest selector accepted, in bytes. Patterns compile to regular expressions, so
/// an unbounded pattern would let one request spend unbounded CPU and memory.
pub const MAX_SELECTOR_LEN: usize = 2048;

/// Memory ceiling handed to the regex compiler for one template.
const TEMPLATE_REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Ceiling on the lazy DFA cache of one template (per thread using it); thousands
/// of interned templates must not each grow the default 2 MiB.
const TEMPLATE_DFA_SIZE_LIMIT: usize = 1 << 18;

/// Base used for URL patterns when the hub's own URL is not configured. Relative
/// patterns and relative topics are both resolved against it, so relative-to-relative
/// matching works without knowing the real hub URL.
const DEFAULT_BASE_URL: &str = "https://hub.invalid/";

/// Why a selector could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SelectorError {
    /// The selector string is longer than [`MAX_SELECTOR_LEN`].
    #[error("selector is {len} bytes long, the limit is {max}")]
    TooLong {
        /// Length of the rejected selector.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The selector contains a control character (forbidden by the Mercure spec).
    #[error("selector contains a control character at byte {at}")]
    ControlCharacter {
        /// Byte offset of the offending character.
        at: usize,
    },
    /// The selector looks like an RFC 6570 URI template but is not a valid one.
    #[error("invalid uri template {template:?}: {reason} (at byte {at})")]
    InvalidTemplate {
        /// The rejected template.
        template: String,
        /// What is wrong.
        reason: &'static str,
        /// Byte offset where the problem was found.
        at: usize,
    },
    /// The selector is not a valid WHATWG URL pattern.
    #[error("invalid url pattern {pattern:?}: {reason}")]
    InvalidUrlPattern {
        /// The rejected pattern.
        pattern: String,
        /// What the URL pattern parser reported.
        reason: String,
    },
}

/// Which syntax a selector string is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SelectorKind {
    /// 0.x `topic=` rules: `*`, exact, or URI template when it contains `{`.
    Topic,
    /// 1.0 exact match (`match=`, `match_exact=`); `*` matches all.
    Exact,
    /// 1.0 WHATWG URL Pattern (`match_urlpattern=`); `*` matches all.
    UrlPattern,
}

impl SelectorKind {
    fn index(self) -> usize {
        match self {
            SelectorKind::Topic => 0,
            SelectorKind::Exact => 1,
            SelectorKind::UrlPattern => 2,
        }
    }
}

/// A compiled topic selector.
#[derive(Debug)]
#[non_exhaustive]
pub enum Selector {
    /// `*`: every topic.
    All,
    /// The identical topic, byte for byte.
    Exact(String),
    /// An RFC 6570 URI template (0.x).
    Template(Template),
    /// A WHATWG URL Pattern (1.0).
    UrlPattern(UrlPatternSelector),
}

/// Source of unique ids for compiled selectors, used as memo keys. Ids are never
/// reused, so a memo entry can never be mistaken for a later selector's.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// An RFC 6570 URI template compiled to an anchored regular expression.
pub struct Template {
    /// Memo key; unique per compiled selector.
    id: u64,
    /// The template as written, also matched exactly (0.x rule: exact match first).
    source: String,
    /// `\A...\z` anchored expansion matcher.
    regex: regex::Regex,
}

impl Template {
    /// The template as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    fn matches(&self, topic: &str) -> bool {
        topic == self.source || self.regex.is_match(topic)
    }
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Template")
            .field("source", &self.source)
            .field("regex", &self.regex.as_str())
            .finish()
    }
}

/// A compiled WHATWG URL Pattern.
pub struct UrlPatternSelector {
    /// Memo key; unique per compiled selector.
    id: u64,
    /// The pattern as written.
    source: String,
    /// Relative topics are resolved against this URL before matching.
    base: Url,
    /// The compiled pattern (boxed: it is large, and most selectors are exact).
    pattern: Box<urlpattern::UrlPattern>,
}

impl UrlPatternSelector {
    /// The pattern as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    fn matches(&self, topic: &str) -> bool {
        // A topic that is not a URL (even relative to the base) cannot match a URL pattern.
        let Ok(url) = self.base.join(topic) else {
            return false;
        };
        self.pattern
            .test(urlpattern::UrlPatternMatchInput::Url(url))
            .unwrap_or(false)
    }
}

impl fmt::Debug for UrlPatternSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UrlPatternSelector")
            .field("source", &self.source)
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

fn check_input(s: &str) -> Result<(), SelectorError> {
    if s.len() > MAX_SELECTOR_LEN {
        return Err(SelectorError::TooLong {
            len: s.len(),
            max: MAX_SELECTOR_LEN,
        });
    }
    if let Some((at, _)) = s.char_indices().find(|(_, c)| c.is_control()) {
        return Err(SelectorError::ControlCharacter { at });
    }
    Ok(())
}

fn default_base() -> &'static Url {
    static BASE: OnceLock<Url> = OnceLock::new();
    BASE.get_or_init(|| Url::parse(DEFAULT_BASE_URL).expect("the default base URL is valid"))
}

impl Selector {
    /// Parses a 0.x selector (`topic=` query parameter or a 0.x token claim).
    ///
    /// `*` matches every topic; a string containing `{` is an RFC 6570 URI template
    /// (which also matches the identical topic); anything else matches exactly.
    ///
    /// # Errors
    ///
    /// [`SelectorError::InvalidTemplate`] for a malformed template,
    /// [`SelectorError::TooLong`] or [`SelectorError::ControlCharacter`] for input
    /// outside the protocol's limits.
    pub fn parse_topic(s: &str) -> Result<Selector, SelectorError> {
        check_input(s)?;
        if s == "*" {
            return Ok(Selector::All);
        }
        if !s.contains('{') {
            return Ok(Selector::Exact(s.to_owned()));
        }
        let regex = compile_template(s)?;
        Ok(Selector::Template(Template {
            id: next_id(),
            source: s.to_owned(),
            regex,
        }))
    }

    /// Builds a 1.0 exact selector (`match=`, `match_exact=`); `*` matches all.
    ///
    /// # Errors
    ///
    /// [`SelectorError::TooLong`] or [`SelectorError::ControlCharacter`].
    pub fn exact(s: &str) -> Result<Selector, SelectorError> {
        check_input(s)?;
        if s == "*" {
            return Ok(Selector::All);
        }
        Ok(Selector::Exact(s.to_owned()))
    }

    /// Compiles a 1.0 URL Pattern selector (`match_urlpattern=`); `*` matches all.
    ///
    /// Relative patterns and relative topics are resolved against `base` (the hub's
    /// URL); without one, a placeholder base is used, so relative patterns still
    /// match relative topics.
    ///
    /// # Errors
    ///
    /// [`SelectorError::InvalidUrlPattern`] when the pattern does not parse,
    /// [`SelectorError::TooLong`] or [`SelectorError::ControlCharacter`].
    pub fn url_pattern(s: &str, base: Option<&Url>) -> Result<Selector, SelectorError> {
        check_input(s)?;
        if s == "*" {
            return Ok(Selector::All);
        }
        let base = base.unwrap_or_else(|| default_base()).clone();
        let invalid = |reason: String| SelectorError::InvalidUrlPattern {
            pattern: s.to_owned(),
            reason,
        };
        let init = urlpattern::UrlPatternInit::parse_constructor_string::<regex::Regex>(
            s,
            Some(base.clone()),
        )
        .map_err(|e| invalid(e.to_string()))?;
        // The spec forbids ignoreCase; the default options leave it off.
        let pattern = urlpattern::UrlPattern::parse(init, Default::default())
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Selector::UrlPattern(UrlPatternSelector {
            id: next_id(),
            source: s.to_owned(),
            base,
            pattern: Box::new(pattern),
        }))
    }

    /// Parses `s` according to `kind`.
    ///
    /// # Errors
    ///
    /// As [`Selector::parse_topic`], [`Selector::exact`] or [`Selector::url_pattern`].
    pub fn parse(
        kind: SelectorKind,
        s: &str,
        base: Option<&Url>,
    ) -> Result<Selector, SelectorError> {
        match kind {
            SelectorKind::Topic => Selector::parse_topic(s),
            SelectorKind::Exact => Selector::exact(s),
            SelectorKind::UrlPattern => Selector::url_pattern(s, base),
        }
    }

    /// Whether this selector matches `topic`. Not memoized: see [`SelectorCache::matches`].
    pub fn matches(&self, topic: &str) -> bool {
        match self {
            Selector::All => true,
            Selector::Exact(s) => s == topic,
            Selector::Template(t) => t.matches(topic),
            Selector::UrlPattern(p) => p.matches(topic),
        }
    }

    /// The selector as written (`*` for [`Selector::All`]).
    pub fn source(&self) -> &str {
        match self {
            Selector::All => "*",
            Selector::Exact(s) => s,
            Selector::Template(t) => &t.source,
            Selector::UrlPattern(p) => &p.source,
        }
    }

    /// Memo key for selectors whose matching costs more than a string compare.
    fn memo_id(&self) -> Option<u64> {
        match self {
            Selector::All | Selector::Exact(_) => None,
            Selector::Template(t) => Some(t.id),
            Selector::UrlPattern(p) => Some(p.id),
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.source())
    }
}

// --- RFC 6570 templates -------------------------------------------------------

/// RFC 3986 unreserved characters, as a regex character-class body.
const CLASS_UNRESERVED: &str = r"A-Za-z0-9\-._~";
/// RFC 3986 reserved characters (gen-delims and sub-delims), as a class body.
const CLASS_RESERVED: &str = r":/?#\[\]@!$&'()*+,;=";

struct Operator {
    /// Text emitted before the first defined variable.
    first: &'static str,
    /// Text between values.
    sep: &'static str,
    /// `name=value` form (`;`, `?`, `&`).
    named: bool,
    /// Reserved characters pass unencoded (`+`, `#`).
    allow_reserved: bool,
}

fn operator(c: char) -> Option<Operator> {
    let op = |first, sep, named, allow_reserved| Operator {
        first,
        sep,
        named,
        allow_reserved,
    };
    Some(match c {
        '+' => op("", ",", false, true),
        '#' => op("#", ",", false, true),
        '.' => op(".", ".", false, false),
        '/' => op("/", "/", false, false),
        ';' => op(";", ";", true, false),
        '?' => op("?", "&", true, false),
        '&' => op("&", "&", true, false),
        _ => return None,
    })
}

struct VarSpec {
    explode: bool,
}

/// Regex for one value: a run of allowed characters or percent-encoded octets.
/// Unreserved-only operators also admit `,` (list items of a single variable) and,
/// when named, `=` (the `name=value` form).
fn value_class(op: &Operator, named_or_explode: bool) -> String {
    let mut class = String::from("(?:[");
    if op.allow_reserved {
        class.push_str(CLASS_UNRESERVED);
        class.push_str(CLASS_RESERVED);
    } else {
        class.push(',');
        if named_or_explode {
            class.push('=');
        }
        class.push_str(CLASS_UNRESERVED);
    }
    class.push_str("]|%[0-9A-Fa-f]{2})*");
    class
}

fn expression_regex(op: &Operator, vars: &[VarSpec]) -> String {
    let explode = vars.iter().any(|v| v.explode);
    let mut out = String::from("(?:");
    out.push_str(&regex::escape(op.first));
    out.push_str(&value_class(op, op.named || vars[0].explode));
    if vars.len() > 1 || explode {
        out.push_str("(?:");
        out.push_str(&regex::escape(op.sep));
        out.push_str(&value_class(op, op.named || explode));
        out.push(')');
        if explode {
            out.push('*');
        } else {
            out.push_str(&format!("{{0,{}}}", vars.len() - 1));
        }
    }
    // Every variable may be undefined, in which case the expression expands to nothing.
    out.push_str(")?");
    out
}

fn template_error(template: &str, reason: &'static str, at: usize) -> SelectorError {
    SelectorError::InvalidTemplate {
        template: template.to_owned(),
        reason,
        at,
    }
}

fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

/// Parses `varspec *( "," varspec )` (RFC 6570 section 2.3) starting at `start`.
fn parse_varlist(template: &str, body: &str, start: usize) -> Result<Vec<VarSpec>, SelectorError> {
    let mut vars = Vec::new();
    let mut offset = start;
    for spec in body.split(',') {
        let err = |reason| template_error(template, reason, offset);
        let (name, modifier) = match spec.find([':', '*']) {
            Some(i) => (&spec[..i], &spec[i..]),
            None => (spec, ""),
        };
        if name.is_empty() {
            return Err(err("empty variable name"));
        }
        let bytes = name.as_bytes();
        let mut i = 0;
        let mut prev_dot = true;
        while i < bytes.len() {
            match bytes[i] {
                b'%' => {
                    if i + 2 >= bytes.len() {
                        return Err(err("truncated percent-encoding in variable name"));
                    }
                    if !(is_hex(bytes[i + 1]) && is_hex(bytes[i + 2])) {
                        return Err(err("bad percent-encoding in variable name"));
                    }
                    i += 3;
                    prev_dot = false;
                    continue;
                }
                b'.' if !prev_dot => prev_dot = true,
                b'.' => return Err(err("misplaced '.' in variable name")),
                b if b.is_ascii_alphanumeric() || b == b'_' => prev_dot = false,
                _ => return Err(err("invalid character in variable name")),
            }
            i += 1;
        }
        if prev_dot {
            return Err(err("variable name ends with '.'"));
        }
        let explode = match modifier {
            "" => false,
            "*" => true,
            m => {
                let digits = &m[1..];
                let valid = m.starts_with(':')
                    && (1..=4).contains(&digits.len())
                    && digits.bytes().all(|b| b.is_ascii_digit())
                    && !digits.starts_with('0');
                if !valid {
                    return Err(err("prefix modifier must be ':' followed by 1 to 9999"));
                }
                // Prefix lengths count characters of the unencoded value; matching
                // treats them as an ordinary variable, like the reference Go hub.
                false
            }
        };
        vars.push(VarSpec { explode });
        offset += spec.len() + 1;
    }
    Ok(vars)
}

fn compile_template(template: &str) -> Result<regex::Regex, SelectorError> {
    let mut pattern = String::from(r"\A");
    let mut literal_start = 0;
    let mut i = 0;
    let bytes = template.as_bytes();
    while i < bytes.len() {
        match bytes[i] {
            b'{' => {
                pattern.push_str(&regex::escape(&template[literal_start..i]));
                let Some(len) = template[i + 1..].find('}') else {
                    return Err(template_error(template, "unclosed '{'", i));
                };
                let body = &template[i + 1..i + 1 + len];
                if body.contains('{') {
                    return Err(template_error(template, "nested '{'", i));
                }
                let mut chars = body.chars();
                let (op, vars_at) = match chars.next() {
                    None => return Err(template_error(template, "empty expression", i)),
                    Some('=' | ',' | '!' | '@' | '|') => {
                        return Err(template_error(template, "reserved operator", i + 1));
                    }
                    Some(c) => match operator(c) {
                        Some(op) => (op, 1),
                        None => (
                            Operator {
                                first: "",
                                sep: ",",
                                named: false,
                                allow_reserved: false,
                            },
                            0,
                        ),
                    },
                };
                let vars = parse_varlist(template, &body[vars_at..], i + 1 + vars_at)?;
                pattern.push_str(&expression_regex(&op, &vars));
                i += len + 2;
                literal_start = i;
            }
            b'}' => return Err(template_error(template, "unmatched '}'", i)),
            _ => i += 1,
        }
    }
    pattern.push_str(&regex::escape(&template[literal_start..]));
    pattern.push_str(r"\z");
    regex::RegexBuilder::new(&pattern)
        .size_limit(TEMPLATE_REGEX_SIZE_LIMIT)
        .dfa_size_limit(TEMPLATE_DFA_SIZE_LIMIT)
        .build()
        .map_err(|_| template_error(template, "template is too complex", 0))
}

// --- Cache --------------------------------------------------------------------

/// Number of independently locked memo shards; spreads lock contention when many
/// fan-out tasks match at once.
const MEMO_SHARDS: usize = 16;

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

impl AsRef<Selector> for Selector {
    fn as_ref(&self) -> &Selector {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn topic(s: &str) -> Selector {
        Selector::parse_topic(s).unwrap()
    }

    #[test]
    fn star_matches_everything() {
        assert!(topic("*").matches("https://example.com/a"));
        assert!(topic("*").matches(""));
        assert!(Selector::exact("*").unwrap().matches("anything"));
        assert!(Selector::url_pattern("*", None).unwrap().matches("x"));
    }

    #[test]
    fn exact_is_byte_for_byte() {
        let s = topic("https://example.com/books/1");
        assert!(s.matches("https://example.com/books/1"));
        assert!(!s.matches("https://example.com/books/10"));
        assert!(!s.matches("HTTPS://example.com/books/1"));
        assert!(!s.matches("https://example.com/books/1/"));
        // Without '{' a selector is never a template, even with a stray '}'.
        assert!(matches!(
            topic("https://example.com/a}"),
            Selector::Exact(_)
        ));
        let e = Selector::exact("https://example.com/{id}").unwrap();
        // 1.0 exact matching never interprets braces.
        assert!(!e.matches("https://example.com/1"));
        assert!(e.matches("https://example.com/{id}"));
    }

    #[test]
    fn simple_template_matches_one_segment() {
        let s = topic("https://example.com/books/{id}");
        assert!(matches!(s, Selector::Template(_)));
        assert!(s.matches("https://example.com/books/1"));
        assert!(s.matches("https://example.com/books/abc-def_~.x"));
        assert!(s.matches("https://example.com/books/caf%C3%A9"));
        assert!(!s.matches("https://example.com/books/1/reviews"));
        assert!(!s.matches("https://example.com/books/a?b"));
        assert!(!s.matches("https://example.org/books/1"));
        // Anchored at both ends.
        assert!(!s.matches("xhttps://example.com/books/1"));
        // The template itself matches exactly (0.x: exact comparison first).
        assert!(s.matches("https://example.com/books/{id}"));
    }

    #[test]
    fn template_literals_are_not_regex() {
        let s = topic("https://example.com/a.b/{id}");
        assert!(s.matches("https://example.com/a.b/1"));
        assert!(!s.matches("https://example.com/aXb/1"));
    }

    #[test]
    fn reserved_expansion_crosses_slashes() {
        let s = topic("https://example.com/{+path}");
        assert!(s.matches("https://example.com/a/b/c"));
        assert!(s.matches("https://example.com/a/b?c=d"));
        let plain = topic("https://example.com/{path}");
        assert!(!plain.matches("https://example.com/a/b/c"));
    }

    #[test]
    fn fragment_expansion() {
        let s = topic("https://example.com/page{#section}");
        assert!(s.matches("https://example.com/page#intro/part"));
        assert!(s.matches("https://example.com/page"));
        assert!(!s.matches("https://example.com/pageintro"));
    }

    #[test]
    fn path_segment_and_label_expansion() {
        let s = topic("https://example.com{/seg}");
        assert!(s.matches("https://example.com/books"));
        assert!(!s.matches("https://example.com/books/1"));
        let exploded = topic("https://example.com{/seg*}");
        assert!(exploded.matches("https://example.com/books/1/x"));
        let two = topic("https://example.com{/a,b}");
        assert!(two.matches("https://example.com/x/y"));
        assert!(!two.matches("https://example.com/x/y/z"));
        let label = topic("https://example{.dom}/x");
        assert!(label.matches("https://example.com/x"));
        assert!(!label.matches("https://example/com/x"));
    }

    #[test]
    fn query_expansion() {
        let s = topic("https://example.com/search{?q,lang}");
        assert!(s.matches("https://example.com/search?q=cat"));
        assert!(s.matches("https://example.com/search?q=cat&lang=fr"));
        assert!(s.matches("https://example.com/search"));
        assert!(!s.matches("https://example.com/search?q=cat&lang=fr&x=1"));
        let cont = topic("https://example.com/search?q=1{&page}");
        assert!(cont.matches("https://example.com/search?q=1&page=2"));
        let params = topic("https://example.com/map{;x,y}");
        assert!(params.matches("https://example.com/map;x=1;y=2"));
    }

    #[test]
    fn malformed_templates_are_typed_errors() {
        for (bad, reason) in [
            ("https://example.com/{id", "unclosed '{'"),
            ("https://example.com/{}", "empty expression"),
            ("https://example.com/{=x}", "reserved operator"),
            ("https://example.com/{|x}", "reserved operator"),
            (
                "https://example.com/{a b}",
                "invalid character in variable name",
            ),
            ("https://example.com/{a{b}}", "nested '{'"),
            ("https://example.com/{a}}", "unmatched '}'"),
            (
                "https://example.com/{a:0}",
                "prefix modifier must be ':' followed by 1 to 9999",
            ),
            (
                "https://example.com/{a:10000}",
                "prefix modifier must be ':' followed by 1 to 9999",
            ),
            ("https://example.com/{a.}", "variable name ends with '.'"),
            (
                "https://example.com/{a..b}",
                "misplaced '.' in variable name",
            ),
            ("https://example.com/{.}", "empty variable name"),
            ("https://example.com/{a,}", "empty variable name"),
            (
                "https://example.com/{%4}",
                "truncated percent-encoding in variable name",
            ),
            (
                "https://example.com/{%zz}",
                "bad percent-encoding in variable name",
            ),
        ] {
            match Selector::parse_topic(bad) {
                Err(SelectorError::InvalidTemplate { reason: r, .. }) => {
                    assert_eq!(r, reason, "{bad}")
                }
                other => panic!("{bad}: expected invalid template, got {other:?}"),
            }
        }
    }

    #[test]
    fn valid_modifiers_and_names() {
        for ok in [
            "https://example.com/{a:3}",
            "https://example.com/{a*}",
            "https://example.com/{a.b_c%20}",
            "https://example.com/{x,y,z}",
        ] {
            assert!(Selector::parse_topic(ok).is_ok(), "{ok}");
        }
        assert!(topic("https://example.com/{a:3}").matches("https://example.com/abc"));
    }

    #[test]
    fn too_long_and_control_characters_rejected() {
        let long = "a".repeat(MAX_SELECTOR_LEN + 1);
        assert!(matches!(
            Selector::parse_topic(&long),
            Err(SelectorError::TooLong { .. })
        ));
        assert!(matches!(
            Selector::exact("a\nb"),
            Err(SelectorError::ControlCharacter { at: 1 })
        ));
        assert!(matches!(
            Selector::url_pattern("https://e.com/\u{7f}", None),
            Err(SelectorError::ControlCharacter { .. })
        ));
    }

    #[test]
    fn url_pattern_matches_named_groups() {
        let s = Selector::url_pattern("https://example.com/books/:id", None).unwrap();
        assert!(s.matches("https://example.com/books/1"));
        assert!(!s.matches("https://example.com/books/1/reviews"));
        assert!(!s.matches("https://example.org/books/1"));
        assert!(!s.matches("not a url at all \u{0}"));
        let wildcard = Selector::url_pattern("https://example.com/books/*", None).unwrap();
        assert!(wildcard.matches("https://example.com/books/1/reviews"));
    }

    #[test]
    fn url_pattern_resolves_relative_against_base() {
        let s = Selector::url_pattern("/.well-known/mercure/subscriptions/:t/:s", None).unwrap();
        assert!(s.matches("/.well-known/mercure/subscriptions/a/b"));
        assert!(!s.matches("/other/a/b"));
        let base = Url::parse("https://hub.example.com/.well-known/mercure").unwrap();
        let s = Selector::url_pattern("/books/:id", Some(&base)).unwrap();
        assert!(s.matches("https://hub.example.com/books/1"));
        assert!(s.matches("/books/1"));
        assert!(!s.matches("https://elsewhere.example.com/books/1"));
    }

    #[test]
    fn malformed_url_patterns_are_typed_errors() {
        for bad in [
            "https://example.com/books/:id(",
            "https://example.com/(a(?=b))",
            "https://example.com/:",
        ] {
            assert!(
                matches!(
                    Selector::url_pattern(bad, None),
                    Err(SelectorError::InvalidUrlPattern { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn cache_interns_and_shares() {
        let cache = SelectorCache::default();
        let a = cache.topic("https://example.com/{id}").unwrap();
        let b = cache.topic("https://example.com/{id}").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        // Same string under a different kind is a different selector.
        let c = cache.exact("https://example.com/{id}").unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        assert!(matches!(*c, Selector::Exact(_)));
        let all1 = cache.topic("*").unwrap();
        let all2 = cache.url_pattern("*").unwrap();
        assert!(Arc::ptr_eq(&all1, &all2));
        assert!(cache.topic("https://example.com/{").is_err());
    }

    #[test]
    fn cache_intern_table_is_bounded_and_keeps_selectors_in_use() {
        let cache = SelectorCache::new(CacheLimits {
            selectors: 4,
            matches: 64,
        });
        let held: Vec<_> = (0..4)
            .map(|i| cache.exact(&format!("t{i}")).unwrap())
            .collect();
        // Table full of selectors in use: a new one is handed out but not interned.
        let extra = cache.exact("extra").unwrap();
        assert_eq!(cache.interned_len(), 4);
        assert!(!Arc::ptr_eq(&extra, &cache.exact("extra").unwrap()));
        // Once released, old entries make room.
        drop(held);
        let again = cache.exact("extra").unwrap();
        assert!(Arc::ptr_eq(&again, &cache.exact("extra").unwrap()));
        assert!(cache.interned_len() <= 4);
    }

    #[test]
    fn cache_memoizes_and_stays_bounded() {
        let cache = SelectorCache::new(CacheLimits {
            selectors: 16,
            matches: MEMO_SHARDS * 2,
        });
        let s = cache.topic("https://example.com/{id}").unwrap();
        assert!(cache.matches(&s, "https://example.com/1"));
        assert!(cache.matches(&s, "https://example.com/1"));
        assert!(!cache.matches(&s, "https://example.com/1/2"));
        assert!(cache.memo_len() >= 1);
        for i in 0..1000 {
            assert!(cache.matches(&s, &format!("https://example.com/{i}")));
        }
        assert!(cache.memo_len() <= MEMO_SHARDS * 2);
        // Exact selectors bypass the memo.
        let before = cache.memo_len();
        let e = cache.exact("x").unwrap();
        assert!(cache.matches(&e, "x"));
        assert_eq!(cache.memo_len(), before);
    }

    #[test]
    fn cache_memo_distinguishes_selectors_with_equal_source() {
        let cache = SelectorCache::default();
        // Compiled outside the cache: same source, different ids.
        let t = Selector::parse_topic("https://example.com/{id}").unwrap();
        let u = Selector::url_pattern("https://example.com/{id}", None).unwrap();
        assert!(cache.matches(&t, "https://example.com/1"));
        // The URL pattern reads `{id}` as an optional group of the literal "id".
        assert!(!cache.matches(&u, "https://example.com/1"));
    }

    #[test]
    fn cache_base_url_resolves_relative_patterns() {
        let cache =
            SelectorCache::default().with_base_url(Url::parse("https://hub.example.com/").unwrap());
        let s = cache.url_pattern("/books/:id").unwrap();
        assert!(cache.matches(&s, "https://hub.example.com/books/1"));
        assert!(cache.matches(&s, "/books/1"));
        let plain = SelectorCache::default().url_pattern("/books/:id").unwrap();
        assert!(!plain.matches("https://hub.example.com/books/1"));
    }

    #[test]
    fn shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<SelectorCache>();
        assert_send_sync::<Arc<Selector>>();
    }

    #[test]
    fn matches_any_covers_alternate_topics() {
        let cache = SelectorCache::default();
        let sels = vec![
            cache.exact("https://example.com/a").unwrap(),
            cache.url_pattern("https://example.com/b/:id").unwrap(),
        ];
        assert!(cache.matches_any(&sels, &["https://x/1", "https://example.com/b/2"]));
        assert!(!cache.matches_any(&sels, &["https://x/1"]));
        assert!(!cache.matches_any::<Arc<Selector>, &str>(&[], &["https://example.com/a"]));
        let t = cache.topic("https://example.com/c/{id}").unwrap();
        let prepared = [
            cache.prepare("https://x/1"),
            cache.prepare("https://example.com/c/9"),
        ];
        assert_eq!(prepared[1].as_str(), "https://example.com/c/9");
        assert!(cache.matches_any_prepared(std::slice::from_ref(&t), &prepared));
        assert!(!cache.matches_any_prepared(&[t], &prepared[..1]));
        assert!(cache.matches_any_prepared(&sels, &[cache.prepare("https://example.com/a")]));
    }

    proptest! {
        #[test]
        fn exact_and_star_never_panic(sel in any::<String>(), t in any::<String>()) {
            if let Ok(s) = Selector::exact(&sel) {
                prop_assert_eq!(s.matches(&t), sel == "*" || sel == t);
            }
            if let Ok(s) = Selector::parse_topic(&sel) {
                let _ = s.matches(&t);
            }
            prop_assert!(Selector::exact("*").unwrap().matches(&t));
        }

        #[test]
        fn template_and_urlpattern_parsing_never_panic(sel in "[a-z:/{}+#.?&;,*()%=|!@ ]{0,40}", t in ".{0,40}") {
            if let Ok(s) = Selector::parse_topic(&sel) {
                let _ = s.matches(&t);
            }
            if let Ok(s) = Selector::url_pattern(&sel, None) {
                let _ = s.matches(&t);
            }
        }
    }
}
