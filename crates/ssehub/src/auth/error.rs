//! Why a request was not authorized, phrased so the user can fix it.
//!
//! "The infamous 401" is the most reported Mercure complaint, so every variant names
//! the exact check that failed, and [`AuthError::www_authenticate`] carries that
//! message to the client in the RFC 6750 challenge.

use http::StatusCode;

use super::Role;

/// An authorization failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No token was presented where one is required.
    #[error(
        "no token: {role}s must send a JWT in the Authorization: Bearer header, the authorization query parameter or the {cookie} cookie"
    )]
    MissingToken {
        /// Which side needed the token.
        role: Role,
        /// The configured cookie name, so the hint is accurate.
        cookie: String,
    },
    /// A subscriber came without a token and the hub does not accept anonymous subscribers.
    #[error(
        "anonymous subscribers are not allowed on this hub: send a JWT (or start the hub with --anonymous)"
    )]
    AnonymousNotAllowed,
    /// A subscriber without a token named a selector outside the topics this hub opens to
    /// such subscribers (`--demo`).
    #[error(
        "subscribers without a token may only subscribe to topics under {open} on this hub, and {selector:?} is not confined to them: send a JWT"
    )]
    TopicNotOpen {
        /// The refused selector, as written.
        selector: String,
        /// The open prefixes, comma-separated.
        open: String,
    },
    /// The request carries credentials in an unusable form (for example a non-Bearer
    /// Authorization header).
    #[error("invalid authorization request: {reason}")]
    InvalidRequest {
        /// What is wrong with the request.
        reason: String,
    },
    /// The token is not a well-formed JWS compact serialization with JSON header and claims.
    #[error("malformed token: {reason}")]
    MalformedToken {
        /// What could not be decoded.
        reason: String,
    },
    /// The signature does not verify with the configured key.
    #[error("bad signature: the token was not signed with the {role} key configured on this hub")]
    BadSignature {
        /// Whose key was used to verify.
        role: Role,
    },
    /// The token's `alg` is not one the hub accepts for this key.
    #[error("wrong algorithm: the token is signed with {alg}, the {role} key accepts {allowed}")]
    WrongAlgorithm {
        /// The token's `alg` header.
        alg: String,
        /// Whose key was consulted.
        role: Role,
        /// Accepted algorithms, comma-separated.
        allowed: String,
    },
    /// No key in the configured JWKS matches the token's `kid`.
    #[error("unknown key: {reason}")]
    UnknownKey {
        /// Which lookup failed.
        reason: String,
    },
    /// The token's `exp` is in the past.
    #[error("token expired at {exp} (unix time), {ago}s ago")]
    Expired {
        /// The token's `exp`.
        exp: u64,
        /// Seconds since expiry.
        ago: u64,
    },
    /// The token's `nbf` is in the future.
    #[error("token not yet valid: nbf is {nbf} (unix time), {in_secs}s from now")]
    NotYetValid {
        /// The token's `nbf`.
        nbf: u64,
        /// Seconds until the token becomes valid.
        in_secs: u64,
    },
    /// A 1.0 (`at+jwt`) token has no `exp` claim.
    #[error("missing exp: 1.0 (typ at+jwt) tokens must carry an exp claim")]
    MissingExp,
    /// The 1.0 token's `aud` does not contain the hub's resource identifier.
    #[error(
        "wrong audience: the token's aud is {got}, this hub's resource identifier is {expected:?}"
    )]
    WrongAudience {
        /// The resource identifier the hub expected.
        expected: String,
        /// The token's `aud`, rendered.
        got: String,
    },
    /// A 1.0 token came to a hub that has no resource identifier to check its `aud`
    /// against (an [`super::AuthConfig`] used outside [`crate::run`] without one).
    #[error(
        "this hub has no resource identifier, so 1.0 tokens cannot be checked (set --resource-identifier)"
    )]
    NoResourceIdentifier,
    /// The 1.0 token's `iss` is not one of the trusted issuers.
    #[error("untrusted issuer: the token's iss is {got}, trusted issuers are {trusted}")]
    UntrustedIssuer {
        /// The token's `iss`, rendered (`none` when absent).
        got: String,
        /// The configured issuers, comma-separated.
        trusted: String,
    },
    /// The token's header `typ` does not fit its claims.
    #[error("wrong token type: {reason}")]
    WrongTokenType {
        /// The mismatch.
        reason: String,
    },
    /// The token's Mercure claims (`mercure` or `authorization_details`) are malformed.
    #[error("invalid mercure claims: {reason}")]
    InvalidClaims {
        /// What is wrong.
        reason: String,
    },
    /// The token is valid but does not grant the action on this topic.
    #[error("topic {topic:?} is not granted: {detail}")]
    TopicNotGranted {
        /// The refused topic.
        topic: String,
        /// What the token does grant, to make the gap visible.
        detail: String,
    },
    /// A cookie-authenticated publish came from an origin not in the publish origins.
    #[error(
        "origin not allowed: cookie-authenticated publishing from {origin} is not in the allowed publish origins (--publish-origins)"
    )]
    OriginNotAllowed {
        /// The request's origin (`none` when it sent neither Origin nor Referer).
        origin: String,
    },
    /// A token could not be signed (minting only).
    #[error("cannot sign token: {reason}")]
    Signing {
        /// What the signer reported.
        reason: String,
    },
}

