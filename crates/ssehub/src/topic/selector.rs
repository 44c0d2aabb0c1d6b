//! Compiled selectors: the three syntaxes and how each matches a topic.

use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use url::Url;

use super::error::SelectorError;
use super::template::compile_template;

/// Longest selector accepted, in bytes. Patterns compile to regular expressions, so
/// an unbounded pattern would let one request spend unbounded CPU and memory.
pub const MAX_SELECTOR_LEN: usize = 2048;

/// Base used for URL patterns when the hub's own URL is not configured. Relative
/// patterns and relative topics are both resolved against it, so relative-to-relative
/// matching works without knowing the real hub URL.
const DEFAULT_BASE_URL: &str = "https://hub.invalid/";

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
    pub(super) fn index(self) -> usize {
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

    /// Whether every topic this selector can match starts with `prefix`: an exact topic under
    /// it, or a URI template whose literal text before its first expression is (templates are
    /// anchored, so that text must open the topic). `*` and URL patterns, which resolve against
    /// a base URL, are never confined. The hub uses it to open part of the topic space to
    /// subscribers without a token ([`crate::auth::OpenTopics`]).
    pub fn confined_to(&self, prefix: &str) -> bool {
        match self {
            Selector::All | Selector::UrlPattern(_) => false,
            Selector::Exact(t) => t.starts_with(prefix),
            Selector::Template(t) => {
                let literal = t.source.find('{').map_or(&*t.source, |i| &t.source[..i]);
                literal.starts_with(prefix)
            }
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
    pub(super) fn memo_id(&self) -> Option<u64> {
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

impl AsRef<Selector> for Selector {
    fn as_ref(&self) -> &Selector {
        self
    }
}
