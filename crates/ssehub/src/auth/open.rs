//! Part of the topic space open to subscribers without a token, on a hub that otherwise asks
//! for one: what `ssehub serve --demo` opens so that its demo pages work in any browser.
//!
//! Narrower than anonymous access (`--anonymous`), which lets a subscriber without a token
//! receive every public update: here each selector it names must stay under an open prefix
//! ([`crate::topic::Selector::confined_to`]), so `*`, a template reaching outside the prefix or a
//! URL pattern is refused. Private updates stay private, except those matched by
//! [`OpenTopics::subscribe`]: the subscription events of one open topic, for a page that
//! shows who else is there.

use std::sync::Arc;

use super::AuthError;
use crate::topic::{Selector, SelectorCache};

/// Topics that subscribers without a token may read although anonymous access is off.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenTopics {
    /// Every selector of such a subscription must be confined to one of these prefixes;
    /// empty: nothing is open.
    pub prefixes: Vec<String>,
    /// 0.x selectors of private topics such a subscriber receives anyway, as if its token
    /// granted them (the subscription events of an open topic, and the list of them).
    pub subscribe: Vec<String>,
}

impl OpenTopics {
    /// Opens the topics under `prefixes`, and the private topics `subscribe` selects.
    pub fn new(prefixes: Vec<String>, subscribe: Vec<String>) -> Self {
        OpenTopics {
            prefixes,
            subscribe,
        }
    }

    /// Whether anything is open.
    pub fn is_empty(&self) -> bool {
        self.prefixes.is_empty()
    }

    /// [`OpenTopics::subscribe`] compiled (interned by `cache`, so cheap per request).
    ///
    /// # Errors
    ///
    /// [`AuthError::InvalidClaims`] naming the selector that does not parse.
    pub(crate) fn compile_subscribe(
        &self,
        cache: &SelectorCache,
    ) -> Result<Vec<Arc<Selector>>, AuthError> {
        self.subscribe
            .iter()
            .map(|s| {
                cache.topic(s).map_err(|e| AuthError::InvalidClaims {
                    reason: format!("open topic selector {s:?}: {e}"),
                })
            })
            .collect()
    }
}

/// Checks that every selector stays under one of `prefixes`.
///
/// # Errors
///
/// [`AuthError::TopicNotOpen`] naming the first selector that does not.
pub(crate) fn check_confined<'a>(
    prefixes: &[String],
    selectors: impl IntoIterator<Item = &'a Selector>,
) -> Result<(), AuthError> {
    for selector in selectors {
        if !prefixes.iter().any(|p| selector.confined_to(p)) {
            return Err(AuthError::TopicNotOpen {
                selector: selector.source().to_owned(),
                open: prefixes.join(", "),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_selectors_under_an_open_prefix_pass() {
        let cache = SelectorCache::default();
        let prefixes = vec!["/demo/".to_owned()];
        let sel = |s: &str| cache.topic(s).unwrap();
        let ok = [sel("/demo/ticker/ACME"), sel("/demo/logs{/rest}")];
        assert!(check_confined(&prefixes, ok.iter().map(|s| &**s)).is_ok());
        for refused in ["*", "/private", "{+any}", "/demo"] {
            let mixed = [sel("/demo/a"), sel(refused)];
            let err = check_confined(&prefixes, mixed.iter().map(|s| &**s)).unwrap_err();
            assert_eq!(
                err,
                AuthError::TopicNotOpen {
                    selector: refused.to_owned(),
                    open: "/demo/".to_owned()
                }
            );
        }
    }

    #[test]
    fn a_bad_open_selector_is_named() {
        let cache = SelectorCache::default();
        assert!(OpenTopics::default().is_empty());
        let bad = OpenTopics::new(vec!["/demo/".into()], vec!["/x/{".into()]);
        let err = bad.compile_subscribe(&cache).unwrap_err();
        assert!(err.to_string().contains("/x/{"), "{err}");
    }
}
