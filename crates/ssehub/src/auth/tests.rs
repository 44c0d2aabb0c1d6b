//! End-to-end checks of the auth layer: every [`AuthError`] produced by a real,
//! signed token (HS256, RS256, ES256, JWKS), in both claim formats.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::{AUTHORIZATION, COOKIE, ORIGIN};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::json;

use super::*;
use crate::topic::SelectorCache;

const SECRET: &str = "!ChangeThisMercureHubJWTSecretKey!";
const AUD: &str = "https://hub.example.com/.well-known/mercure";
const RSA_PUBLIC: &str = include_str!("../../tests/fixtures/rsa_public.pem");
const RSA_PRIVATE: &str = include_str!("../../tests/fixtures/rsa_private.pem");
const RSA_OTHER_PRIVATE: &str = include_str!("../../tests/fixtures/rsa_other_private.pem");
const EC_PUBLIC: &str = include_str!("../../tests/fixtures/ec_public.pem");
const EC_PRIVATE: &str = include_str!("../../tests/fixtures/ec_private.pem");
const JWKS: &str = include_str!("../../tests/fixtures/jwks.json");

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn hs_key() -> Key {
    Key::secret(SECRET.as_bytes(), None).unwrap()
}

/// The default configuration around `key`, with [`AUD`] as the resource identifier (what
/// `run` would set from the listen address).
fn config_with(key: VerifyingKey) -> AuthConfig {
    let mut config = AuthConfig::new(key);
    config.resource_identifier = Some(AUD.to_owned());
    config
}

/// The default configuration of a hub verifying HS256 tokens signed with [`SECRET`].
fn hs_config() -> AuthConfig {
    config_with(VerifyingKey::secret(SECRET.as_bytes(), None).unwrap())
}

fn hs_hub() -> Authorizer {
    Authorizer::new(hs_config())
}

/// A hub with the default configuration verifying with this key.
fn hub_with(key: VerifyingKey) -> Authorizer {
    Authorizer::new(config_with(key))
}

/// These claims minted with [`hs_key`].
fn hs_token(claims: MintClaims) -> String {
    mint(&hs_key(), claims).unwrap()
}

/// Verifies `token` for `role` at [`t0`].
fn verify(hub: &Authorizer, token: &str, role: Role) -> Result<Grants, AuthError> {
    hub.verify_at(token, role, t0())
}

/// Verifies `token` as a publisher on a fresh [`hs_hub`].
fn hs_verify(token: &str) -> Result<Grants, AuthError> {
    verify(&hs_hub(), token, Role::Publisher)
}

/// Signs any JSON as claims with [`SECRET`] under `header`, bypassing `mint`'s checks.
fn sign_raw_with(header: &jsonwebtoken::Header, claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(
        header,
        claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// [`sign_raw_with`] under a plain HS256 header.
fn sign_raw(claims: &serde_json::Value) -> String {
    sign_raw_with(&jsonwebtoken::Header::new(Algorithm::HS256), claims)
}

fn mercure(publish: &[&str], subscribe: &[&str]) -> MintClaims {
    MintClaims {
        publish: publish.iter().map(|s| MintTopic::exact(*s)).collect(),
        subscribe: subscribe.iter().map(|s| MintTopic::exact(*s)).collect(),
        issued_at: Some(t0()),
        ..MintClaims::default()
    }
}

fn v1(publish: &[MintTopic], subscribe: &[MintTopic]) -> MintClaims {
    MintClaims {
        format: ClaimFormat::AuthorizationDetails,
        publish: publish.to_vec(),
        subscribe: subscribe.to_vec(),
        issued_at: Some(t0()),
        expires_in: Some(Duration::from_secs(3600)),
        audience: Some(AUD.to_owned()),
        ..MintClaims::default()
    }
}

/// Re-encodes a token's part with different JSON, keeping the rest.
fn replace_part(token: &str, index: usize, json: &serde_json::Value) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[index] = URL_SAFE_NO_PAD.encode(json.to_string());
    parts.join(".")
}

/// Decodes a token's part as JSON.
fn decode_part(token: &str, index: usize) -> serde_json::Value {
    let parts: Vec<&str> = token.split('.').collect();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[index]).unwrap()).unwrap()
}

