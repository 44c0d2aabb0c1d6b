//! Authorization: every refusal names the failed check, in the body and `WWW-Authenticate`.

use std::time::Duration;

use super::support::{TestServer, expired_token, expiring_token, token, token_v1};
use ssehub::auth::{Key, MintClaims, MintTopic, mint};

async fn refusal(res: reqwest::Response) -> (u16, String, String) {
    let status = res.status().as_u16();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, challenge, res.text().await.unwrap())
}

#[tokio::test]
async fn publishing_without_a_token_is_401_and_says_where_to_put_one() {
    let hub = TestServer::start().await;
    let res = hub
        .client
        .post(hub.hub_url())
        .header("content-type", "application/x-www-form-urlencoded")
        .body("topic=/t&data=x")
        .send()
        .await
        .unwrap();
    let (status, challenge, body) = refusal(res).await;
    assert_eq!(status, 401);
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    assert!(body.contains("no token"), "{body}");
}

#[tokio::test]
async fn a_token_signed_with_another_key_is_a_bad_signature() {
    let hub = TestServer::start().await;
    let mut claims = MintClaims::default();
    claims.publish = vec![MintTopic::exact("*")];
    let forged = mint(&Key::secret(b"some-other-secret", None).unwrap(), claims).unwrap();
    let (status, challenge, body) =
        refusal(hub.publish_with(&forged, &[("topic", "/t")]).await).await;
    assert_eq!(status, 401);
    assert!(challenge.contains("invalid_token"), "{challenge}");
    assert!(body.contains("bad signature"), "{body}");
}

#[tokio::test]
async fn an_expired_token_says_it_expired() {
    let hub = TestServer::start().await;
    let old = expired_token(&["*"]);
    let (status, _, body) = refusal(hub.publish_with(&old, &[("topic", "/t")]).await).await;
    assert_eq!(status, 401);
    assert!(body.contains("expired"), "{body}");
}

#[tokio::test]
async fn publishing_to_a_topic_the_token_does_not_cover_is_403_naming_the_topic() {
    let hub = TestServer::start().await;
    let limited = token(&["/books/{id}"], &[]);
    assert_eq!(
        hub.publish_with(&limited, &[("topic", "/books/1")])
            .await
            .status(),
        200
    );
    let (status, challenge, body) = refusal(
        hub.publish_with(&limited, &[("topic", "/books/1"), ("topic", "/authors/1")])
            .await,
    )
    .await;
    assert_eq!(status, 403);
    assert!(challenge.contains("insufficient_scope"), "{challenge}");
    assert!(body.contains("/authors/1"), "{body}");
}

#[tokio::test]
async fn subscribers_need_a_token_unless_anonymous_is_enabled() {
    let closed = TestServer::start().await;
    let (status, _, body) = refusal(closed.subscribe_raw("topic=/t", &[]).await).await;
    assert_eq!(status, 401);
    assert!(body.contains("anonymous"), "{body}");
    let open = TestServer::start_with(|c| c.auth.anonymous = true).await;
    assert_eq!(open.subscribe_raw("topic=/t", &[]).await.status(), 200);
}

