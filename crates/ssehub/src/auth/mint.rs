//! Minting tokens in either claim format, for `ssehub token` and tests.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use super::AuthError;
use super::keys::Key;

/// Which claim format to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ClaimFormat {
    /// 0.x: `{"mercure": {"publish", "subscribe", "payload"}}`, header `typ: JWT`.
    #[default]
    Mercure,
    /// 1.0: header `typ: at+jwt`, `authorization_details` entries.
    AuthorizationDetails,
}

/// How a minted topic matcher is interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum MatchType {
    /// Exact match in 1.0; a 0.x selector (exact, `*` or URI template) in the
    /// `mercure` format, written verbatim.
    #[default]
    Exact,
    /// A WHATWG URL pattern (1.0 only).
    UrlPattern,
}

/// A topic matcher to write into a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintTopic {
    /// The matcher string.
    pub pattern: String,
    /// How it is interpreted.
    pub match_type: MatchType,
}

impl MintTopic {
    /// An exact (or, in the `mercure` format, 0.x) selector.
    pub fn exact(pattern: impl Into<String>) -> Self {
        MintTopic {
            pattern: pattern.into(),
            match_type: MatchType::Exact,
        }
    }

    /// A URL pattern (1.0 only).
    pub fn url_pattern(pattern: impl Into<String>) -> Self {
        MintTopic {
            pattern: pattern.into(),
            match_type: MatchType::UrlPattern,
        }
    }
}

/// What to put in a minted token. Outside this crate, start from
/// `MintClaims::default()` and set fields.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct MintClaims {
    /// Claim format.
    pub format: ClaimFormat,
    /// Topics the holder may publish to.
    pub publish: Vec<MintTopic>,
    /// Private topics the holder may receive.
    pub subscribe: Vec<MintTopic>,
    /// Attached to the holder's subscriptions.
    pub payload: Option<Value>,
    /// Lifetime from `issued_at`; no `exp` claim when `None`.
    pub expires_in: Option<Duration>,
    /// `iat` and the base of `exp`; the current time when `None`.
    pub issued_at: Option<SystemTime>,
    /// `iss`.
    pub issuer: Option<String>,
    /// `aud` (1.0 hubs require their resource identifier here).
    pub audience: Option<String>,
    /// `sub`.
    pub subject: Option<String>,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

fn signing_error(reason: impl Into<String>) -> AuthError {
    AuthError::Signing {
        reason: reason.into(),
    }
}

/// Signs a token carrying `claims` with `key`.
///
/// # Errors
///
/// [`AuthError::Signing`] when a URL pattern is requested in the `mercure` format
/// (0.x has none) or the key cannot sign.
pub fn mint(key: &Key, claims: MintClaims) -> Result<String, AuthError> {
    let issued_at = claims.issued_at.unwrap_or_else(SystemTime::now);
    let mut body = Map::new();
    body.insert("iat".into(), json!(unix(issued_at)));
    if let Some(lifetime) = claims.expires_in {
        body.insert("exp".into(), json!(unix(issued_at + lifetime)));
    }
    for (name, value) in [
        ("iss", &claims.issuer),
        ("aud", &claims.audience),
        ("sub", &claims.subject),
    ] {
        if let Some(v) = value {
            body.insert(name.into(), json!(v));
        }
    }

    let mut header = jsonwebtoken::Header::new(key.algorithm());
    header.kid = key.kid().map(str::to_owned);
    match claims.format {
        ClaimFormat::Mercure => {
            let strings = |topics: &[MintTopic]| -> Result<Vec<String>, AuthError> {
                topics
                    .iter()
                    .map(|t| match t.match_type {
                        MatchType::Exact => Ok(t.pattern.clone()),
                        MatchType::UrlPattern => Err(signing_error(format!(
                            "url pattern {:?} needs the authorization-details format; 0.x tokens only know exact selectors and uri templates",
                            t.pattern
                        ))),
                    })
                    .collect()
            };
            let mut mercure = Map::new();
            mercure.insert("publish".into(), json!(strings(&claims.publish)?));
            mercure.insert("subscribe".into(), json!(strings(&claims.subscribe)?));
            if let Some(p) = &claims.payload {
                mercure.insert("payload".into(), p.clone());
            }
            body.insert("mercure".into(), Value::Object(mercure));
        }
        ClaimFormat::AuthorizationDetails => {
            header.typ = Some("at+jwt".to_owned());
            body.insert("jti".into(), json!(uuid::Uuid::now_v7().urn().to_string()));
            let topics = |topics: &[MintTopic]| -> Vec<Value> {
                topics
                    .iter()
                    .map(|t| match t.match_type {
                        MatchType::Exact => json!({"match": t.pattern}),
                        MatchType::UrlPattern => {
                            json!({"match": t.pattern, "match_type": "urlpattern"})
                        }
                    })
                    .collect()
            };
            let mut details = Vec::new();
            for (action, list) in [
                ("publish", &claims.publish),
                ("subscribe", &claims.subscribe),
            ] {
                if list.is_empty() {
                    continue;
                }
                let mut detail = json!({
                    "type": "https://mercure.rocks/authorization-detail",
                    "actions": [action],
                    "topics": topics(list),
                });
                if action == "subscribe"
                    && let Some(p) = &claims.payload
                {
                    detail["payload"] = p.clone();
                }
                details.push(detail);
            }
            body.insert("authorization_details".into(), Value::Array(details));
        }
    }
    jsonwebtoken::encode(&header, &Value::Object(body), key.encoding())
        .map_err(|e| signing_error(e.to_string()))
}
