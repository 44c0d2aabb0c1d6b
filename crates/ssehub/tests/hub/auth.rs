//! Authorization: every refusal names the failed check, in the body and `WWW-Authenticate`.

use std::time::Duration;

use super::support::{SECRET, TestServer, expiring_token, token, token_v1};
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
    let mut claims = MintClaims::default();
    claims.publish = vec![MintTopic::exact("*")];
    claims.issued_at = Some(std::time::SystemTime::now() - Duration::from_secs(3600));
    claims.expires_in = Some(Duration::from_secs(60));
    let old = mint(&Key::secret(SECRET.as_bytes(), None).unwrap(), claims).unwrap();
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

#[tokio::test]
async fn a_subscription_ends_when_its_token_expires() {
    let hub = TestServer::start().await;
    let short = expiring_token(&["/t"], Duration::from_secs(2));
    let mut sub = hub
        .subscribe_with("topic=/t", &[("authorization", &format!("Bearer {short}"))])
        .await;
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
