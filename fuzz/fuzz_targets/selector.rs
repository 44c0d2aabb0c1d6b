//! Fuzzes topic selectors, which subscribers and tokens send: 0.x selectors (exact, `*`,
//! RFC 6570 templates) and 1.0 URL patterns must parse or fail with a typed error, never
//! panic, and a parsed selector must match any topic without panicking.
//!
//! Input: a selector and a topic separated by the first NUL byte; the first byte picks
//! the kind.
//!
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run selector -- -max_total_time=180`

#![no_main]

use libfuzzer_sys::fuzz_target;
use ssehub::topic::Selector;

fuzz_target!(|input: &[u8]| {
    let Some((&kind, rest)) = input.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let (selector, topic) = text.split_once('\0').unwrap_or((text, "https://example.com/books/1"));
    let parsed = match kind % 3 {
        0 => Selector::parse_topic(selector),
        1 => Selector::exact(selector),
        _ => Selector::url_pattern(selector, None),
    };
    if let Ok(s) = parsed {
        let _ = s.matches(topic);
        let _ = s.matches(selector);
    }
});
