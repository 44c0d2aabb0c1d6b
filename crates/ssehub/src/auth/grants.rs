//! What a verified token allows, and the parsing of both claim formats into it.
//!
//! 0.x tokens carry `{"mercure": {"publish": [...], "subscribe": [...], "payload": ...}}`
//! (also under the claim name `https://mercure.rocks/`), with 0.x selectors (`*`,
//! exact, URI templates). 1.0 tokens carry RFC 9396 `authorization_details`, each
//! Mercure entry listing actions and topic matchers (exact or URL pattern). Both end
//! up as the same [`Grants`]; a malformed Mercure claim rejects the whole token,
//! never part of it, since partial acceptance would silently change what it allows.

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{Map, Value};

use super::{AuthError, OpenTopics};
use crate::topic::{Selector, SelectorCache, SelectorKind};

/// Most selectors one token may carry (all lists together); each one may compile a
/// pattern, so an unbounded list would be a cheap way to burn hub CPU.
pub const MAX_TOKEN_SELECTORS: usize = 256;

/// Authorization detail `type` values recognised as Mercure's: the one in
/// ssehub's protocol notes, and the one of the latest Mercure draft.
const MERCURE_DETAIL_TYPES: [&str; 2] = ["https://mercure.rocks/authorization-detail", "mercure"];

/// Which claim format a token used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenFormat {
    /// No token (anonymous subscriber).
    Anonymous,
    /// 0.x `mercure` claim.
    Mercure,
    /// 1.0 `at+jwt` with `authorization_details`.
    AuthorizationDetails,
}

/// What a request may do, from its verified token.
#[derive(Debug, Clone)]
pub struct Grants {
    /// Selectors of topics the holder may publish to.
    pub publish: Vec<Arc<Selector>>,
    /// Selectors of private topics the holder may receive.
    pub subscribe: Vec<Arc<Selector>>,
    /// The token's payload (0.x `mercure.payload`, or the first 1.0 subscribe
    /// detail's); see [`Grants::payload_for`] for the per-subscription 1.0 rule.
    pub payload: Option<Value>,
    /// When the token expires; a subscription must end then.
    pub expires_at: Option<SystemTime>,
    /// The token's `sub`, used to identify subscribers.
    pub subject: Option<String>,
    /// Which claim format the token used.
    pub format: TokenFormat,
    /// 1.0 subscribe details in token order, for per-subscription payloads.
    subscribe_details: Vec<(Vec<Arc<Selector>>, Option<Value>)>,
    /// Memoizes matching against the selectors above.
    cache: Arc<SelectorCache>,
    /// For a subscriber without a token on a hub with [`super::OpenTopics`]: the prefixes its
    /// selectors must stay under. `None`: no such limit.
    confined_to: Option<Vec<String>>,
}

impl Grants {
    /// No rights: what an anonymous subscriber gets (public updates only).
    pub fn anonymous(cache: Arc<SelectorCache>) -> Self {
        Grants {
            publish: Vec::new(),
            subscribe: Vec::new(),
            payload: None,
            expires_at: None,
            subject: None,
            format: TokenFormat::Anonymous,
            subscribe_details: Vec::new(),
            cache,
            confined_to: None,
        }
    }

    /// What a subscriber without a token gets on a hub that opens `open` (and is not
    /// anonymous): its selectors confined to the open prefixes, the open private topics granted.
    ///
    /// # Errors
    ///
    /// [`AuthError::InvalidClaims`] when an open selector does not parse.
    pub(crate) fn open(open: &OpenTopics, cache: Arc<SelectorCache>) -> Result<Self, AuthError> {
        let subscribe = open.compile_subscribe(&cache)?;
        let mut grants = Grants::anonymous(cache);
        grants.subscribe = subscribe;
        grants.confined_to = Some(open.prefixes.clone());
        Ok(grants)
    }