#[test]
fn hs256_mercure_token_grants_its_selectors() {
    let token = hs_token(mercure(&["https://e.com/books/{id}"], &["*"]));
    let g = hs_verify(&token).unwrap();
    assert_eq!(g.format, TokenFormat::Mercure);
    assert!(g.can_publish("https://e.com/books/1"));
    assert!(
        g.check_publish(&["https://e.com/books/1", "https://e.com/books/2"])
            .is_ok()
    );
    assert!(g.can_subscribe(&["anything"]));
    // 0.x: exp is optional.
    assert_eq!(g.expires_at, None);
}

#[test]
fn rs256_and_es256_tokens_verify() {
    for (private, public) in [(RSA_PRIVATE, RSA_PUBLIC), (EC_PRIVATE, EC_PUBLIC)] {
        let key = Key::from_pem(private.as_bytes(), None).unwrap();
        let token = mint(&key, mercure(&["a"], &[])).unwrap();
        let hub = hub_with(VerifyingKey::from_pem(public.as_bytes(), None).unwrap());
        assert!(
            verify(&hub, &token, Role::Publisher)
                .unwrap()
                .can_publish("a")
        );
    }
}

#[test]
fn jwks_verifies_by_kid() {
    let hub = hub_with(VerifyingKey::from_jwks(JWKS.as_bytes(), None).unwrap());
    let main = Key::from_pem(RSA_PRIVATE.as_bytes(), None)
        .unwrap()
        .with_kid("main");
    let other = Key::from_pem(RSA_OTHER_PRIVATE.as_bytes(), None)
        .unwrap()
        .with_kid("other");
    for key in [main, other] {
        let token = mint(&key, mercure(&["a"], &[])).unwrap();
        assert!(verify(&hub, &token, Role::Publisher).is_ok());
    }
    // Signed by "other" but claiming to be "main": the kid picks the key, and it fails.
    let liar = Key::from_pem(RSA_OTHER_PRIVATE.as_bytes(), None)
        .unwrap()
        .with_kid("main");
    let token = mint(&liar, mercure(&["a"], &[])).unwrap();
    assert!(matches!(
        verify(&hub, &token, Role::Publisher),
        Err(AuthError::BadSignature { .. })
    ));
    let unknown = Key::from_pem(RSA_PRIVATE.as_bytes(), None)
        .unwrap()
        .with_kid("gone");
    let token = mint(&unknown, mercure(&["a"], &[])).unwrap();
    let err = verify(&hub, &token, Role::Publisher).unwrap_err();
    assert!(matches!(err, AuthError::UnknownKey { .. }));
    assert!(err.to_string().contains("\"gone\""), "{err}");
}

#[test]
fn bad_signature() {
    let other = Key::secret(b"another secret", None).unwrap();
    let token = mint(&other, mercure(&["a"], &[])).unwrap();
    let err = hs_verify(&token).unwrap_err();
    assert_eq!(
        err,
        AuthError::BadSignature {
            role: Role::Publisher
        }
    );
    assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
    assert!(err.www_authenticate().contains("error=\"invalid_token\""));

    // Claims tampered after signing.
    let good = hs_token(mercure(&["a"], &[]));
    let forged = replace_part(&good, 1, &json!({"mercure": {"publish": ["*"]}}));
    assert!(matches!(
        hs_verify(&forged),
        Err(AuthError::BadSignature { .. })
    ));
}

