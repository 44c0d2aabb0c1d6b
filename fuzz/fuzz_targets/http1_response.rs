//! Fuzzes the lean HTTP/1.1 transport of `sse-client` on what a server sends
//! (`sse_client::lean::decode_response`: the response head, then the body
//! framing: length, chunked with extensions and trailers, or read to close).
//! Never a panic; and the same head, body and errors whatever the reads'
//! cuts.
//!
//! The first input byte picks the read size (low nibble, 1-16 bytes) and,
//! if its high bit is set, puts a chunked `200` head before the rest so the
//! runs go straight to the chunk decoder; the rest is the response.
//!
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run http1_response -- -max_total_time=180 -max_len=4096`

#![no_main]

use libfuzzer_sys::fuzz_target;
use sse_client::lean::decode_response;

const CHUNKED_HEAD: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";

fuzz_target!(|input: &[u8]| {
    let Some((&seed, rest)) = input.split_first() else {
        return;
    };
    // Longer heads may fit whole but not in pieces (the limit is checked
    // between reads): keep inputs under it.
    if rest.len() > 8 * 1024 {
        return;
    }
    let response = if seed & 0x80 != 0 {
        [CHUNKED_HEAD, rest].concat()
    } else {
        rest.to_vec()
    };
    let step = usize::from(seed & 0x0f) + 1;
    let cuts: Vec<usize> = (step..response.len()).step_by(step).collect();
    let whole = decode_response(&response, &[]);
    let pieces = decode_response(&response, &cuts);
    match (&whole, &pieces) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        _ => panic!("whole {whole:?}, in pieces of {step} {pieces:?}"),
    }
});
