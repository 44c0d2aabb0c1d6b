//! Malformed requests: a specific 4xx naming the problem, and nothing stored.

use super::support::{TestServer, admin_token};

async fn status_and_body(res: reqwest::Response) -> (u16, String) {
    (res.status().as_u16(), res.text().await.unwrap())
}

#[tokio::test]
async fn malformed_publishes_are_refused_with_the_reason() {
    let hub = TestServer::start().await;
    // (form, expected status, phrase the message must contain)
    type Case<'a> = (&'a [(&'a str, &'a str)], u16, &'a str);
    let cases: &[Case] = &[
        (&[("data", "x")], 400, "missing topic"),
        (&[("topic", "/t"), ("id", "a\nb")], 400, "CR or LF"),
        (&[("topic", "/t"), ("id", "#frag")], 400, "'#'"),
        (
            &[("topic", "/t"), ("type", "evil\r\ndata: injected")],
            400,
            "CR or LF",
        ),
        (&[("topic", "/t"), ("retry", "soon")], 400, "ASCII digits"),
        (
            &[("topic", "/.well-known/mercure/subscriptions/x/y")],
            403,
            "reserved",
        ),
    ];
    for (form, status, needle) in cases {
        let (got, body) = status_and_body(hub.publish(form).await).await;
        assert_eq!(got, *status, "{form:?}: {body}");
        assert!(body.contains(needle), "{form:?}: {body}");
    }
    // None of them reached history.
    let mut sub = hub.subscribe("topic=*&lastEventID=earliest").await;
    let id = hub.publish_ok("/t", "only this").await;
    assert_eq!(sub.next_event().await.id.unwrap(), id);
}

#[tokio::test]
async fn a_duplicate_custom_id_is_a_conflict() {
    let hub = TestServer::start().await;
    assert_eq!(
        hub.publish(&[("topic", "/t"), ("id", "same")])
            .await
            .status(),
        200
    );
    let (status, body) =
        status_and_body(hub.publish(&[("topic", "/t"), ("id", "same")]).await).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("already exists"), "{body}");
}

#[tokio::test]
async fn too_large_a_body_is_413() {
    let hub = TestServer::start_with(|c| c.max_body_bytes = 1024).await;
    let big = "x".repeat(2048);
    let (status, body) =
        status_and_body(hub.publish(&[("topic", "/t"), ("data", &big)]).await).await;
    assert_eq!(status, 413);
    assert!(body.contains("1024"), "{body}");
    // Also without a Content-Length (chunked upload).
    let stream = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(format!(
        "topic=/t&data={big}"
    ))]);
    let res = hub
        .client
        .post(hub.hub_url())
        .bearer_auth(admin_token())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
}

#[tokio::test]
async fn publishing_needs_a_form_body() {
    let hub = TestServer::start().await;
    let res = hub
        .client
        .post(hub.hub_url())
        .bearer_auth(admin_token())
        .header("content-type", "application/json")
        .body(r#"{"topic": "/t"}"#)
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_body(res).await;
    assert_eq!(status, 415);
    assert!(body.contains("x-www-form-urlencoded"), "{body}");
}

#[tokio::test]
async fn malformed_tokens_are_401_saying_so() {
    let hub = TestServer::start().await;
    let (status, body) =
        status_and_body(hub.publish_with("not-a-jwt", &[("topic", "/t")]).await).await;
    assert_eq!(status, 401);
    assert!(body.contains("malformed token"), "{body}");
}

#[tokio::test]
async fn bad_subscriptions_are_400_naming_the_problem() {
    let hub = TestServer::start_with(|c| c.max_selectors = 3).await;
    let auth = format!("Bearer {}", admin_token());
    let headers = [("authorization", auth.as_str())];
    for (query, needle) in [
        ("", "missing topic selector"),
        ("topic=/a&topic=/b&topic=/c&topic=/d", "too many selectors"),
        ("topic=https%3A%2F%2Fx%2F%7Bunclosed", "invalid selector"),
        ("match_urlpattern=%3A%3A%3A%28", "invalid selector"),
    ] {
        let (status, body) = status_and_body(hub.subscribe_raw(query, &headers).await).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains(needle), "{query}: {body}");
    }
}

/// Regression (issue 15): invalid UTF-8 in a form field was replaced with U+FFFD and the
/// altered update stored and acknowledged.
#[tokio::test]
async fn invalid_utf8_in_published_data_is_400_naming_the_field() {
    let hub = TestServer::start().await;
    for (body, field) in [
        ("topic=%2Ft&data=caf%E9", "`data`"),
        ("topic=%2Ft%FF&data=x", "`topic`"),
    ] {
        let res = hub
            .client
            .post(hub.hub_url())
            .bearer_auth(admin_token())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        let (status, text) = status_and_body(res).await;
        assert_eq!(status, 400, "{body}: {text}");
        assert!(text.contains(field) && text.contains("UTF-8"), "{text}");
    }
    // Nothing was stored.
    let mut sub = hub.subscribe("topic=*&lastEventID=earliest").await;
    let id = hub.publish_ok("/t", "caf\u{e9}").await;
    let event = sub.next_event().await;
    assert_eq!(
        (event.id.unwrap(), event.data),
        (id, "caf\u{e9}".to_owned())
    );
}

#[tokio::test]
async fn other_methods_are_405() {
    let hub = TestServer::start().await;
    let res = hub.client.delete(hub.hub_url()).send().await.unwrap();
    assert_eq!(res.status(), 405);
}

/// Regression (issue 15): axum's own 404 and 405 answers had empty bodies.
#[tokio::test]
async fn unknown_paths_and_methods_say_so_in_the_body() {
    let hub = TestServer::start().await;
    let (status, body) = status_and_body(hub.get("/no/such/thing").await).await;
    assert_eq!(status, 404);
    assert!(body.contains("/no/such/thing"), "{body}");
    let res = hub.client.delete(hub.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 405);
    assert!(res.headers().contains_key("allow"));
    let body = res.text().await.unwrap();
    assert!(
        body.contains("DELETE") && body.contains("/healthz"),
        "{body}"
    );
}
