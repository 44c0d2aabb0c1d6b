//! Where a request's token comes from, and the origin check cookies need.
//!
//! Precedence: the `Authorization: Bearer` header, else the query parameter
//! (`authorization` in 0.x, `access_token` in RFC 6750 and the 1.0 drafts), else the
//! cookie. Only the winner is used. Browsers send cookies on cross-site requests, so
//! a publish authenticated by cookie must come from an allowed origin (CSRF).

use http::HeaderMap;
use http::header::{AUTHORIZATION, COOKIE, ORIGIN, REFERER};

use super::AuthError;

/// Where the token was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenSource {
    /// `Authorization: Bearer` header.
    Header,
    /// `authorization` or `access_token` query parameter.
    Query,
    /// The configured cookie.
    Cookie,
}

fn invalid_request(reason: impl Into<String>) -> AuthError {
    AuthError::InvalidRequest {
        reason: reason.into(),
    }
}

/// Finds the request's token.
///
/// `query` is the raw query string (without `?`). Empty query parameters and empty
/// cookies count as absent (browsers keep sending a cleared cookie).
///
/// # Errors
///
/// [`AuthError::InvalidRequest`] when the Authorization header is present but
/// unusable (repeated, not UTF-8, not `Bearer <token>`).
pub fn extract_token(
    headers: &HeaderMap,
    query: Option<&str>,
    cookie_name: &str,
) -> Result<Option<(String, TokenSource)>, AuthError> {
    let mut auth = headers.get_all(AUTHORIZATION).iter();
    if let Some(value) = auth.next() {
        if auth.next().is_some() {
            return Err(invalid_request("more than one Authorization header"));
        }
        let value = value
            .to_str()
            .map_err(|_| invalid_request("the Authorization header is not visible ASCII"))?;
        let (scheme, token) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(invalid_request(format!(
                "the Authorization header uses the {scheme:?} scheme, expected \"Bearer <token>\""
            )));
        }
        let token = token.trim();
        if token.is_empty() {
            return Err(invalid_request(
                "the Authorization header has no token after \"Bearer\"",
            ));
        }
        return Ok(Some((token.to_owned(), TokenSource::Header)));
    }

    if let Some(query) = query {
        let mut found = None;
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            if value.is_empty() {
                continue;
            }
            match &*name {
                // The 0.x name wins over the RFC 6750 one when both are present.
                "authorization" => {
                    found = Some(value.into_owned());
                    break;
                }
                "access_token" if found.is_none() => found = Some(value.into_owned()),
                _ => {}
            }
        }
        if let Some(token) = found {
            return Ok(Some((token, TokenSource::Query)));
        }
    }

    for header in headers.get_all(COOKIE) {
        let Ok(header) = header.to_str() else {
            continue;
        };
        for pair in header.split(';') {
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches('"');
            if name.trim() == cookie_name && !value.is_empty() {
                return Ok(Some((value.to_owned(), TokenSource::Cookie)));
            }
        }
    }
    Ok(None)
}