    /// Checks a subscription's selectors against the part of the topic space these grants
    /// confine the holder to; always passes for a token or on an anonymous hub.
    ///
    /// # Errors
    ///
    /// [`AuthError::TopicNotOpen`] naming the first selector outside it.
    pub fn check_selectors<'a>(
        &self,
        selectors: impl IntoIterator<Item = &'a Selector>,
    ) -> Result<(), AuthError> {
        match &self.confined_to {
            None => Ok(()),
            Some(prefixes) => super::open::check_confined(prefixes, selectors),
        }
    }

    /// Whether the holder may publish to `topic`.
    pub fn can_publish(&self, topic: &str) -> bool {
        self.publish.iter().any(|s| self.cache.matches(s, topic))
    }

    /// Whether the holder may publish to every one of `topics` (a publish needs its
    /// canonical and every alternate topic granted).
    pub fn can_publish_all<T: AsRef<str>>(&self, topics: &[T]) -> bool {
        topics.iter().all(|t| self.can_publish(t.as_ref()))
    }

    /// [`Grants::can_publish_all`], naming the first refused topic.
    ///
    /// # Errors
    ///
    /// [`AuthError::TopicNotGranted`] with the refused topic and what the token does grant.
    pub fn check_publish<T: AsRef<str>>(&self, topics: &[T]) -> Result<(), AuthError> {
        match topics.iter().find(|t| !self.can_publish(t.as_ref())) {
            None => Ok(()),
            Some(t) => Err(AuthError::TopicNotGranted {
                topic: t.as_ref().to_owned(),
                detail: self.describe_publish(),
            }),
        }
    }

    /// Whether the holder may receive a private update with these topics: true when
    /// the grant matches any of them.
    pub fn can_subscribe<T: AsRef<str>>(&self, topics: &[T]) -> bool {
        self.cache.matches_any(&self.subscribe, topics)
    }

    /// The payload for a subscription made with `selector` (its own matcher string).
    /// For 1.0 tokens, the payload of the first subscribe detail whose matchers match
    /// that string as if it were a topic; for 0.x tokens, the token's payload.
    pub fn payload_for(&self, selector: &str) -> Option<&Value> {
        if self.format != TokenFormat::AuthorizationDetails {
            return self.payload.as_ref();
        }
        self.subscribe_details
            .iter()
            .find(|(sels, _)| sels.iter().any(|s| self.cache.matches(s, selector)))
            .and_then(|(_, payload)| payload.as_ref())
    }

    fn describe_publish(&self) -> String {
        if self.publish.is_empty() {
            return match self.format {
                TokenFormat::Anonymous => "no token was presented".to_owned(),
                TokenFormat::Mercure => {
                    "the token grants no publish rights (its mercure.publish claim is missing or empty)"
                        .to_owned()
                }
                TokenFormat::AuthorizationDetails => {
                    "the token grants no publish rights (no mercure authorization_details entry has the publish action)"
                        .to_owned()
                }
            };
        }
        const SHOWN: usize = 5;
        let mut shown: Vec<String> = self
            .publish
            .iter()
            .take(SHOWN)
            .map(|s| {
                let src = s.source();
                match src.char_indices().nth(80) {
                    Some((cut, _)) => format!("{:?}...", &src[..cut]),
                    None => format!("{src:?}"),
                }
            })
            .collect();
        if self.publish.len() > SHOWN {
            shown.push(format!("and {} more", self.publish.len() - SHOWN));
        }
        format!("the token may publish to {}", shown.join(", "))
    }
}

fn invalid(reason: impl Into<String>) -> AuthError {
    AuthError::InvalidClaims {
        reason: reason.into(),
    }
}

/// Counts selectors across a token's lists and enforces [`MAX_TOKEN_SELECTORS`].
struct Budget(usize);

impl Budget {
    fn take(&mut self, n: usize) -> Result<(), AuthError> {
        self.0 += n;
        if self.0 > MAX_TOKEN_SELECTORS {
            return Err(invalid(format!(
                "the token carries more than {MAX_TOKEN_SELECTORS} topic selectors"
            )));
        }
        Ok(())
    }
}