#[test]
fn wrong_algorithm() {
    // An RSA-signed token against an HMAC hub.
    let rsa = Key::from_pem(RSA_PRIVATE.as_bytes(), None).unwrap();
    let token = mint(&rsa, mercure(&["a"], &[])).unwrap();
    let err = hs_verify(&token).unwrap_err();
    assert!(matches!(err, AuthError::WrongAlgorithm { .. }), "{err:?}");
    assert!(
        err.to_string().contains("RS256") && err.to_string().contains("HS256"),
        "{err}"
    );

    // Algorithm confusion: HS256 "signed" with the RSA public key must not pass.
    let confused = Key::secret(RSA_PUBLIC.as_bytes(), None).unwrap();
    let token = mint(&confused, mercure(&["*"], &[])).unwrap();
    let rsa_hub = hub_with(VerifyingKey::from_pem(RSA_PUBLIC.as_bytes(), None).unwrap());
    assert!(matches!(
        verify(&rsa_hub, &token, Role::Publisher),
        Err(AuthError::WrongAlgorithm { .. })
    ));

    // Same family, but the hub pinned HS256.
    let hs512 = Key::secret(SECRET.as_bytes(), Some(Algorithm::HS512)).unwrap();
    let token = mint(&hs512, mercure(&["a"], &[])).unwrap();
    assert!(matches!(
        hs_verify(&token),
        Err(AuthError::WrongAlgorithm { .. })
    ));

    // alg none.
    let good = hs_token(mercure(&["a"], &[]));
    let none = replace_part(&good, 0, &json!({"alg": "none", "typ": "JWT"}));
    let err = hs_verify(&none).unwrap_err();
    assert!(matches!(err, AuthError::WrongAlgorithm { ref alg, .. } if alg == "none"));
}

#[test]
fn malformed_tokens() {
    for bad in [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "!!!.e30.sig",
        "e30.e30.sig",
        "bm90IGpzb24.e30.sig",
    ] {
        let err = hs_verify(bad).unwrap_err();
        assert!(
            matches!(err, AuthError::MalformedToken { .. }),
            "{bad}: {err:?}"
        );
        assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
    }
    // Claims that are not an object, correctly signed.
    let token = sign_raw(&json!(["not", "an", "object"]));
    assert!(matches!(
        hs_verify(&token),
        Err(AuthError::MalformedToken { .. })
    ));
}

#[test]
fn expiry_is_enforced_when_present() {
    let mut claims = mercure(&["a"], &[]);
    claims.expires_in = Some(Duration::from_secs(60));
    let token = hs_token(claims);
    let hub = hs_hub();
    let g = verify(&hub, &token, Role::Publisher).unwrap();
    assert_eq!(g.expires_at, Some(t0() + Duration::from_secs(60)));
    // Within the 5 s leeway.
    assert!(
        hub.verify_at(&token, Role::Publisher, t0() + Duration::from_secs(64))
            .is_ok()
    );
    let err = hub
        .verify_at(&token, Role::Publisher, t0() + Duration::from_secs(3600))
        .unwrap_err();
    assert_eq!(
        err,
        AuthError::Expired {
            exp: 1_800_000_060,
            ago: 3540
        }
    );
    assert!(
        err.www_authenticate()
            .contains("token expired at 1800000060")
    );
}

#[test]
fn not_yet_valid() {
    let token = sign_raw(&json!({"nbf": 1_800_000_100u64, "mercure": {"publish": ["a"]}}));
    assert_eq!(
        hs_verify(&token).unwrap_err(),
        AuthError::NotYetValid {
            nbf: 1_800_000_100,
            in_secs: 100
        }
    );
    assert!(
        hs_hub()
            .verify_at(&token, Role::Publisher, t0() + Duration::from_secs(100))
            .is_ok()
    );
}

