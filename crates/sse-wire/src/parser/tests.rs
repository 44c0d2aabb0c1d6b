use super::*;

/// Feeds `chunks` in order and returns every item and the parser.
fn run(mut parser: Parser, chunks: &[&[u8]]) -> (Vec<Result<Frame, ParseError>>, Parser) {
    let mut out = Vec::new();
    for chunk in chunks {
        out.extend(parser.feed(chunk));
    }
    (out, parser)
}

fn events(chunks: &[&[u8]]) -> Vec<Event> {
    run(Parser::new(), chunks)
        .0
        .into_iter()
        .map(|item| match item {
            Ok(Frame::Event(ev)) => ev,
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

fn datas(chunks: &[&[u8]]) -> Vec<String> {
    events(chunks).into_iter().map(|ev| ev.data).collect()
}

#[test]
fn bom_is_skipped_at_stream_start() {
    assert_eq!(datas(&[b"\xEF\xBB\xBFdata: x\n\n"]), ["x"]);
}

#[test]
fn bom_split_across_chunks_is_skipped() {
    assert_eq!(datas(&[b"\xEF", b"\xBB", b"\xBFdata: x\n\n"]), ["x"]);
}

#[test]
fn bom_is_skipped_only_once() {
    // The second BOM belongs to the field name, which is then unknown.
    assert_eq!(
        datas(&[b"\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\ndata: y\n\n"]),
        ["y"]
    );
}

#[test]
fn bom_after_the_first_line_is_not_skipped() {
    assert_eq!(datas(&[b"\n\xEF\xBB\xBFdata: x\n\ndata: y\n\n"]), ["y"]);
}

#[test]
fn partial_bom_is_kept_as_line_content() {
    // EF BB then 'd': not a BOM, so the first field name is not `data`.
    assert_eq!(datas(&[b"\xEF\xBB", b"data: x\n\ndata: y\n\n"]), ["y"]);
    assert_eq!(
        datas(&[b"\xEF\xBB:\ndata: y\n\n"]),
        ["y"],
        "a line of partial BOM then a colon is a field named U+FFFD"
    );
}

#[test]
fn lines_end_in_lf_cr_or_crlf() {
    assert_eq!(datas(&[b"data: a\n\n"]), ["a"]);
    assert_eq!(datas(&[b"data: a\r\r"]), ["a"]);
    assert_eq!(datas(&[b"data: a\r\n\r\n"]), ["a"]);
    assert_eq!(datas(&[b"data: a\rdata: b\ndata: c\r\n\n"]), ["a\nb\nc"]);
}

#[test]
fn crlf_split_across_chunks_is_one_line_break() {
    assert_eq!(
        datas(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]),
        ["a\nb"]
    );
}

#[test]
fn cr_at_chunk_end_followed_by_other_byte() {
    assert_eq!(datas(&[b"data: a\r", b"data: b\r", b"\r"]), ["a\nb"]);
}

#[test]
fn comments_are_skipped_by_default() {
    assert_eq!(datas(&[b": hi\ndata: a\n:\n\n"]), ["a"]);
}

#[test]
fn comments_are_yielded_when_enabled() {
    let (out, _) = run(Parser::new().with_comments(true), &[b": hi\n:  two\n:\n"]);
    assert_eq!(
        out,
        [
            Ok(Frame::Comment("hi".into())),
            Ok(Frame::Comment(" two".into())),
            Ok(Frame::Comment(String::new())),
        ]
    );
}

#[test]
fn comment_does_not_dispatch() {
    assert_eq!(datas(&[b"data: a\n: x\ndata: b\n\n"]), ["a\nb"]);
}

#[test]
fn line_without_colon_is_field_with_empty_value() {
    assert_eq!(datas(&[b"data\n\n"]), [""]);
    assert_eq!(datas(&[b"data: a\ndata\n\n"]), ["a\n"]);
}

#[test]
fn one_leading_space_is_dropped() {
    assert_eq!(datas(&[b"data:x\n\n"]), ["x"]);
    assert_eq!(datas(&[b"data: x\n\n"]), ["x"]);
    assert_eq!(datas(&[b"data:  x \n\n"]), [" x "]);
    let ev = &events(&[b"event:  t\nid:  1\ndata\n\n"])[0];
    assert_eq!(
        (ev.event.as_deref(), ev.id.as_deref()),
        (Some(" t"), Some(" 1"))
    );
}

#[test]
fn value_may_contain_colons() {
    assert_eq!(datas(&[b"data: a: b:c\n\n"]), ["a: b:c"]);
}

#[test]
fn id_with_nul_is_ignored() {
    let evs = events(&[b"id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\n"]);
    assert_eq!(evs[1].id.as_deref(), Some("1"));
}

#[test]
fn empty_id_resets_last_event_id() {
    let (out, parser) = run(Parser::new(), &[b"id: 1\ndata: a\n\nid\ndata: b\n\n"]);
    assert_eq!(out[1], Ok(Frame::Event(Event::new("b"))));
    assert_eq!(parser.last_event_id(), "");
}

#[test]
fn id_persists_across_events() {
    let evs = events(&[b"id: 1\ndata: a\n\ndata: b\n\n"]);
    assert_eq!(evs[1].id.as_deref(), Some("1"));
}

#[test]
fn last_event_id_changes_at_the_blank_line() {
    let (_, parser) = run(Parser::new(), &[b"id: 1\n\nid: 2\n"]);
    assert_eq!(parser.last_event_id(), "1");
}

#[test]
fn retry_accepts_digits_only() {
    for bad in [
        &b"retry: 12a\n"[..],
        b"retry: -1\n",
        b"retry: 1.5\n",
        b"retry:\n",
        b"retry\n",
        b"retry:  10\n",
        b"retry: 99999999999999999999999\n",
    ] {
        let (_, parser) = run(Parser::new(), &[bad, b"\n"]);
        assert_eq!(parser.retry(), None, "{:?}", String::from_utf8_lossy(bad));
    }
    let (out, parser) = run(Parser::new(), &[b"retry: 1500\ndata: x\n\ndata: y\n\n"]);
    assert_eq!(parser.retry(), Some(1500));
    assert_eq!(out[0], Ok(Frame::Event(Event::new("x").with_retry(1500))));
    assert_eq!(
        out[1],
        Ok(Frame::Event(Event::new("y"))),
        "retry is per event"
    );
}

#[test]
fn retry_applies_without_dispatch() {
    let (out, parser) = run(Parser::new(), &[b"retry: 10\n\n"]);
    assert!(out.is_empty());
    assert_eq!(parser.retry(), Some(10));
}

#[test]
fn unknown_and_wrong_case_fields_are_ignored() {
    let evs = events(&[b"foo: bar\nData: no\nID: 9\nEvent: t\nRetry: 5\ndata: x\n\n"]);
    assert_eq!(evs, [Event::new("x")]);
    let (_, parser) = run(Parser::new(), &[b"Retry: 5\nID: 9\n\n"]);
    assert_eq!((parser.retry(), parser.last_event_id()), (None, ""));
}

#[test]
fn empty_data_is_not_dispatched_but_id_sticks() {
    let (out, parser) = run(Parser::new(), &[b"id: 5\n\n"]);
    assert!(out.is_empty());
    assert_eq!(parser.last_event_id(), "5");
    assert_eq!(datas(&[b"event: t\n\n"]), Vec::<String>::new());
}

#[test]
fn data_lines_are_joined_and_the_final_lf_removed() {
    assert_eq!(datas(&[b"data: a\ndata:\ndata: b\n\n"]), ["a\n\nb"]);
    assert_eq!(datas(&[b"data:\ndata:\n\n"]), ["\n"]);
}

#[test]
fn event_type_resets_after_each_dispatch() {
    let evs = events(&[b"event: t\ndata: a\n\ndata: b\n\n"]);
    assert_eq!(evs[0].event_type(), "t");
    assert_eq!(evs[1].event, None);
    // Even when the blank line dispatched nothing.
    let evs = events(&[b"event: t\n\ndata: b\n\n"]);
    assert_eq!(evs[0].event, None);
}

#[test]
fn empty_event_type_means_message() {
    let evs = events(&[b"event\ndata: a\n\n"]);
    assert_eq!(evs[0].event, None);
}

#[test]
fn unfinished_final_event_is_dropped() {
    assert!(datas(&[b"data: a\n"]).is_empty());
    assert!(datas(&[b"data: a"]).is_empty());
    assert!(datas(&[b"data: a\n\ndata: b\n"]).len() == 1);
}

#[test]
fn invalid_utf8_becomes_replacement_character() {
    assert_eq!(datas(&[b"data: a\xFFb\n\n"]), ["a\u{FFFD}b"]);
    let evs = events(&[b"event: \xC0t\nid: \xFE\ndata: x\n\n"]);
    assert_eq!(evs[0].event.as_deref(), Some("\u{FFFD}t"));
    assert_eq!(evs[0].id.as_deref(), Some("\u{FFFD}"));
}

#[test]
fn truncated_utf8_does_not_stall_the_stream() {
    // A sequence cut by the line end is replaced; later events still come.
    assert_eq!(
        datas(&[b"data: \xE2\x82\n\ndata: ok\n\n"]),
        ["\u{FFFD}", "ok"]
    );
}

#[test]
fn multi_byte_character_split_across_chunks() {
    assert_eq!(
        datas(&[b"data: \xE2", b"\x82", b"\xAC\n", b"\n"]),
        ["\u{20AC}"]
    );
}

#[test]
fn with_last_event_id_carries_over_to_events() {
    let (out, parser) = run(
        Parser::new().with_last_event_id("41"),
        &[b"data: a\n\nid: 42\ndata: b\n\n"],
    );
    assert_eq!(out[0], Ok(Frame::Event(Event::new("a").with_id("41"))));
    assert_eq!(out[1], Ok(Frame::Event(Event::new("b").with_id("42"))));
    assert_eq!(parser.last_event_id(), "42");
}

#[test]
fn dropping_feed_early_loses_no_bytes() {
    let mut parser = Parser::new();
    let first = parser.feed(b"data: a\n\ndata: b\n\ndata: c").next();
    assert_eq!(first, Some(Ok(Frame::Event(Event::new("a")))));
    // Drop a second feed before taking anything.
    drop(parser.feed(b"1\n"));
    let rest: Vec<_> = parser.feed(b"\n").collect();
    assert_eq!(
        rest,
        [
            Ok(Frame::Event(Event::new("b"))),
            Ok(Frame::Event(Event::new("c1")))
        ]
    );
}

#[test]
fn line_over_the_limit_is_an_error_then_parsing_resumes() {
    for chunks in [
        &[&b"data: 0123456789\ndata: z\n\ndata: ok\n\n"[..]][..],
        &[b"data: 01234", b"56789", b"\ndata: z\n\ndata: ok\n\n"],
        &[b"data: 0123456789", b"\ndata: z\n", b"\ndata: ok\n\n"],
    ] {
        let (out, _) = run(Parser::new().with_max_event_bytes(12), chunks);
        assert_eq!(
            out,
            [
                Err(ParseError::EventTooLarge { limit: 12 }),
                Ok(Frame::Event(Event::new("ok")))
            ],
            "{chunks:?}"
        );
    }
}

#[test]
fn data_over_the_limit_across_lines_is_an_error() {
    let (out, _) = run(
        Parser::new().with_max_event_bytes(10),
        &[b"data: abcd\ndata: efgh\ndata: ijkl\n\ndata: ok\n\n"],
    );
    assert_eq!(
        out,
        [
            Err(ParseError::EventTooLarge { limit: 10 }),
            Ok(Frame::Event(Event::new("ok")))
        ]
    );
}

#[test]
fn limit_error_is_reported_once_per_event() {
    let (out, _) = run(
        Parser::new().with_max_event_bytes(4),
        &[b"data: long\ndata: longer\n", b"xxxxxxxxxxxx", b"\n\n"],
    );
    assert_eq!(out, [Err(ParseError::EventTooLarge { limit: 4 })]);
}

#[test]
fn line_at_the_limit_is_accepted() {
    let (out, _) = run(
        Parser::new().with_max_event_bytes(7),
        &[b"data: a", b"b\n\n"],
    );
    assert_eq!(out, [Err(ParseError::EventTooLarge { limit: 7 })]);
    let (out, _) = run(
        Parser::new().with_max_event_bytes(8),
        &[b"data: a", b"b\n\n"],
    );
    assert_eq!(out, [Ok(Frame::Event(Event::new("ab")))]);
}

#[test]
fn over_long_partial_line_is_not_buffered() {
    let mut parser = Parser::new().with_max_event_bytes(16);
    let big = vec![b'x'; 1000];
    assert_eq!(
        parser.feed(&big).collect::<Vec<_>>(),
        [Err(ParseError::EventTooLarge { limit: 16 })]
    );
    for _ in 0..100 {
        assert!(parser.feed(&big).next().is_none());
    }
    assert!(parser.line.capacity() <= 16);
    let ok: Vec<_> = parser.feed(b"\n\ndata: ok\n\n").collect();
    assert_eq!(ok, [Ok(Frame::Event(Event::new("ok")))]);
}

#[test]
fn many_invalid_lines_in_one_chunk_are_utf8_checked_once() {
    let input = b"data: \xFF\n".repeat(20_000);
    let before = UTF8_CHECKED.with(std::cell::Cell::get);
    let mut parser = Parser::new();
    assert_eq!(parser.feed(&input).count(), 0);
    assert_eq!(parser.feed(b"\n").count(), 1);
    let checked = UTF8_CHECKED.with(std::cell::Cell::get) - before;
    assert!(
        checked <= input.len(),
        "checked {checked} bytes of {}",
        input.len()
    );
}

#[test]
fn single_long_line_in_small_chunks_is_scanned_once() {
    let mut parser = Parser::new();
    let mut input = b"data: ".to_vec();
    input.resize(1 << 20, b'y');
    input.extend_from_slice(b"\n\n");
    let mut got = Vec::new();
    for chunk in input.chunks(7) {
        got.extend(parser.feed(chunk));
    }
    assert_eq!(got.len(), 1);
    // A constant number of times: once by the CR search, at most twice
    // by the LF search (the fast path, then the general one).
    assert!(
        parser.scanned <= 3 * input.len(),
        "scanned {} bytes of {}",
        parser.scanned,
        input.len()
    );
}

/// Every frame `chunks` completes, lent, converted to owned for comparison.
fn run_ref(mut parser: Parser, chunks: &[&[u8]]) -> (Vec<Result<Frame, ParseError>>, Parser) {
    let mut out = Vec::new();
    for chunk in chunks {
        parser.feed_with(chunk, |frame| out.push(frame.map(Frame::from)));
    }
    (out, parser)
}

#[test]
fn one_line_data_is_lent_straight_from_the_chunk() {
    let chunk = b"id: 1\ndata: hello\n\nevent: t\r\ndata: crlf\r\n\r\n";
    let range = chunk.as_ptr_range();
    let mut parser = Parser::new();
    let mut feed = parser.feed(chunk);
    let mut seen = 0;
    while let Some(frame) = feed.next_ref() {
        let Ok(FrameRef::Event(ev)) = frame else {
            panic!("unexpected {frame:?}");
        };
        // The fast path (LF) and the general path (CRLF) both lend.
        assert!(range.contains(&ev.data.as_ptr()), "{ev:?} copied");
        assert_eq!(ev.id, Some("1"));
        seen += 1;
    }
    assert_eq!(seen, 2);
}

#[test]
fn lent_frames_equal_owned_frames() {
    let cases: &[&[&[u8]]] = &[
        &[b"data: a\ndata: b\n\n"],
        &[b"data: a\n", b"data: b\n\n"],
        &[b"data: a\n", b"\n"],
        &[b"data: a", b"b\n\n"],
        &[b"data: a\r", b"\ndata: b\r\n\r\n"],
        &[b"event: x\ndata: 1\n\ndata: 2\n\n"],
        &[b"data: \xFF\n\ndata: ok\n\n"],
        &[b"id: a\0\ndata: x\n\nid\ndata\n\n"],
        &[b"\xEF\xBB\xBFdata: bom\n\n"],
        &[b"retry: 10\ndata: x\n\nretry: 1x\n\n"],
    ];
    for &chunks in cases {
        assert_eq!(
            run_ref(Parser::new(), chunks).0,
            run(Parser::new(), chunks).0,
            "{chunks:?}"
        );
    }
    let limited = Parser::new().with_max_event_bytes(10);
    let chunks: &[&[u8]] = &[b"data: abcd\ndata: efgh\ndata: ijkl\n\ndata: ok\n\n"];
    assert_eq!(run_ref(limited.clone(), chunks).0, run(limited, chunks).0);
}

#[test]
fn lent_data_outlives_a_feed_dropped_mid_event() {
    let mut parser = Parser::new().with_comments(true);
    {
        let mut feed = parser.feed(b"data: a\n: note\ndata");
        assert_eq!(feed.next_ref(), Some(Ok(FrameRef::Comment("note"))));
        // Dropped here with "data: a" lent from this chunk, its event open.
    }
    let mut got = Vec::new();
    parser.feed_with(b": b\n\n", |frame| got.push(frame.map(Frame::from)));
    // The rest of the first chunk ("data") opens the next line.
    assert_eq!(got, [Ok(Frame::Event(Event::new("a\nb")))]);
}

#[test]
fn lent_event_type_resets_after_each_event() {
    let mut parser = Parser::new();
    let mut types = Vec::new();
    parser.feed_with(b"event: x\ndata: 1\n\ndata: 2\n\n", |frame| {
        if let Ok(FrameRef::Event(ev)) = frame {
            types.push(ev.event.map(str::to_owned));
        }
    });
    assert_eq!(types, [Some("x".to_owned()), None]);
}