fn selector_list(
    claim: &Map<String, Value>,
    name: &str,
    cache: &SelectorCache,
    budget: &mut Budget,
) -> Result<Vec<Arc<Selector>>, AuthError> {
    let items = match claim.get(name) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(invalid(format!(
                "mercure.{name} must be an array of strings"
            )));
        }
    };
    budget.take(items.len())?;
    items
        .iter()
        .map(|item| {
            let s = item
                .as_str()
                .ok_or_else(|| invalid(format!("mercure.{name} must be an array of strings")))?;
            cache
                .topic(s)
                .map_err(|e| invalid(format!("mercure.{name}: {e}")))
        })
        .collect()
}

/// Builds grants from a 0.x token's claims.
pub(crate) fn from_mercure_claim(
    claims: &Map<String, Value>,
    cache: &Arc<SelectorCache>,
) -> Result<Grants, AuthError> {
    let mut grants = Grants::anonymous(cache.clone());
    grants.format = TokenFormat::Mercure;
    let claim = match claims
        .get("mercure")
        .or_else(|| claims.get("https://mercure.rocks/"))
    {
        None | Some(Value::Null) => return Ok(grants),
        Some(Value::Object(claim)) => claim,
        Some(_) => return Err(invalid("the mercure claim must be a JSON object")),
    };
    let mut budget = Budget(0);
    grants.publish = selector_list(claim, "publish", cache, &mut budget)?;
    grants.subscribe = selector_list(claim, "subscribe", cache, &mut budget)?;
    grants.payload = claim.get("payload").filter(|p| !p.is_null()).cloned();
    Ok(grants)
}

fn matcher_kind(topic: &Map<String, Value>, at: &str) -> Result<SelectorKind, AuthError> {
    // The latest draft spells it `matchType` ("Exact", "URLPattern"); ssehub's
    // protocol notes and the Go hub use `match_type`. Accept both spellings.
    let raw = match (topic.get("match_type"), topic.get("matchType")) {
        (Some(v), _) | (None, Some(v)) => v,
        (None, None) => return Ok(SelectorKind::Exact),
    };
    let name = raw
        .as_str()
        .ok_or_else(|| invalid(format!("{at}: match_type must be a string")))?;
    let folded: String = name
        .chars()
        .filter(|c| *c != '_' && *c != '-')
        .collect::<String>()
        .to_ascii_lowercase();
    match folded.as_str() {
        "exact" => Ok(SelectorKind::Exact),
        "urlpattern" => Ok(SelectorKind::UrlPattern),
        _ => Err(invalid(format!(
            "{at}: unsupported match_type {name:?} (use \"exact\" or \"urlpattern\")"
        ))),
    }
}