#[test]
fn v1_token_grants_and_checks_audience() {
    let claims = v1(
        &[MintTopic::url_pattern("https://e.com/books/:id")],
        &[MintTopic::exact("https://e.com/private")],
    );
    let token = hs_token(claims);
    let hub = hs_hub();
    let g = verify(&hub, &token, Role::Publisher).unwrap();
    assert_eq!(g.format, TokenFormat::AuthorizationDetails);
    assert!(g.can_publish("https://e.com/books/3"));
    assert!(!g.can_publish("https://e.com/private"));
    assert!(g.can_subscribe(&["https://e.com/private"]));
    assert_eq!(g.expires_at, Some(t0() + Duration::from_secs(3600)));

    let mut elsewhere = hs_config();
    elsewhere.resource_identifier = Some("https://other.example/.well-known/mercure".to_owned());
    let err = verify(&Authorizer::new(elsewhere), &token, Role::Publisher).unwrap_err();
    assert!(matches!(err, AuthError::WrongAudience { .. }));
    assert!(err.to_string().contains(AUD), "{err}");

    // aud as an array containing the identifier is fine.
    let mut arr = v1(&[MintTopic::exact("*")], &[]);
    arr.audience = None;
    let token = hs_token(arr);
    let mut body = decode_part(&token, 1);
    body["aud"] = json!(["https://x.example", AUD]);
    let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
    header.typ = Some("at+jwt".into());
    let resigned = sign_raw_with(&header, &body);
    assert!(verify(&hub, &resigned, Role::Publisher).is_ok());
    // Missing aud.
    body.as_object_mut().unwrap().remove("aud");
    let no_aud = sign_raw_with(&header, &body);
    let err = verify(&hub, &no_aud, Role::Publisher).unwrap_err();
    assert!(err.to_string().contains("aud is missing"), "{err}");
}

#[test]
fn the_audience_is_the_configured_resource_identifier_only() {
    assert_eq!(hs_hub().audience().as_deref(), Some(AUD));
    // Without one, 1.0 tokens cannot be checked, so none passes; 0.x tokens still do.
    let bare = Authorizer::new(AuthConfig::new(
        VerifyingKey::secret(SECRET.as_bytes(), None).unwrap(),
    ));
    assert_eq!(bare.audience(), None);
    let token = hs_token(v1(&[MintTopic::exact("*")], &[]));
    assert_eq!(
        verify(&bare, &token, Role::Publisher).unwrap_err(),
        AuthError::NoResourceIdentifier
    );
    assert!(verify(&bare, &hs_token(mercure(&["*"], &[])), Role::Publisher).is_ok());
}

#[test]
fn v1_token_requires_exp() {
    let mut claims = v1(&[MintTopic::exact("*")], &[]);
    claims.expires_in = None;
    let token = hs_token(claims);
    let err = hs_verify(&token).unwrap_err();
    assert_eq!(err, AuthError::MissingExp);
    assert!(err.to_string().contains("at+jwt"));
}

#[test]
fn v1_issuer_checked_only_when_configured() {
    let mut claims = v1(&[MintTopic::exact("*")], &[]);
    claims.issuer = Some("https://evil.example".into());
    let token = hs_token(claims);
    assert!(hs_verify(&token).is_ok());

    let mut config = hs_config();
    config.issuers = vec![
        "https://auth.example.com".into(),
        "https://sso.example.com".into(),
    ];
    let hub = Authorizer::new(config);
    let err = verify(&hub, &token, Role::Publisher).unwrap_err();
    assert!(matches!(err, AuthError::UntrustedIssuer { .. }));
    assert!(
        err.to_string().contains("evil.example") && err.to_string().contains("sso.example.com")
    );

    let mut good = v1(&[MintTopic::exact("*")], &[]);
    good.issuer = Some("https://sso.example.com".into());
    assert!(verify(&hub, &hs_token(good), Role::Publisher).is_ok());
    let none = hs_token(v1(&[MintTopic::exact("*")], &[]));
    let err = verify(&hub, &none, Role::Publisher).unwrap_err();
    assert!(err.to_string().contains("iss is missing"), "{err}");
}

#[test]
fn v1_claims_in_a_plain_jwt_are_refused_with_reason() {
    let token =
        sign_raw(&json!({"aud": AUD, "exp": 1_900_000_000u64, "authorization_details": []}));
    let err = hs_verify(&token).unwrap_err();
    assert!(matches!(err, AuthError::WrongTokenType { .. }));
    assert!(err.to_string().contains("typ at+jwt"), "{err}");
}

