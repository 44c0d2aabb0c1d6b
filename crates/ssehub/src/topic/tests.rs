use std::sync::Arc;

use url::Url;

use super::cache::MEMO_SHARDS;
use super::*;
use proptest::prelude::*;

fn topic(s: &str) -> Selector {
    Selector::parse_topic(s).unwrap()
}

#[test]
fn star_matches_everything() {
    assert!(topic("*").matches("https://example.com/a"));
    assert!(topic("*").matches(""));
    assert!(Selector::exact("*").unwrap().matches("anything"));
    assert!(Selector::url_pattern("*", None).unwrap().matches("x"));
}

#[test]
fn exact_is_byte_for_byte() {
    let s = topic("https://example.com/books/1");
    assert!(s.matches("https://example.com/books/1"));
    assert!(!s.matches("https://example.com/books/10"));
    assert!(!s.matches("HTTPS://example.com/books/1"));
    assert!(!s.matches("https://example.com/books/1/"));
    // Without '{' a selector is never a template, even with a stray '}'.
    assert!(matches!(
        topic("https://example.com/a}"),
        Selector::Exact(_)
    ));
    let e = Selector::exact("https://example.com/{id}").unwrap();
    // 1.0 exact matching never interprets braces.
    assert!(!e.matches("https://example.com/1"));
    assert!(e.matches("https://example.com/{id}"));
}

#[test]
fn simple_template_matches_one_segment() {
    let s = topic("https://example.com/books/{id}");
    assert!(matches!(s, Selector::Template(_)));
    assert!(s.matches("https://example.com/books/1"));
    assert!(s.matches("https://example.com/books/abc-def_~.x"));
    assert!(s.matches("https://example.com/books/caf%C3%A9"));
    assert!(!s.matches("https://example.com/books/1/reviews"));
    assert!(!s.matches("https://example.com/books/a?b"));
    assert!(!s.matches("https://example.org/books/1"));
    // Anchored at both ends.
    assert!(!s.matches("xhttps://example.com/books/1"));
    // The template itself matches exactly (0.x: exact comparison first).
    assert!(s.matches("https://example.com/books/{id}"));
}

#[test]
fn template_literals_are_not_regex() {
    let s = topic("https://example.com/a.b/{id}");
    assert!(s.matches("https://example.com/a.b/1"));
    assert!(!s.matches("https://example.com/aXb/1"));
}

#[test]
fn reserved_expansion_crosses_slashes() {
    let s = topic("https://example.com/{+path}");
    assert!(s.matches("https://example.com/a/b/c"));
    assert!(s.matches("https://example.com/a/b?c=d"));
    let plain = topic("https://example.com/{path}");
    assert!(!plain.matches("https://example.com/a/b/c"));
}

#[test]
fn fragment_expansion() {
    let s = topic("https://example.com/page{#section}");
    assert!(s.matches("https://example.com/page#intro/part"));
    assert!(s.matches("https://example.com/page"));
    assert!(!s.matches("https://example.com/pageintro"));
}

#[test]
fn path_segment_and_label_expansion() {
    let s = topic("https://example.com{/seg}");
    assert!(s.matches("https://example.com/books"));
    assert!(!s.matches("https://example.com/books/1"));
    let exploded = topic("https://example.com{/seg*}");
    assert!(exploded.matches("https://example.com/books/1/x"));
    let two = topic("https://example.com{/a,b}");
    assert!(two.matches("https://example.com/x/y"));
    assert!(!two.matches("https://example.com/x/y/z"));
    let label = topic("https://example{.dom}/x");
    assert!(label.matches("https://example.com/x"));
    assert!(!label.matches("https://example/com/x"));
}

