//! Every refusal of the Durable Streams front, mapped to the status and headers the protocol
//! names: the one place that decides what a client sees for each error.

use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue, StatusCode, header};

use super::headers::{
    PRODUCER_EPOCH, PRODUCER_EXPECTED_SEQ, PRODUCER_RECEIVED_SEQ, STREAM_CLOSED, STREAM_NEXT_OFFSET,
};
use crate::auth::AuthError;
use crate::relay::RelayError;
use crate::streams::StreamError;

/// A refused or failed Durable Streams request.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DsError {
    /// Refused or failed by the store.
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// A token problem (401) or a permission problem (403), as the auth layer classified it.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Malformed request: headers, query, body (400).
    #[error("{0}")]
    BadRequest(String),
    /// A valid token that does not grant this stream (403).
    #[error("{0}")]
    Forbidden(String),
    /// A body over the configured limit (413).
    #[error("request body too large: the limit is {limit} bytes (--streams-max-append-bytes)")]
    TooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// A path this front does not serve (404).
    #[error("{0}")]
    NotServed(String),
    /// A method streams do not have (405).
    #[error("{0} is not a Durable Streams method: use PUT, POST, GET, HEAD or DELETE")]
    MethodNotAllowed(http::Method),
    /// A write to a read-only stream (a relay answer) (405).
    #[error("{0}")]
    ReadOnly(String),
    /// No credential where one is needed (401).
    #[error("{0}")]
    Unauthorized(String),
    /// Reading a relay answer failed.
    #[error(transparent)]
    Relay(#[from] RelayError),
}

impl DsError {
    fn status(&self) -> StatusCode {
        match self {
            DsError::Stream(e) => stream_status(e),
            DsError::Auth(e) => e.status(),
            DsError::BadRequest(_) => StatusCode::BAD_REQUEST,
            DsError::Forbidden(_) => StatusCode::FORBIDDEN,
            DsError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            DsError::NotServed(_) => StatusCode::NOT_FOUND,
            DsError::MethodNotAllowed(_) | DsError::ReadOnly(_) => StatusCode::METHOD_NOT_ALLOWED,
            DsError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            DsError::Relay(RelayError::UnknownStream(_)) => StatusCode::NOT_FOUND,
            DsError::Relay(RelayError::BadRequest(_)) => StatusCode::BAD_REQUEST,
            DsError::Relay(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Headers the protocol attaches to this refusal.
    fn headers(&self) -> Vec<(HeaderName, String)> {
        match self {
            DsError::Stream(StreamError::Closed { tail }) => vec![
                (STREAM_CLOSED, "true".into()),
                (STREAM_NEXT_OFFSET, tail.to_string()),
            ],
            DsError::Stream(StreamError::StaleEpoch { current }) => {
                vec![(PRODUCER_EPOCH, current.to_string())]
            }
            DsError::Stream(StreamError::SequenceGap { expected, received }) => vec![
                (PRODUCER_EXPECTED_SEQ, expected.to_string()),
                (PRODUCER_RECEIVED_SEQ, received.to_string()),
            ],
            DsError::Auth(e) => vec![(header::WWW_AUTHENTICATE, e.www_authenticate())],
            DsError::MethodNotAllowed(_) => {
                vec![(
                    header::ALLOW,
                    "GET, HEAD, PUT, POST, DELETE, OPTIONS".into(),
                )]
            }
            DsError::ReadOnly(_) => vec![(header::ALLOW, "GET, HEAD, OPTIONS".into())],
            DsError::Unauthorized(_) => vec![(header::WWW_AUTHENTICATE, "Bearer".into())],
            _ => Vec::new(),
        }
    }
}

fn stream_status(err: &StreamError) -> StatusCode {
    match err {
        StreamError::NotFound | StreamError::SourceNotFound(_) => StatusCode::NOT_FOUND,
        StreamError::Gone => StatusCode::GONE,
        StreamError::ConfigMismatch(_)
        | StreamError::PathBlocked
        | StreamError::SourceGone(_)
        | StreamError::ContentTypeMismatch { .. }
        | StreamError::Closed { .. }
        | StreamError::StreamSeqConflict { .. }
        | StreamError::SequenceGap { .. } => StatusCode::CONFLICT,
        StreamError::ForkOffsetBeyondTail { .. }
        | StreamError::SubOffset(_)
        | StreamError::NewEpochNotAtZero
        | StreamError::Content(_) => StatusCode::BAD_REQUEST,
        StreamError::StaleEpoch { .. } => StatusCode::FORBIDDEN,
        StreamError::Storage(_) | StreamError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
    }
}

impl IntoResponse for DsError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), error = %self, "stream request failed");
        } else {
            tracing::debug!(status = status.as_u16(), error = %self, "stream request refused");
        }
        let mut res = (status, format!("{self}\n")).into_response();
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        for (name, value) in self.headers() {
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(name, v);
            }
        }
        res
    }
}
