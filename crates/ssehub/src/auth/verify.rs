//! Token verification: signature, time, audience, issuer, then claims to grants.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use super::cache::TokenCache;
use super::grants::{self, Grants};
use super::keys::VerifyingKey;
use super::source::{self, TokenSource};
use super::{AuthError, OpenTopics, Role};
use crate::topic::SelectorCache;

/// Default cookie carrying the token for browsers.
pub const DEFAULT_COOKIE_NAME: &str = "mercureAuthorization";

/// Authorization settings (from `ssehub serve` flags).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct AuthConfig {
    /// Verifies publishers' tokens (`--publisher-jwt-key`, `--publisher-jwt-alg`).
    pub publisher_key: Arc<VerifyingKey>,
    /// Verifies subscribers' tokens; the publisher key when `None`.
    pub subscriber_key: Option<Arc<VerifyingKey>>,
    /// Trusted `iss` values for 1.0 tokens; empty means `iss` is not checked.
    pub issuers: Vec<String>,
    /// The `aud` 1.0 tokens must carry. [`crate::run`] sets it to the hub's URL from its
    /// listen address when it is `None` (never from a request, whose `Host` the client
    /// chooses); an [`Authorizer`] without one refuses every 1.0 token.
    pub resource_identifier: Option<String>,
    /// Cookie carrying the token for browsers.
    pub cookie_name: String,
    /// Whether subscribers may connect without a token (public updates only).
    pub anonymous: bool,
    /// Topics subscribers without a token may read when `anonymous` is off (`--demo`).
    pub open_topics: OpenTopics,
    /// Origins allowed to publish with cookie authentication (`*` allows any).
    pub publish_origins: Vec<String>,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
    /// Where token selectors are compiled and matched; share it with the hub so
    /// token grants and subscriptions intern into the same table.
    pub selector_cache: Arc<SelectorCache>,
}

impl AuthConfig {
    /// Defaults around a publisher key: subscribers share it, no issuer check,
    /// no resource identifier (see the field), cookie `mercureAuthorization`, no anonymous
    /// subscribers, no cookie publishing origins, 5 s leeway.
    pub fn new(publisher_key: VerifyingKey) -> Self {
        AuthConfig {
            publisher_key: Arc::new(publisher_key),
            subscriber_key: None,
            issuers: Vec::new(),
            resource_identifier: None,
            cookie_name: DEFAULT_COOKIE_NAME.to_owned(),
            anonymous: false,
            open_topics: OpenTopics::default(),
            publish_origins: Vec::new(),
            leeway: Duration::from_secs(5),
            selector_cache: Arc::new(SelectorCache::default()),
        }
    }
}

/// Verifies tokens and turns them into [`Grants`]. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct Authorizer {
    /// The settings; swapped whole by [`Authorizer::replace`] (SIGHUP), read once per check
    /// so that one token is judged by one version of them.
    config: ArcSwap<AuthConfig>,
    /// Shared with the hub; it outlives every replacement of the settings.
    selector_cache: Arc<SelectorCache>,
    /// Tokens verified under the settings in `config` (see `cache`), replaced with them: a
    /// token the new settings refuse (a rotated key, a new issuer) is never answered from it.
    verified: ArcSwap<TokenCache>,
}

/// What the JOSE header says, decoded before any key is chosen.
struct Header {
    alg: Algorithm,
    typ: Option<String>,
    kid: Option<String>,
}

fn malformed(reason: impl Into<String>) -> AuthError {
    AuthError::MalformedToken {
        reason: reason.into(),
    }
}

fn read_header(token: &str, role: Role) -> Result<Header, AuthError> {
    let parts = token.split('.').count();
    if parts != 3 {
        return Err(malformed(format!(
            "expected a JWS with three dot-separated parts, found {parts}"
        )));
    }
    let encoded = token.split('.').next().unwrap_or_default();
    let bytes = URL_SAFE_NO_PAD
        .decode(encoded.trim_end_matches('='))
        .map_err(|e| malformed(format!("header is not base64url: {e}")))?;
    let header: Map<String, Value> = serde_json::from_slice(&bytes)
        .map_err(|e| malformed(format!("header is not a JSON object: {e}")))?;
    let alg_name = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("header has no alg"))?;
    let alg = alg_name
        .parse::<Algorithm>()
        .map_err(|_| AuthError::WrongAlgorithm {
            alg: alg_name.to_owned(),
            role,
            allowed: "signed algorithms only".to_owned(),
        })?;
    // RFC 7515 section 4.1.11: extensions marked critical must be understood, and
    // this hub understands none.
    if header.contains_key("crit") {
        return Err(malformed(
            "header lists critical extensions (crit), none are supported",
        ));
    }
    let text = |name: &str| header.get(name).and_then(Value::as_str).map(str::to_owned);
    Ok(Header {
        alg,
        typ: text("typ"),
        kid: text("kid"),
    })
}