#[test]
fn query_expansion() {
    let s = topic("https://example.com/search{?q,lang}");
    assert!(s.matches("https://example.com/search?q=cat"));
    assert!(s.matches("https://example.com/search?q=cat&lang=fr"));
    assert!(s.matches("https://example.com/search"));
    assert!(!s.matches("https://example.com/search?q=cat&lang=fr&x=1"));
    let cont = topic("https://example.com/search?q=1{&page}");
    assert!(cont.matches("https://example.com/search?q=1&page=2"));
    let params = topic("https://example.com/map{;x,y}");
    assert!(params.matches("https://example.com/map;x=1;y=2"));
}

#[test]
fn malformed_templates_are_typed_errors() {
    for (bad, reason) in [
        ("https://example.com/{id", "unclosed '{'"),
        ("https://example.com/{}", "empty expression"),
        ("https://example.com/{=x}", "reserved operator"),
        ("https://example.com/{|x}", "reserved operator"),
        (
            "https://example.com/{a b}",
            "invalid character in variable name",
        ),
        ("https://example.com/{a{b}}", "nested '{'"),
        ("https://example.com/{a}}", "unmatched '}'"),
        (
            "https://example.com/{a:0}",
            "prefix modifier must be ':' followed by 1 to 9999",
        ),
        (
            "https://example.com/{a:10000}",
            "prefix modifier must be ':' followed by 1 to 9999",
        ),
        ("https://example.com/{a.}", "variable name ends with '.'"),
        (
            "https://example.com/{a..b}",
            "misplaced '.' in variable name",
        ),
        ("https://example.com/{.}", "empty variable name"),
        ("https://example.com/{a,}", "empty variable name"),
        (
            "https://example.com/{%4}",
            "truncated percent-encoding in variable name",
        ),
        (
            "https://example.com/{%zz}",
            "bad percent-encoding in variable name",
        ),
    ] {
        match Selector::parse_topic(bad) {
            Err(SelectorError::InvalidTemplate { reason: r, .. }) => {
                assert_eq!(r, reason, "{bad}")
            }
            other => panic!("{bad}: expected invalid template, got {other:?}"),
        }
    }
}

#[test]
fn valid_modifiers_and_names() {
    for ok in [
        "https://example.com/{a:3}",
        "https://example.com/{a*}",
        "https://example.com/{a.b_c%20}",
        "https://example.com/{x,y,z}",
    ] {
        assert!(Selector::parse_topic(ok).is_ok(), "{ok}");
    }
    assert!(topic("https://example.com/{a:3}").matches("https://example.com/abc"));
}

#[test]
fn too_long_and_control_characters_rejected() {
    let long = "a".repeat(MAX_SELECTOR_LEN + 1);
    assert!(matches!(
        Selector::parse_topic(&long),
        Err(SelectorError::TooLong { .. })
    ));
    assert!(matches!(
        Selector::exact("a\nb"),
        Err(SelectorError::ControlCharacter { at: 1 })
    ));
    assert!(matches!(
        Selector::url_pattern("https://e.com/\u{7f}", None),
        Err(SelectorError::ControlCharacter { .. })
    ));
}

#[test]
fn url_pattern_matches_named_groups() {
    let s = Selector::url_pattern("https://example.com/books/:id", None).unwrap();
    assert!(s.matches("https://example.com/books/1"));
    assert!(!s.matches("https://example.com/books/1/reviews"));
    assert!(!s.matches("https://example.org/books/1"));
    assert!(!s.matches("not a url at all \u{0}"));
    let wildcard = Selector::url_pattern("https://example.com/books/*", None).unwrap();
    assert!(wildcard.matches("https://example.com/books/1/reviews"));
}

#[test]
fn url_pattern_resolves_relative_against_base() {
    let s = Selector::url_pattern("/.well-known/mercure/subscriptions/:t/:s", None).unwrap();
    assert!(s.matches("/.well-known/mercure/subscriptions/a/b"));
    assert!(!s.matches("/other/a/b"));
    let base = Url::parse("https://hub.example.com/.well-known/mercure").unwrap();
    let s = Selector::url_pattern("/books/:id", Some(&base)).unwrap();
    assert!(s.matches("https://hub.example.com/books/1"));
    assert!(s.matches("/books/1"));
    assert!(!s.matches("https://elsewhere.example.com/books/1"));
}

