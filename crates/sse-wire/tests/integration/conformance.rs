//! Runs every case of `conformance/parse-cases.json`, the file the
//! JavaScript parser and `ssehub parse` are checked against too.

use serde::Deserialize;
use sse_wire::Parser;

use crate::parse_chunks;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    chunks: Option<Vec<String>>,
    chunks_hex: Option<Vec<String>>,
    events: Vec<Expected>,
    retry: Option<u64>,
    last_event_id: String,
}

#[derive(Deserialize, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
struct Expected {
    #[serde(rename = "type")]
    kind: String,
    data: String,
    id: String,
}

fn unhex(hex: &str) -> Vec<u8> {
    assert!(hex.len() % 2 == 0, "odd hex length in {hex:?}");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digits"))
        .collect()
}

fn load() -> Vec<Case> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../conformance/parse-cases.json"
    );
    let text = std::fs::read_to_string(path).expect("read parse-cases.json");
    serde_json::from_str(&text).expect("parse-cases.json matches the documented shape")
}

#[test]
fn every_shared_case_passes() {
    let cases = load();
    assert!(cases.len() >= 50, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let chunks: Vec<Vec<u8>> = match (&case.chunks, &case.chunks_hex) {
            (Some(text), None) => text.iter().map(|c| c.as_bytes().to_vec()).collect(),
            (None, Some(hex)) => hex.iter().map(|c| unhex(c)).collect(),
            _ => panic!("{}: exactly one of chunks and chunks_hex", case.name),
        };
        let (events, parser) = parse_chunks(Parser::new(), &chunks);
        let got: Vec<Expected> = events
            .iter()
            .map(|ev| Expected {
                kind: ev.event_type().to_owned(),
                data: ev.data.clone(),
                id: ev.id.clone().unwrap_or_default(),
            })
            .collect();
        if got != case.events
            || parser.retry() != case.retry
            || parser.last_event_id() != case.last_event_id
        {
            failures.push(format!(
                "{}: got {got:?} retry {:?} last id {:?}; want {:?} retry {:?} last id {:?}",
                case.name,
                parser.retry(),
                parser.last_event_id(),
                case.events,
                case.retry,
                case.last_event_id
            ));
        }
        // Whatever the chunking, one byte at a time gives the same result.
        let bytes: Vec<u8> = chunks.concat();
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        let (again, _) = parse_chunks(Parser::new(), &singles);
        assert_eq!(again, events, "{}: byte-by-byte differs", case.name);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