#[test]
fn invalid_claims_reject_the_token() {
    let token = sign_raw(&json!({"mercure": {"publish": ["https://e.com/{broken"]}}));
    let err = hs_verify(&token).unwrap_err();
    assert!(matches!(err, AuthError::InvalidClaims { .. }));
    assert!(err.to_string().contains("unclosed"), "{err}");
    assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
}

#[test]
fn topic_not_granted_is_403_and_names_the_topic() {
    let token = hs_token(mercure(&["https://e.com/a"], &[]));
    let g = hs_verify(&token).unwrap();
    let err = g
        .check_publish(&["https://e.com/a", "https://e.com/secret"])
        .unwrap_err();
    assert_eq!(err.status(), StatusCode::FORBIDDEN);
    assert!(
        err.to_string().contains("\"https://e.com/secret\""),
        "{err}"
    );
    assert!(
        err.www_authenticate()
            .starts_with("Bearer error=\"insufficient_scope\"")
    );
}

#[test]
fn subscriber_key_defaults_to_publisher_key_and_can_differ() {
    let token = hs_token(mercure(&[], &["*"]));
    assert!(verify(&hs_hub(), &token, Role::Subscriber).is_ok());

    let mut config = hs_config();
    config.subscriber_key = Some(Arc::new(
        VerifyingKey::from_pem(EC_PUBLIC.as_bytes(), None).unwrap(),
    ));
    let hub = Authorizer::new(config);
    assert!(verify(&hub, &token, Role::Publisher).is_ok());
    assert!(matches!(
        verify(&hub, &token, Role::Subscriber),
        Err(AuthError::WrongAlgorithm {
            role: Role::Subscriber,
            ..
        })
    ));
    let ec = Key::from_pem(EC_PRIVATE.as_bytes(), None).unwrap();
    let sub_token = mint(&ec, mercure(&[], &["*"])).unwrap();
    assert!(verify(&hub, &sub_token, Role::Subscriber).is_ok());
}

#[test]
fn anonymous_and_missing_tokens() {
    let hub = hs_hub();
    let err = hub.authorize(None, Role::Subscriber).unwrap_err();
    assert_eq!(err, AuthError::AnonymousNotAllowed);
    assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(err.www_authenticate(), "Bearer");
    let err = hub.authorize(None, Role::Publisher).unwrap_err();
    assert!(matches!(
        err,
        AuthError::MissingToken {
            role: Role::Publisher,
            ..
        }
    ));
    assert!(err.to_string().contains("mercureAuthorization"));

    let mut config = hs_config();
    config.anonymous = true;
    let open = Authorizer::new(config);
    let g = open.authorize(None, Role::Subscriber).unwrap();
    assert_eq!(g.format, TokenFormat::Anonymous);
    assert!(!g.can_subscribe(&["https://e.com/private"]));
    // Anonymous access does not excuse a bad token.
    assert!(open.authorize(Some("a.b.c"), Role::Subscriber).is_err());
    // Nor does it let publishers in.
    assert!(open.authorize(None, Role::Publisher).is_err());
}

#[test]
fn token_sources_through_the_authorizer() {
    let mut config = hs_config();
    config.cookie_name = "hubAuth".into();
    config.publish_origins = vec!["https://app.example.com".into()];
    let hub = Authorizer::new(config);
    let token = hs_token(mercure(&["*"], &[]));

    let mut headers = HeaderMap::new();
    headers.insert(
        COOKIE,
        HeaderValue::from_str(&format!("hubAuth={token}")).unwrap(),
    );
    let (found, source) = hub
        .extract_token(&headers, Some("topic=x"))
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.as_str(), source),
        (token.as_str(), TokenSource::Cookie)
    );
    let err = hub.check_publish_origin(&headers, source).unwrap_err();
    assert_eq!(err.status(), StatusCode::FORBIDDEN);
    headers.insert(ORIGIN, HeaderValue::from_static("https://app.example.com"));
    assert!(hub.check_publish_origin(&headers, source).is_ok());

    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_static("Bearer header-token"),
    );
    let (found, source) = hub.extract_token(&headers, None).unwrap().unwrap();
    assert_eq!(
        (found.as_str(), source),
        ("header-token", TokenSource::Header)
    );
}