#[test]
fn malformed_url_patterns_are_typed_errors() {
    for bad in [
        "https://example.com/books/:id(",
        "https://example.com/(a(?=b))",
        "https://example.com/:",
    ] {
        assert!(
            matches!(
                Selector::url_pattern(bad, None),
                Err(SelectorError::InvalidUrlPattern { .. })
            ),
            "{bad}"
        );
    }
}

#[test]
fn cache_interns_and_shares() {
    let cache = SelectorCache::default();
    let a = cache.topic("https://example.com/{id}").unwrap();
    let b = cache.topic("https://example.com/{id}").unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    // Same string under a different kind is a different selector.
    let c = cache.exact("https://example.com/{id}").unwrap();
    assert!(!Arc::ptr_eq(&a, &c));
    assert!(matches!(*c, Selector::Exact(_)));
    let all1 = cache.topic("*").unwrap();
    let all2 = cache.url_pattern("*").unwrap();
    assert!(Arc::ptr_eq(&all1, &all2));
    assert!(cache.topic("https://example.com/{").is_err());
}

#[test]
fn cache_intern_table_is_bounded_and_keeps_selectors_in_use() {
    let cache = SelectorCache::new(CacheLimits {
        selectors: 4,
        matches: 64,
    });
    let held: Vec<_> = (0..4)
        .map(|i| cache.exact(&format!("t{i}")).unwrap())
        .collect();
    // Table full of selectors in use: a new one is handed out but not interned.
    let extra = cache.exact("extra").unwrap();
    assert_eq!(cache.interned_len(), 4);
    assert!(!Arc::ptr_eq(&extra, &cache.exact("extra").unwrap()));
    // Once released, old entries make room.
    drop(held);
    let again = cache.exact("extra").unwrap();
    assert!(Arc::ptr_eq(&again, &cache.exact("extra").unwrap()));
    assert!(cache.interned_len() <= 4);
}

#[test]
fn cache_memoizes_and_stays_bounded() {
    let cache = SelectorCache::new(CacheLimits {
        selectors: 16,
        matches: MEMO_SHARDS * 2,
    });
    let s = cache.topic("https://example.com/{id}").unwrap();
    assert!(cache.matches(&s, "https://example.com/1"));
    assert!(cache.matches(&s, "https://example.com/1"));
    assert!(!cache.matches(&s, "https://example.com/1/2"));
    assert!(cache.memo_len() >= 1);
    for i in 0..1000 {
        assert!(cache.matches(&s, &format!("https://example.com/{i}")));
    }
    assert!(cache.memo_len() <= MEMO_SHARDS * 2);
    // Exact selectors bypass the memo.
    let before = cache.memo_len();
    let e = cache.exact("x").unwrap();
    assert!(cache.matches(&e, "x"));
    assert_eq!(cache.memo_len(), before);
}

#[test]
fn cache_memo_distinguishes_selectors_with_equal_source() {
    let cache = SelectorCache::default();
    // Compiled outside the cache: same source, different ids.
    let t = Selector::parse_topic("https://example.com/{id}").unwrap();
    let u = Selector::url_pattern("https://example.com/{id}", None).unwrap();
    assert!(cache.matches(&t, "https://example.com/1"));
    // The URL pattern reads `{id}` as an optional group of the literal "id".
    assert!(!cache.matches(&u, "https://example.com/1"));
}

#[test]
fn cache_base_url_resolves_relative_patterns() {
    let cache =
        SelectorCache::default().with_base_url(Url::parse("https://hub.example.com/").unwrap());
    let s = cache.url_pattern("/books/:id").unwrap();
    assert!(cache.matches(&s, "https://hub.example.com/books/1"));
    assert!(cache.matches(&s, "/books/1"));
    let plain = SelectorCache::default().url_pattern("/books/:id").unwrap();
    assert!(!plain.matches("https://hub.example.com/books/1"));
}