fn is_access_token_type(typ: Option<&str>) -> bool {
    // RFC 9068: "at+jwt", media-type prefix optional, compared case-insensitively.
    typ.is_some_and(|t| {
        let t = t.to_ascii_lowercase();
        t == "at+jwt" || t == "application/at+jwt"
    })
}

/// A NumericDate claim as whole seconds.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, AuthError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match (v.as_u64(), v.as_f64()) {
            (Some(n), _) => Ok(Some(n)),
            (None, Some(f)) if f.is_finite() && f >= 0.0 => Ok(Some(f as u64)),
            _ => Err(malformed(format!(
                "{name} must be a non-negative number of seconds"
            ))),
        },
    }
}

fn render_claim(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "missing".to_owned(),
        Some(v) => v.to_string(),
    }
}

impl Authorizer {
    /// Wraps the settings.
    pub fn new(config: AuthConfig) -> Self {
        Authorizer {
            selector_cache: config.selector_cache.clone(),
            config: ArcSwap::from_pointee(config),
            verified: ArcSwap::from_pointee(TokenCache::default()),
        }
    }

    /// The settings now.
    pub fn config(&self) -> Arc<AuthConfig> {
        self.config.load_full()
    }

    /// Replaces the settings for every check that starts from now on (keys, issuers,
    /// origins...); checks under way finish with the old ones. The selector cache stays.
    pub fn replace(&self, mut config: AuthConfig) {
        config.selector_cache = self.selector_cache.clone();
        // Settings first, then the empty cache; a check loads them in the opposite order
        // (`verify_at`), so a check that sees the new cache also sees the new settings, and
        // one that ran on the old settings can only fill the old cache, which is dropped.
        self.config.store(Arc::new(config));
        self.verified.store(Arc::new(TokenCache::default()));
    }

    /// The selector cache token grants are compiled into.
    pub fn selector_cache(&self) -> &Arc<SelectorCache> {
        &self.selector_cache
    }

    /// The audience 1.0 tokens must carry: the configured resource identifier.
    pub fn audience(&self) -> Option<String> {
        self.config.load().resource_identifier.clone()
    }

    /// Finds the request's token; see [`source::extract_token`].
    ///
    /// # Errors
    ///
    /// As [`source::extract_token`].
    pub fn extract_token(
        &self,
        headers: &http::HeaderMap,
        query: Option<&str>,
    ) -> Result<Option<(String, TokenSource)>, AuthError> {
        source::extract_token(headers, query, &self.config.load().cookie_name)
    }

    /// Checks a publish's origin when its token came from a cookie; see
    /// [`source::check_publish_origin`].
    ///
    /// # Errors
    ///
    /// [`AuthError::OriginNotAllowed`].
    pub fn check_publish_origin(
        &self,
        headers: &http::HeaderMap,
        source: TokenSource,
    ) -> Result<(), AuthError> {
        source::check_publish_origin(headers, source, &self.config.load().publish_origins)
    }

    /// Grants for a request that may or may not carry a token: publishers need one;
    /// subscribers without one get [`Grants::anonymous`] when anonymous access is on, else
    /// the grants of the open topics ([`AuthConfig::open_topics`]) if any.
    ///
    /// # Errors
    ///
    /// [`AuthError::MissingToken`], [`AuthError::AnonymousNotAllowed`], or as
    /// [`Authorizer::verify`].
    pub fn authorize(&self, token: Option<&str>, role: Role) -> Result<Grants, AuthError> {
        let config = self.config.load();
        match (token, role) {
            (Some(t), _) => self.verify(t, role),
            (None, Role::Subscriber) if config.anonymous => {
                Ok(Grants::anonymous(config.selector_cache.clone()))
            }
            (None, Role::Subscriber) if !config.open_topics.is_empty() => {
                Grants::open(&config.open_topics, config.selector_cache.clone())
            }
            (None, Role::Subscriber) => Err(AuthError::AnonymousNotAllowed),
            (None, Role::Publisher) => Err(AuthError::MissingToken {
                role,
                cookie: config.cookie_name.clone(),
            }),
        }
    }

    /// Verifies `token` for `role` now. 1.0 tokens must name [`Authorizer::audience`].
    ///
    /// # Errors
    ///
    /// The [`AuthError`] naming the first check that failed.
    pub fn verify(&self, token: &str, role: Role) -> Result<Grants, AuthError> {
        self.verify_at(token, role, SystemTime::now())
    }