#[tokio::test]
async fn tokens_are_taken_from_the_query_and_from_the_cookie() {
    let hub = TestServer::start().await;
    let sub_token = token(&[], &["/t"]);
    assert_eq!(
        hub.subscribe_raw(&format!("topic=/t&authorization={sub_token}"), &[])
            .await
            .status(),
        200
    );
    let cookie = format!("mercureAuthorization={sub_token}");
    assert_eq!(
        hub.subscribe_raw("topic=/t", &[("cookie", &cookie)])
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn cookie_authenticated_publishing_checks_the_origin() {
    let hub =
        TestServer::start_with(|c| c.auth.publish_origins = vec!["https://app.example".into()])
            .await;
    let cookie = format!("mercureAuthorization={}", token(&["*"], &[]));
    let send = |origin: &'static str| {
        hub.client
            .post(hub.hub_url())
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", cookie.clone())
            .header("origin", origin)
            .body("topic=/t&data=x")
            .send()
    };
    assert_eq!(send("https://app.example").await.unwrap().status(), 200);
    let (status, _, body) = refusal(send("https://evil.example").await.unwrap()).await;
    assert_eq!(status, 403);
    assert!(body.contains("origin not allowed"), "{body}");
}

/// Regression (issue 15): without --resource-identifier the audience came from the request's
/// Host header, so a token minted for any other hub passed by naming that hub as the Host.
#[tokio::test]
async fn a_v1_token_for_the_host_header_the_client_sent_is_refused() {
    let hub = TestServer::start().await;
    let elsewhere = token_v1(&["*"], &["*"], "http://other.example/.well-known/mercure");
    let (status, challenge, body) = refusal(
        hub.client
            .post(hub.hub_url())
            .header("host", "other.example")
            .bearer_auth(&elsewhere)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("topic=/t&data=x")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert!(challenge.contains("invalid_token"), "{challenge}");
    // The hub names the audience it wants: its own URL from the address it listens on.
    assert!(body.contains("wrong audience"), "{body}");
    assert!(body.contains(&hub.hub_url()), "{body}");
    // A client that reaches the hub under another name (`:authority` on HTTP/2) fares no
    // better, subscribing over HTTP/1.1 (the hub's own writer) or HTTP/2.
    let other = format!("http://other.example:{}", hub.addr.port());
    let named = token_v1(&["*"], &["*"], &format!("{other}/.well-known/mercure"));
    for h2 in [false, true] {
        let mut client = reqwest::Client::builder().resolve("other.example", hub.addr);
        if h2 {
            client = client.http2_prior_knowledge();
        }
        let res = client
            .build()
            .unwrap()
            .get(format!("{other}/.well-known/mercure?topic=/t"))
            .bearer_auth(&named)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "h2: {h2}");
    }
}

#[tokio::test]
async fn a_configured_resource_identifier_is_the_audience() {
    let id = "https://hub.example/.well-known/mercure";
    let hub = TestServer::start_with(|c| c.auth.resource_identifier = Some(id.into())).await;
    let named = token_v1(&["*"], &[], id);
    assert_eq!(
        hub.publish_with(&named, &[("topic", "/t")]).await.status(),
        200
    );
    // The listen address is no longer the audience once one is configured.
    let local = token_v1(&["*"], &[], &hub.hub_url());
    assert_eq!(
        hub.publish_with(&local, &[("topic", "/t")]).await.status(),
        401
    );
}

#[tokio::test]
async fn v1_tokens_need_the_hubs_audience() {
    let hub = TestServer::start().await;
    let good = token_v1(&["*"], &[], &hub.hub_url());
    assert_eq!(
        hub.publish_with(&good, &[("topic", "/t")]).await.status(),
        200
    );
    let wrong = token_v1(&["*"], &[], "https://other-hub.example/.well-known/mercure");
    let (status, _, body) = refusal(hub.publish_with(&wrong, &[("topic", "/t")]).await).await;
    assert_eq!(status, 401);
    assert!(body.contains("wrong audience"), "{body}");
}

/// Regression (issue 15): the token lived 2 s from now in whole seconds, so anywhere in
/// 1-2 s, and a loaded machine could see the stream end before its first event.
#[tokio::test]
async fn a_subscription_ends_when_its_token_expires() {
    const LIFETIME: u64 = 4;
    let hub = TestServer::start().await;
    let short = expiring_token(&["/t"], LIFETIME);
    let mut sub = hub
        .subscribe_with("topic=/t", &[("authorization", &format!("Bearer {short}"))])
        .await
        .with_extra_patience(Duration::from_secs(LIFETIME + 1));
    hub.publish_ok("/t", "before").await;
    assert_eq!(sub.next_event().await.data, "before");
    // The stream ends by itself once the token is past its exp.
    let rest = sub.until_end().await;
    assert!(rest.is_empty(), "{rest:?}");
}

/// Regression: over HTTP/2 the host is in `:authority`, not `Host`, and 1.0 tokens were
/// refused as "wrong audience".
#[tokio::test]
async fn v1_tokens_name_the_same_audience_over_http2() {
    let hub = TestServer::start().await;
    let good = token_v1(&["*"], &["*"], &hub.hub_url());
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let res = h2
        .post(hub.hub_url())
        .bearer_auth(&good)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("topic=/t&data=x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.version(), reqwest::Version::HTTP_2);
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
}