#[test]
fn shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SelectorCache>();
    assert_send_sync::<Arc<Selector>>();
}

#[test]
fn matches_any_covers_alternate_topics() {
    let cache = SelectorCache::default();
    let sels = vec![
        cache.exact("https://example.com/a").unwrap(),
        cache.url_pattern("https://example.com/b/:id").unwrap(),
    ];
    assert!(cache.matches_any(&sels, &["https://x/1", "https://example.com/b/2"]));
    assert!(!cache.matches_any(&sels, &["https://x/1"]));
    assert!(!cache.matches_any::<Arc<Selector>, &str>(&[], &["https://example.com/a"]));
    let t = cache.topic("https://example.com/c/{id}").unwrap();
    let prepared = [
        cache.prepare("https://x/1"),
        cache.prepare("https://example.com/c/9"),
    ];
    assert_eq!(prepared[1].as_str(), "https://example.com/c/9");
    assert!(cache.matches_any_prepared(std::slice::from_ref(&t), &prepared));
    assert!(!cache.matches_any_prepared(&[t], &prepared[..1]));
    assert!(cache.matches_any_prepared(&sels, &[cache.prepare("https://example.com/a")]));
}

proptest! {
    #[test]
    fn exact_and_star_never_panic(sel in any::<String>(), t in any::<String>()) {
        if let Ok(s) = Selector::exact(&sel) {
            prop_assert_eq!(s.matches(&t), sel == "*" || sel == t);
        }
        if let Ok(s) = Selector::parse_topic(&sel) {
            let _ = s.matches(&t);
        }
        prop_assert!(Selector::exact("*").unwrap().matches(&t));
    }

    #[test]
    fn template_and_urlpattern_parsing_never_panic(sel in "[a-z:/{}+#.?&;,*()%=|!@ ]{0,40}", t in ".{0,40}") {
        if let Ok(s) = Selector::parse_topic(&sel) {
            let _ = s.matches(&t);
        }
        if let Ok(s) = Selector::url_pattern(&sel, None) {
            let _ = s.matches(&t);
        }
    }
}

#[test]
fn confinement_to_a_prefix() {
    for confined in [
        "/demo/ticker/ACME",
        "/demo/ticker/{symbol}",
        "/demo/{+rest}",
        "/demo/",
    ] {
        assert!(topic(confined).confined_to("/demo/"), "{confined}");
    }
    for open in ["*", "/demo", "/demox/{a}", "{+all}", "/{x}/demo/", "/other"] {
        assert!(!topic(open).confined_to("/demo/"), "{open}");
    }
    // URL patterns resolve against a base, so none is taken as confined.
    let pattern = Selector::url_pattern("/demo/*", None).unwrap();
    assert!(!pattern.confined_to("/demo/"));
    assert!(!Selector::exact("*").unwrap().confined_to("/demo/"));
}

proptest! {
    /// A selector said to be confined never matches a topic outside its prefix, whatever the
    /// topic and the template's expressions.
    #[test]
    fn a_confined_template_matches_only_topics_under_its_prefix(
        expr in "\\{[+#./;?&]?[a-z]{1,3}\\*?\\}",
        tail in "[a-z/{}]{0,6}",
        lead in prop::sample::select(vec!["/demo/", "/demo", "/dem", "", "/x/demo/", "demo/"]),
        rest in "[/a-z.%0-9:?#=&,+*]{0,24}",
    ) {
        let source = format!("/demo/{expr}{tail}");
        let topic_text = format!("{lead}{rest}");
        if let Ok(s) = Selector::parse_topic(&source) {
            prop_assert!(s.confined_to("/demo/"));
            prop_assert!(!s.matches(&topic_text) || topic_text.starts_with("/demo/"));
        }
    }
}