#[test]
fn grants_share_the_hub_selector_cache() {
    let cache = Arc::new(SelectorCache::default());
    let mut config = hs_config();
    config.selector_cache = cache.clone();
    let hub = Authorizer::new(config);
    let token = hs_token(mercure(&[], &["https://e.com/{id}"]));
    let a = verify(&hub, &token, Role::Subscriber).unwrap();
    let b = verify(&hub, &token, Role::Subscriber).unwrap();
    assert!(Arc::ptr_eq(&a.subscribe[0], &b.subscribe[0]));
    assert!(Arc::ptr_eq(
        &a.subscribe[0],
        &cache.topic("https://e.com/{id}").unwrap()
    ));
}

#[test]
fn mint_refuses_url_patterns_in_mercure_format() {
    let c = MintClaims {
        publish: vec![MintTopic::url_pattern("https://e.com/:id")],
        ..MintClaims::default()
    };
    let err = mint(&hs_key(), c).unwrap_err();
    assert!(matches!(err, AuthError::Signing { .. }));
}

#[test]
fn minted_v1_token_shape() {
    let mut claims = v1(
        &[MintTopic::exact("a")],
        &[MintTopic::url_pattern("https://e.com/:id")],
    );
    claims.payload = Some(json!({"user": 1}));
    claims.subject = Some("alice".into());
    let token = hs_token(claims);
    let header = decode_part(&token, 0);
    assert_eq!(header["typ"], "at+jwt");
    let body = decode_part(&token, 1);
    assert_eq!(body["aud"], AUD);
    assert_eq!(body["exp"], 1_800_003_600u64);
    let details = body["authorization_details"].as_array().unwrap();
    assert_eq!(details.len(), 2);
    assert_eq!(details[0]["actions"], json!(["publish"]));
    assert_eq!(details[1]["topics"][0]["match_type"], "urlpattern");
    assert_eq!(details[1]["payload"], json!({"user": 1}));
    let g = verify(&hs_hub(), &token, Role::Subscriber).unwrap();
    assert_eq!(g.subject.as_deref(), Some("alice"));
    assert_eq!(
        g.payload_for("https://e.com/:id"),
        Some(&json!({"user": 1}))
    );
}

#[test]
fn auth_types_are_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Authorizer>();
    assert_send_sync::<Grants>();
    assert_send_sync::<AuthError>();
}

#[test]
fn critical_header_extensions_are_refused() {
    let good = hs_token(mercure(&["a"], &[]));
    let crit = replace_part(
        &good,
        0,
        &json!({"alg": "HS256", "crit": ["exp"], "exp": 1}),
    );
    let err = hs_verify(&crit).unwrap_err();
    assert!(err.to_string().contains("crit"), "{err}");
}

#[test]
fn media_type_form_of_at_jwt_is_a_v1_token() {
    let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
    header.typ = Some("application/AT+JWT".into());
    let token = sign_raw_with(&header, &json!({"aud": AUD, "authorization_details": []}));
    // Recognised as 1.0: exp becomes mandatory.
    assert_eq!(hs_verify(&token).unwrap_err(), AuthError::MissingExp);
}

#[test]
fn non_numeric_dates_are_malformed() {
    for claims in [
        json!({"exp": "tomorrow"}),
        json!({"exp": -5}),
        json!({"nbf": true}),
    ] {
        let token = sign_raw(&claims);
        let err = hs_verify(&token).unwrap_err();
        assert!(
            matches!(err, AuthError::MalformedToken { .. }),
            "{claims}: {err:?}"
        );
    }
    // Fractional seconds are fine.
    let token = sign_raw(&json!({"exp": 1_800_000_060.5, "mercure": {"publish": ["a"]}}));
    assert!(hs_verify(&token).is_ok());
}

