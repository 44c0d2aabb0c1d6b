//! Hot-path costs: selector matching (raw and memoized) and token verification.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use ssehub::auth::{AuthConfig, Authorizer, Key, MintClaims, MintTopic, Role, VerifyingKey, mint};
use ssehub::topic::{Selector, SelectorCache};

const TOPIC: &str = "https://example.com/books/1234";

fn matching(c: &mut Criterion) {
    let cache = SelectorCache::default();
    let exact = cache.exact(TOPIC).unwrap();
    let template = cache.topic("https://example.com/books/{id}").unwrap();
    let pattern = cache.url_pattern("https://example.com/books/:id").unwrap();

    c.bench_function("exact/match", |b| {
        b.iter(|| exact.matches(black_box(TOPIC)))
    });
    c.bench_function("template/raw", |b| {
        b.iter(|| template.matches(black_box(TOPIC)))
    });
    c.bench_function("template/memoized", |b| {
        b.iter(|| cache.matches(&template, black_box(TOPIC)))
    });
    c.bench_function("urlpattern/raw", |b| {
        b.iter(|| pattern.matches(black_box(TOPIC)))
    });
    c.bench_function("urlpattern/memoized", |b| {
        b.iter(|| cache.matches(&pattern, black_box(TOPIC)))
    });
    c.bench_function("template/compile", |b| {
        b.iter(|| Selector::parse_topic(black_box("https://example.com/{a}/{+b}{?c,d}")).unwrap())
    });
    c.bench_function("urlpattern/compile", |b| {
        b.iter(|| Selector::url_pattern(black_box("https://example.com/books/:id"), None).unwrap())
    });

    // Fan-out: 10,000 subscribers over 100 distinct templates, one update.
    let subscribers: Vec<Arc<Selector>> = (0..10_000)
        .map(|i| {
            cache
                .topic(&format!("https://example.com/shelf{}/{{id}}", i % 100))
                .unwrap()
        })
        .collect();
    let update = ["https://example.com/shelf42/7"];
    c.bench_function("fanout/10k-subscribers-100-templates", |b| {
        b.iter(|| {
            subscribers
                .iter()
                .filter(|s| cache.matches(s, black_box(update[0])))
                .count()
        })
    });
    c.bench_function("fanout/10k-subscribers-100-templates-prepared", |b| {
        b.iter(|| {
            let prepared = [cache.prepare(black_box(update[0]))];
            subscribers
                .iter()
                .filter(|s| cache.matches_any_prepared(std::slice::from_ref(*s), &prepared))
                .count()
        })
    });
}

fn verification(c: &mut Criterion) {
    let secret = b"!ChangeThisMercureHubJWTSecretKey!";
    let hub = Authorizer::new(AuthConfig::new(VerifyingKey::secret(secret, None).unwrap()));
    let mut claims = MintClaims::default();
    claims.publish = vec![MintTopic::exact("https://example.com/books/{id}")];
    claims.subscribe = vec![MintTopic::exact("*")];
    let token = mint(&Key::secret(secret, None).unwrap(), claims).unwrap();
    c.bench_function("verify/hs256-mercure", |b| {
        b.iter(|| hub.verify(black_box(&token), Role::Publisher).unwrap())
    });
}

criterion_group!(benches, matching, verification);
criterion_main!(benches);
