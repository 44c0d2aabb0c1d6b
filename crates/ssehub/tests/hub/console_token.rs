//! `GET /console/dev-token` over a real socket: the first-run token to a client on this
//! machine, the ordinary 404 to a proxied or cross-site request and when there is no token.
//! (A peer on another address is refused too; the unit tests in `http/console_token.rs`
//! cover it, as a test cannot connect from a non-loopback address portably.)

use super::support::TestServer;

async fn ask(hub: &TestServer, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = hub
        .client
        .get(format!("http://{}/console/dev-token", hub.addr));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn the_first_run_token_is_given_to_this_machine_only() {
    let hub = TestServer::start_with(|c| c.console_token = Some("first-run-token".into())).await;
    let res = ask(&hub, &[]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["token"], "first-run-token");
    let same_origin = format!("http://{}", hub.addr);
    let res = ask(
        &hub,
        &[("origin", &same_origin), ("sec-fetch-site", "same-origin")],
    )
    .await;
    assert_eq!(res.status(), 200);

    for refused in [
        &[("x-forwarded-for", "192.0.2.7")][..],
        &[("forwarded", "for=192.0.2.7")],
        &[("host", "hub.example.com")],
        &[("origin", "https://evil.example")],
        &[("sec-fetch-site", "cross-site")],
    ] {
        let res = ask(&hub, refused).await;
        assert_eq!(res.status(), 404, "{refused:?}");
        let text = res.text().await.unwrap();
        assert!(!text.contains("first-run-token"), "{refused:?}: {text}");
    }
}

#[tokio::test]
async fn without_a_first_run_token_the_path_is_not_found() {
    let hub = TestServer::start().await;
    assert_eq!(ask(&hub, &[]).await.status(), 404);
}