/// The cache of verified tokens (`cache.rs`) changes no answer: expiry and `nbf` are checked
/// against the clock of every call, each role against its own key, and failures are not kept.
#[test]
fn cached_tokens_still_expire_and_wait_for_nbf() {
    let hub = hs_hub();
    let mut claims = mercure(&["a"], &["*"]);
    claims.expires_in = Some(Duration::from_secs(60));
    let token = hs_token(claims);
    assert!(verify(&hub, &token, Role::Publisher).is_ok());
    assert_eq!(hub.cached_tokens(), 1);
    // A hit: same grants.
    let g = verify(&hub, &token, Role::Publisher).unwrap();
    assert!(g.can_publish("a") && !g.can_publish("b"));
    assert_eq!(g.expires_at, Some(t0() + Duration::from_secs(60)));
    // Past exp + leeway the cached entry is not used: the precise error, and it is dropped.
    assert_eq!(
        hub.verify_at(&token, Role::Publisher, t0() + Duration::from_secs(3600))
            .unwrap_err(),
        AuthError::Expired {
            exp: 1_800_000_060,
            ago: 3540
        }
    );
    assert_eq!(hub.cached_tokens(), 0);

    // Verified once at a time past nbf, the token is still refused before nbf.
    let early = sign_raw(&json!({"nbf": 1_800_000_100u64, "mercure": {"publish": ["a"]}}));
    assert!(
        hub.verify_at(&early, Role::Publisher, t0() + Duration::from_secs(100))
            .is_ok()
    );
    assert!(matches!(
        verify(&hub, &early, Role::Publisher),
        Err(AuthError::NotYetValid { .. })
    ));
}

#[test]
fn the_cache_keeps_roles_apart_and_never_keeps_a_failure() {
    let mut config = hs_config();
    config.subscriber_key = Some(Arc::new(
        VerifyingKey::from_pem(EC_PUBLIC.as_bytes(), None).unwrap(),
    ));
    let hub = Authorizer::new(config);
    let token = hs_token(mercure(&[], &["*"]));
    assert!(verify(&hub, &token, Role::Publisher).is_ok());
    // Verified for publishers, but the subscriber key is another one.
    assert!(verify(&hub, &token, Role::Subscriber).is_err());
    assert!(verify(&hub, &token, Role::Subscriber).is_err());
    assert_eq!(hub.cached_tokens(), 1);
    let forged = format!("{}x", token);
    assert!(verify(&hub, &forged, Role::Publisher).is_err());
    assert_eq!(hub.cached_tokens(), 1);
}

#[test]
fn a_token_cached_under_the_old_settings_is_refused_after_replace() {
    let hub = hs_hub();
    let token = hs_token(mercure(&[], &["*"]));
    assert!(verify(&hub, &token, Role::Publisher).is_ok());
    assert_eq!(hub.cached_tokens(), 1);
    // A rotated key (SIGHUP): the token signed with the old one must not be answered from
    // the cache.
    let mut rotated = hs_config();
    rotated.publisher_key = Arc::new(VerifyingKey::from_pem(EC_PUBLIC.as_bytes(), None).unwrap());
    hub.replace(rotated);
    assert_eq!(hub.cached_tokens(), 0);
    assert!(verify(&hub, &token, Role::Publisher).is_err());
}

#[test]
fn the_cache_is_bounded() {
    let hub = hs_hub();
    for n in 0..(cache::CAPACITY + 10) {
        let token = hs_token(mercure(&[&format!("t{n}")], &[]));
        assert!(verify(&hub, &token, Role::Publisher).is_ok());
        assert!(hub.cached_tokens() <= cache::CAPACITY);
    }
    // Too long to keep: verified every time.
    let long = sign_raw(&json!({
        "mercure": {"publish": ["a"]},
        "pad": "x".repeat(cache::MAX_TOKEN_BYTES),
    }));
    let before = hub.cached_tokens();
    assert!(verify(&hub, &long, Role::Publisher).is_ok());
    assert_eq!(hub.cached_tokens(), before);
}