/// The ASCII serialization of a URL's origin (`scheme://host[:port]`), or `None` for
/// an opaque origin.
fn origin_of(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let origin = parsed.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

/// Checks a publish request's origin. Only cookie-authenticated requests are
/// checked: a header or query token is never sent by a browser on its own. The
/// origin comes from `Origin`, else from `Referer`; `*` in `allowed` admits any.
///
/// # Errors
///
/// [`AuthError::OriginNotAllowed`] when the origin is missing or not allowed.
pub fn check_publish_origin(
    headers: &HeaderMap,
    source: TokenSource,
    allowed: &[String],
) -> Result<(), AuthError> {
    if source != TokenSource::Cookie {
        return Ok(());
    }
    let origin = match headers.get(ORIGIN).and_then(|v| v.to_str().ok()) {
        Some(o) => Some(o.trim().to_owned()),
        None => headers
            .get(REFERER)
            .and_then(|v| v.to_str().ok())
            .and_then(origin_of),
    };
    let Some(origin) = origin else {
        return Err(AuthError::OriginNotAllowed {
            origin: "none (neither Origin nor Referer was sent)".to_owned(),
        });
    };
    // Compare serialized origins, so "https://Example.com:443" equals "https://example.com".
    let normalized = origin_of(&origin).unwrap_or_else(|| origin.clone());
    let ok = allowed
        .iter()
        .any(|a| a == "*" || *a == origin || origin_of(a).is_some_and(|a| a == normalized));
    if ok {
        Ok(())
    } else {
        Err(AuthError::OriginNotAllowed {
            origin: format!("{origin:?}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&http::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_str(value).unwrap());
        }
        h
    }

    const C: &str = "mercureAuthorization";

    #[test]
    fn header_beats_query_beats_cookie() {
        let all = headers(&[
            (&AUTHORIZATION, "Bearer from-header"),
            (&COOKIE, "mercureAuthorization=from-cookie"),
        ]);
        assert_eq!(
            extract_token(&all, Some("authorization=from-query"), C).unwrap(),
            Some(("from-header".into(), TokenSource::Header))
        );
        let no_header = headers(&[(&COOKIE, "a=b; mercureAuthorization=from-cookie")]);
        assert_eq!(
            extract_token(&no_header, Some("topic=x&authorization=from-query"), C).unwrap(),
            Some(("from-query".into(), TokenSource::Query))
        );
        assert_eq!(
            extract_token(&no_header, Some("topic=x"), C).unwrap(),
            Some(("from-cookie".into(), TokenSource::Cookie))
        );
        assert_eq!(extract_token(&HeaderMap::new(), None, C).unwrap(), None);
    }

    #[test]
    fn query_names_and_decoding() {
        let h = HeaderMap::new();
        assert_eq!(
            extract_token(&h, Some("access_token=a%2Eb.c"), C).unwrap(),
            Some(("a.b.c".into(), TokenSource::Query))
        );
        assert_eq!(
            extract_token(&h, Some("access_token=one&authorization=two"), C).unwrap(),
            Some(("two".into(), TokenSource::Query))
        );
        assert_eq!(extract_token(&h, Some("authorization="), C).unwrap(), None);
    }

    #[test]
    fn cookie_name_is_configurable_and_exact() {
        let h = headers(&[
            (&COOKIE, "xmercureAuthorization=no"),
            (&COOKIE, "hubToken=\"yes\""),
        ]);
        assert_eq!(extract_token(&h, None, C).unwrap(), None);
        assert_eq!(
            extract_token(&h, None, "hubToken").unwrap(),
            Some(("yes".into(), TokenSource::Cookie))
        );
        let empty = headers(&[(&COOKIE, "mercureAuthorization=")]);
        assert_eq!(extract_token(&empty, None, C).unwrap(), None);
    }

    #[test]
    fn bad_authorization_headers() {
        for bad in ["Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "token"] {
            let h = headers(&[(&AUTHORIZATION, bad)]);
            assert!(
                matches!(
                    extract_token(&h, None, C),
                    Err(AuthError::InvalidRequest { .. })
                ),
                "{bad}"
            );
        }
        let two = headers(&[(&AUTHORIZATION, "Bearer a"), (&AUTHORIZATION, "Bearer b")]);
        assert!(extract_token(&two, None, C).is_err());
        let lower = headers(&[(&AUTHORIZATION, "bearer tok")]);
        assert_eq!(
            extract_token(&lower, None, C).unwrap(),
            Some(("tok".into(), TokenSource::Header))
        );
    }

    #[test]
    fn origin_check_only_for_cookies() {
        let allowed = vec!["https://app.example.com".to_owned()];
        let evil = headers(&[(&ORIGIN, "https://evil.example")]);
        assert!(check_publish_origin(&evil, TokenSource::Header, &allowed).is_ok());
        assert!(check_publish_origin(&evil, TokenSource::Query, &allowed).is_ok());
        let err = check_publish_origin(&evil, TokenSource::Cookie, &allowed).unwrap_err();
        assert!(matches!(err, AuthError::OriginNotAllowed { .. }));
        assert!(err.to_string().contains("evil.example"));
    }

    #[test]
    fn origin_from_origin_or_referer() {
        let allowed = vec!["https://app.example.com".to_owned()];
        let good = headers(&[(&ORIGIN, "https://app.example.com")]);
        assert!(check_publish_origin(&good, TokenSource::Cookie, &allowed).is_ok());
        let default_port = headers(&[(&ORIGIN, "https://app.example.com:443")]);
        assert!(check_publish_origin(&default_port, TokenSource::Cookie, &allowed).is_ok());
        let referer = headers(&[(&REFERER, "https://app.example.com/page?x=1")]);
        assert!(check_publish_origin(&referer, TokenSource::Cookie, &allowed).is_ok());
        let other_port = headers(&[(&REFERER, "https://app.example.com:8443/page")]);
        assert!(check_publish_origin(&other_port, TokenSource::Cookie, &allowed).is_err());
        let none = HeaderMap::new();
        assert!(check_publish_origin(&none, TokenSource::Cookie, &allowed).is_err());
        let null = headers(&[(&ORIGIN, "null")]);
        assert!(check_publish_origin(&null, TokenSource::Cookie, &allowed).is_err());
        let star = vec!["*".to_owned()];
        assert!(check_publish_origin(&null, TokenSource::Cookie, &star).is_ok());
    }
}