    /// [`Authorizer::verify`] at a given time (for tests and replays).
    ///
    /// # Errors
    ///
    /// As [`Authorizer::verify`].
    pub fn verify_at(&self, token: &str, role: Role, now: SystemTime) -> Result<Grants, AuthError> {
        let verified = self.verified.load_full();
        let config = self.config.load_full();
        let token = token.trim();
        if let Some(grants) = verified.get(role, token, now, config.leeway) {
            return Ok(grants);
        }
        let (grants, nbf) = self.verify_uncached(&config, token, role, now)?;
        verified.insert(role, token, &grants, nbf);
        Ok(grants)
    }

    /// Tokens verified and remembered (see `cache`); for tests.
    #[cfg(test)]
    pub(super) fn cached_tokens(&self) -> usize {
        self.verified.load().len()
    }

    /// [`Authorizer::verify_at`] without the cache: the grants and the token's `nbf`.
    fn verify_uncached(
        &self,
        config: &AuthConfig,
        token: &str,
        role: Role,
        now: SystemTime,
    ) -> Result<(Grants, Option<u64>), AuthError> {
        let header = read_header(token, role)?;
        let key = key_of(config, role).select(header.alg, header.kid.as_deref(), role)?;

        // The library checks the signature only; time, audience and issuer are
        // checked below so each failure gets its own precise message.
        let mut validation = Validation::new(header.alg);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let data =
            jsonwebtoken::decode::<Value>(token, key, &validation).map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature
                | ErrorKind::InvalidEcdsaKey
                | ErrorKind::InvalidRsaKey(_)
                | ErrorKind::InvalidEddsaKey => AuthError::BadSignature { role },
                ErrorKind::InvalidAlgorithm => AuthError::WrongAlgorithm {
                    alg: format!("{:?}", header.alg),
                    role,
                    allowed: super::keys::alg_list(&key_of(config, role).algorithms()),
                },
                _ => malformed(e.to_string()),
            })?;
        let Value::Object(claims) = data.claims else {
            return Err(malformed("claims are not a JSON object"));
        };

        let v1 = is_access_token_type(header.typ.as_deref());
        if !v1
            && claims.contains_key("authorization_details")
            && !claims.contains_key("mercure")
            && !claims.contains_key("https://mercure.rocks/")
        {
            return Err(AuthError::WrongTokenType {
                reason: format!(
                    "the token carries authorization_details but its header typ is {}, 1.0 tokens need typ at+jwt",
                    header
                        .typ
                        .as_deref()
                        .map_or("missing".to_owned(), |t| format!("{t:?}"))
                ),
            });
        }

        let now_secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let leeway = config.leeway.as_secs();
        let exp = numeric_date(&claims, "exp")?;
        match exp {
            Some(exp) if now_secs > exp.saturating_add(leeway) => {
                return Err(AuthError::Expired {
                    exp,
                    ago: now_secs - exp,
                });
            }
            None if v1 => return Err(AuthError::MissingExp),
            _ => {}
        }
        let nbf = numeric_date(&claims, "nbf")?;
        if let Some(nbf) = nbf
            && nbf > now_secs.saturating_add(leeway)
        {
            return Err(AuthError::NotYetValid {
                nbf,
                in_secs: nbf - now_secs,
            });
        }

        let mut grants = if v1 {
            let audience = config
                .resource_identifier
                .as_deref()
                .ok_or(AuthError::NoResourceIdentifier)?;
            let aud_ok = match claims.get("aud") {
                Some(Value::String(a)) => a == audience,
                Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(audience)),
                _ => false,
            };
            if !aud_ok {
                return Err(AuthError::WrongAudience {
                    expected: audience.to_owned(),
                    got: render_claim(claims.get("aud")),
                });
            }
            if !config.issuers.is_empty() {
                let iss = claims.get("iss").and_then(Value::as_str);
                if !iss.is_some_and(|i| config.issuers.iter().any(|t| t == i)) {
                    return Err(AuthError::UntrustedIssuer {
                        got: render_claim(claims.get("iss")),
                        trusted: config.issuers.join(", "),
                    });
                }
            }
            grants::from_authorization_details(&claims, &config.selector_cache)?
        } else {
            grants::from_mercure_claim(&claims, &config.selector_cache)?
        };
        grants.expires_at = exp.map(|e| UNIX_EPOCH + Duration::from_secs(e));
        grants.subject = claims.get("sub").and_then(Value::as_str).map(str::to_owned);
        Ok((grants, nbf))
    }
}

/// The key that verifies `role`'s tokens.
fn key_of(config: &AuthConfig, role: Role) -> &VerifyingKey {
    match (role, &config.subscriber_key) {
        (Role::Subscriber, Some(k)) => k,
        _ => &config.publisher_key,
    }
}
