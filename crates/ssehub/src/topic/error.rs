//! Why a selector string was refused: typed, so the HTTP layer can name the problem.

/// Why a selector could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SelectorError {
    /// The selector string is longer than [`MAX_SELECTOR_LEN`](super::MAX_SELECTOR_LEN).
    #[error("selector is {len} bytes long, the limit is {max}")]
    TooLong {
        /// Length of the rejected selector.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The selector contains a control character (forbidden by the Mercure spec).
    #[error("selector contains a control character at byte {at}")]
    ControlCharacter {
        /// Byte offset of the offending character.
        at: usize,
    },
    /// The selector looks like an RFC 6570 URI template but is not a valid one.
    #[error("invalid uri template {template:?}: {reason} (at byte {at})")]
    InvalidTemplate {
        /// The rejected template.
        template: String,
        /// What is wrong.
        reason: &'static str,
        /// Byte offset where the problem was found.
        at: usize,
    },
    /// The selector is not a valid WHATWG URL pattern.
    #[error("invalid url pattern {pattern:?}: {reason}")]
    InvalidUrlPattern {
        /// The rejected pattern.
        pattern: String,
        /// What the URL pattern parser reported.
        reason: String,
    },
}
