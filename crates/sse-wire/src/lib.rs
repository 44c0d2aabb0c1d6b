//! Server-Sent Events codec (placeholder while the codec lands).
