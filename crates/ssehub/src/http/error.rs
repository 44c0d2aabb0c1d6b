//! One error type for every HTTP handler: each case maps to its status and a message that
//! names the problem, so a client never has to guess why it was refused.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use crate::auth::AuthError;
use crate::hub::PublishError;
use crate::store::StoreError;

/// A refused or failed request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(super) enum ApiError {
    /// Malformed input (400).
    #[error("{0}")]
    BadRequest(String),
    /// A token problem (401) or a permission problem (403), as the auth layer classified it.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Allowed token, forbidden action (403).
    #[error("{0}")]
    Forbidden(String),
    /// Unknown resource (404).
    #[error("{0}")]
    NotFound(String),
    /// The method is not served here (405).
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The resource exists but conflicts with the request (409).
    #[error("{0}")]
    Conflict(String),
    /// Body over the configured limit (413).
    #[error("request body too large: the limit is {limit} bytes (--max-body-bytes)")]
    TooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// Accepted by HTTP but too large for one history entry (413).
    #[error("{0}")]
    TooLargeToStore(String),
    /// Wrong request content type (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The hub cannot serve this now (503).
    #[error("{0}")]
    Unavailable(String),
}

impl ApiError {
    /// The HTTP status for this error.
    pub(super) fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Auth(e) => e.status(),
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge { .. } | ApiError::TooLargeToStore(_) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Duplicate { .. } => ApiError::Conflict(err.to_string()),
            StoreError::TooLarge { .. } => ApiError::TooLargeToStore(err.to_string()),
            other => {
                let reason = with_sources(&other);
                tracing::error!(error = %reason, "store failure");
                ApiError::Unavailable(format!("history store unavailable: {reason}"))
            }
        }
    }
}

/// `err` followed by its sources, so the client learns the cause (`connection refused`, a full
/// disk) and not only what failed; a source that repeats what is already said is left out.
fn with_sources(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

impl From<PublishError> for ApiError {
    fn from(err: PublishError) -> Self {
        match err {
            PublishError::Invalid(e @ crate::hub::InvalidUpdate::ReservedTopic(_)) => {
                ApiError::Forbidden(e.to_string())
            }
            PublishError::Invalid(e) => ApiError::BadRequest(e.to_string()),
            PublishError::Store(e) => e.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), error = %self, "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), error = %self, "request refused");
        }
        let mut res = (status, format!("{self}\n")).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if let ApiError::Auth(e) = &self
            && let Ok(v) = HeaderValue::from_str(&e.www_authenticate())
        {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        res
    }
}