/// Builds grants from a 1.0 token's `authorization_details`.
pub(crate) fn from_authorization_details(
    claims: &Map<String, Value>,
    cache: &Arc<SelectorCache>,
) -> Result<Grants, AuthError> {
    let mut grants = Grants::anonymous(cache.clone());
    grants.format = TokenFormat::AuthorizationDetails;
    let details = match claims.get("authorization_details") {
        None | Some(Value::Null) => return Ok(grants),
        Some(Value::Array(details)) => details,
        Some(_) => return Err(invalid("authorization_details must be an array")),
    };
    let mut budget = Budget(0);
    for (i, detail) in details.iter().enumerate() {
        let at = format!("authorization_details[{i}]");
        let detail = detail
            .as_object()
            .ok_or_else(|| invalid(format!("{at} must be an object")))?;
        // Entries of other types belong to other resource servers (RFC 9396).
        match detail.get("type").and_then(Value::as_str) {
            Some(t) if MERCURE_DETAIL_TYPES.contains(&t) => {}
            Some(_) => continue,
            None => return Err(invalid(format!("{at}.type must be a string"))),
        }
        let actions = detail
            .get("actions")
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| invalid(format!("{at}.actions must be a non-empty array")))?;
        let (mut publish, mut subscribe) = (false, false);
        for action in actions {
            match action.as_str() {
                Some("publish") => publish = true,
                Some("subscribe") => subscribe = true,
                _ => {
                    return Err(invalid(format!(
                        "{at}.actions: unsupported action {action} (use \"publish\" or \"subscribe\")"
                    )));
                }
            }
        }
        let topics = detail
            .get("topics")
            .and_then(Value::as_array)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| invalid(format!("{at}.topics must be a non-empty array")))?;
        budget.take(topics.len())?;
        let mut selectors = Vec::with_capacity(topics.len());
        for (j, topic) in topics.iter().enumerate() {
            let at = format!("{at}.topics[{j}]");
            let topic = topic.as_object().ok_or_else(|| {
                invalid(format!("{at} must be an object with a \"match\" string"))
            })?;
            let pattern = topic
                .get("match")
                .and_then(Value::as_str)
                .filter(|m| !m.is_empty())
                .ok_or_else(|| invalid(format!("{at}.match must be a non-empty string")))?;
            let kind = matcher_kind(topic, &at)?;
            let selector = cache
                .get(kind, pattern)
                .map_err(|e| invalid(format!("{at}: {e}")))?;
            selectors.push(selector);
        }
        let payload = detail.get("payload").filter(|p| !p.is_null()).cloned();
        if publish {
            grants.publish.extend(selectors.iter().cloned());
        }
        if subscribe {
            grants.subscribe.extend(selectors.iter().cloned());
            if grants.payload.is_none() {
                grants.payload = payload.clone();
            }
            grants.subscribe_details.push((selectors, payload));
        }
    }
    Ok(grants)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn cache() -> Arc<SelectorCache> {
        Arc::new(SelectorCache::default())
    }

    #[test]
    fn mercure_claim_under_either_name() {
        for name in ["mercure", "https://mercure.rocks/"] {
            let g = from_mercure_claim(
                &obj(json!({name: {"publish": ["https://e.com/{id}"], "subscribe": ["*"], "payload": {"u": 1}}})),
                &cache(),
            )
            .unwrap();
            assert!(g.can_publish("https://e.com/1"));
            assert!(!g.can_publish("https://f.com/1"));
            assert!(g.can_subscribe(&["anything"]));
            assert_eq!(g.payload_for("x"), Some(&json!({"u": 1})));
        }
    }

    #[test]
    fn missing_mercure_claim_grants_nothing_and_says_so() {
        let g = from_mercure_claim(&obj(json!({"sub": "x"})), &cache()).unwrap();
        assert!(!g.can_publish("t"));
        let err = g.check_publish(&["t"]).unwrap_err();
        assert!(
            err.to_string().contains("mercure.publish claim is missing"),
            "{err}"
        );
    }

    #[test]
    fn malformed_mercure_claims() {
        for bad in [
            json!({"mercure": "x"}),
            json!({"mercure": {"publish": "*"}}),
            json!({"mercure": {"publish": [1]}}),
            json!({"mercure": {"subscribe": ["https://e.com/{id"]}}),
        ] {
            assert!(
                matches!(
                    from_mercure_claim(&obj(bad.clone()), &cache()),
                    Err(AuthError::InvalidClaims { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn too_many_selectors() {
        let many: Vec<String> = (0..=MAX_TOKEN_SELECTORS).map(|i| format!("t{i}")).collect();
        let err =
            from_mercure_claim(&obj(json!({"mercure": {"publish": many}})), &cache()).unwrap_err();
        assert!(err.to_string().contains("more than"), "{err}");
    }

    #[test]
    fn check_publish_names_topic_and_grants() {
        let g = from_mercure_claim(
            &obj(json!({"mercure": {"publish": ["https://e.com/a", "https://e.com/b"]}})),
            &cache(),
        )
        .unwrap();
        assert!(
            g.check_publish(&["https://e.com/a", "https://e.com/b"])
                .is_ok()
        );
        assert!(!g.can_publish_all(&["https://e.com/a", "https://e.com/c"]));
        match g.check_publish(&["https://e.com/a", "https://e.com/c"]) {
            Err(AuthError::TopicNotGranted { topic, detail }) => {
                assert_eq!(topic, "https://e.com/c");
                assert!(detail.contains("\"https://e.com/a\""), "{detail}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn authorization_details_both_spellings() {
        let claims = obj(json!({"authorization_details": [
            {"type": "https://mercure.rocks/authorization-detail", "actions": ["publish"],
             "topics": [{"match": "https://e.com/books/:id", "match_type": "urlpattern"}]},
            {"type": "mercure", "actions": ["subscribe"],
             "topics": [{"match": "https://e.com/x", "matchType": "Exact"},
                        {"match": "https://e.com/y/:id", "matchType": "URLPattern"}],
             "payload": {"p": 1}},
            {"type": "https://other.example/detail", "topics": "whatever"}
        ]}));
        let g = from_authorization_details(&claims, &cache()).unwrap();
        assert!(g.can_publish("https://e.com/books/1"));
        assert!(!g.can_publish("https://e.com/x"));
        assert!(g.can_subscribe(&["nope", "https://e.com/y/2"]));
        assert!(!g.can_subscribe(&["https://e.com/books/1"]));
        assert_eq!(g.payload, Some(json!({"p": 1})));
    }

    #[test]
    fn authorization_details_star_and_payload_order() {
        let claims = obj(json!({"authorization_details": [
            {"type": "mercure", "actions": ["subscribe"], "topics": [{"match": "https://e.com/foo"}], "payload": {"n": 1}},
            {"type": "mercure", "actions": ["subscribe"], "topics": [{"match": "https://e.com/bar/:id", "match_type": "urlpattern"}], "payload": {"n": 2}},
            {"type": "mercure", "actions": ["subscribe", "publish"], "topics": [{"match": "*"}], "payload": {"n": 3}}
        ]}));
        let g = from_authorization_details(&claims, &cache()).unwrap();
        assert_eq!(g.payload_for("https://e.com/foo"), Some(&json!({"n": 1})));
        assert_eq!(
            g.payload_for("https://e.com/bar/:id"),
            Some(&json!({"n": 2}))
        );
        assert_eq!(g.payload_for("https://e.com/other"), Some(&json!({"n": 3})));
        assert!(g.can_publish("anything"));
    }

    #[test]
    fn malformed_authorization_details_reject_the_token() {
        let d = |detail: Value| obj(json!({"authorization_details": [detail]}));
        for bad in [
            obj(json!({"authorization_details": {}})),
            d(json!("x")),
            d(json!({"actions": ["publish"], "topics": [{"match": "*"}]})),
            d(json!({"type": "mercure", "actions": [], "topics": [{"match": "*"}]})),
            d(json!({"type": "mercure", "actions": ["delete"], "topics": [{"match": "*"}]})),
            d(json!({"type": "mercure", "actions": ["publish"], "topics": []})),
            d(json!({"type": "mercure", "actions": ["publish"], "topics": ["*"]})),
            d(json!({"type": "mercure", "actions": ["publish"], "topics": [{"match": ""}]})),
            d(
                json!({"type": "mercure", "actions": ["publish"], "topics": [{"match": "x", "match_type": "regex"}]}),
            ),
            d(
                json!({"type": "mercure", "actions": ["publish"], "topics": [{"match": "https://e.com/(", "match_type": "urlpattern"}]}),
            ),
        ] {
            assert!(
                matches!(
                    from_authorization_details(&bad, &cache()),
                    Err(AuthError::InvalidClaims { .. })
                ),
                "{bad:?}"
            );
        }
    }
}
