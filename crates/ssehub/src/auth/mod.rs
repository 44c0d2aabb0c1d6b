//! JWT authorization for the hub: which tokens are accepted, and what they allow.
//!
//! ```text
//! request ──extract_token──> (token, source) ──Authorizer::verify──> Grants
//!   header > query > cookie      │                 key by role (+kid), alg pinned
//!   cookie + POST: origin check ─┘                 exp/nbf, aud/iss (1.0), claims
//! Grants::check_publish(topics) / can_subscribe(update topics) ── SelectorCache
//! ```
//!
//! Both generations of Mercure tokens are accepted without a switch: 0.x tokens
//! (`mercure` claim, `exp` optional) and 1.0 access tokens (header `typ: at+jwt`,
//! `aud`, `exp` required, `authorization_details`). The library checks signatures;
//! every other check is done here so each failure gets a message naming the check,
//! because an unexplained 401 is the most reported Mercure problem. Nothing here
//! speaks HTTP beyond reading `http::HeaderMap`: the HTTP layer maps [`AuthError`]
//! to a response with [`AuthError::status`] and [`AuthError::www_authenticate`].

mod cache;
mod error;
mod grants;
mod keys;
mod mint;
mod open;
mod source;
mod verify;

#[cfg(test)]
mod tests;

pub use error::AuthError;
pub use grants::{Grants, MAX_TOKEN_SELECTORS, TokenFormat};
pub use jsonwebtoken::Algorithm;
pub use keys::{Key, KeyError, SUPPORTED_ALGORITHMS, VerifyingKey, parse_algorithm};
pub use mint::{ClaimFormat, MatchType, MintClaims, MintTopic, mint};
pub use open::OpenTopics;
pub use source::{TokenSource, check_publish_origin, extract_token};
pub use verify::{AuthConfig, Authorizer, DEFAULT_COOKIE_NAME};

/// Which side of the hub a token is for; each has its own key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Role {
    /// Sends updates (`POST /.well-known/mercure`).
    Publisher,
    /// Receives updates (`GET /.well-known/mercure`).
    Subscriber,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Publisher => "publisher",
            Role::Subscriber => "subscriber",
        })
    }
}