impl AuthError {
    /// The HTTP status for this failure: 400 for a malformed request, 401 for a
    /// missing or invalid token, 403 when a valid token does not allow the action,
    /// 500 for signing failures and a hub configured without a resource identifier.
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
            AuthError::TopicNotGranted { .. } | AuthError::OriginNotAllowed { .. } => {
                StatusCode::FORBIDDEN
            }
            AuthError::Signing { .. } | AuthError::NoResourceIdentifier => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The RFC 6750 `WWW-Authenticate` value: `Bearer` alone when no credentials
    /// were sent (RFC 6750 section 3.1 asks for no error code then), otherwise
    /// `Bearer error="...", error_description="..."` carrying this error's message.
    pub fn www_authenticate(&self) -> String {
        let code = match self {
            AuthError::MissingToken { .. }
            | AuthError::AnonymousNotAllowed
            | AuthError::TopicNotOpen { .. } => {
                return "Bearer".to_owned();
            }
            AuthError::InvalidRequest { .. } => "invalid_request",
            AuthError::TopicNotGranted { .. } | AuthError::OriginNotAllowed { .. } => {
                "insufficient_scope"
            }
            _ => "invalid_token",
        };
        format!(
            "Bearer error=\"{code}\", error_description=\"{}\"",
            quoted_string_body(&self.to_string())
        )
    }
}

/// Makes `s` safe inside an HTTP quoted-string: RFC 6750 restricts
/// `error_description` to printable ASCII without `"` and `\`, so those become `'`
/// and `/`, and anything else outside the range becomes `?`.
fn quoted_string_body(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '"' => '\'',
            '\\' => '/',
            ' '..='~' => c,
            _ => '?',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(AuthError::MissingExp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            AuthError::TopicNotGranted {
                topic: "t".into(),
                detail: "d".into()
            }
            .status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            AuthError::OriginNotAllowed { origin: "o".into() }.status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            AuthError::InvalidRequest { reason: "r".into() }.status(),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn challenge_without_credentials_has_no_error_code() {
        assert_eq!(AuthError::AnonymousNotAllowed.www_authenticate(), "Bearer");
    }

    #[test]
    fn challenge_carries_description_safely() {
        let e = AuthError::WrongAudience {
            expected: "https://hub/\"x\"".into(),
            got: "[\"a\"]\u{e9}".into(),
        };
        let h = e.www_authenticate();
        assert!(
            h.starts_with("Bearer error=\"invalid_token\", error_description=\"wrong audience")
        );
        assert!(http::HeaderValue::from_str(&h).is_ok());
        // Only the two delimiting quotes of each parameter remain.
        assert_eq!(h.matches('"').count(), 4);
        let forbidden = AuthError::TopicNotGranted {
            topic: "t".into(),
            detail: "d".into(),
        };
        assert!(
            forbidden
                .www_authenticate()
                .starts_with("Bearer error=\"insufficient_scope\"")
        );
    }
}
