//! Methods, bodies and HTTP versions.

use std::time::Duration;

use http::Method;
use sse_client::{Backoff, EventSource, Item};

use crate::support::*;

async fn post_body_and_headers_are_sent_on_every_attempt(via: Via) {
    let server = TestServer::start(vec![
        Reply::stream(vec![send("id: c1\ndata: {\"x\":1}\n\n")]),
        Reply::stream(vec![send("data: [DONE]\n\n"), Step::Stall]),
    ])
    .await;
    let body = r#"{"model":"m","stream":true}"#;
    let mut es = post_via(via, server.url("/v1/chat/completions"))
        .bearer_auth("sk-test")
        .header("content-type", "application/json")
        .body(body)
        .backoff(Backoff {
            jitter: 0.0,
            ..Backoff::default()
        })
        .build()
        .unwrap();
    let items = collect(&mut es, 2).await;
    assert_eq!(data(&items), ["{\"x\":1}", "[DONE]"]);
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert_eq!(s.method, Method::POST);
        assert_eq!(s.body, body.as_bytes());
        assert_eq!(s.header("authorization"), Some("Bearer sk-test"));
        assert_eq!(s.header("content-type"), Some("application/json"));
        assert_eq!(s.header("accept"), Some("text/event-stream"));
    }
    assert_eq!(seen[1].header("last-event-id"), Some("c1"));
}

async fn any_method_is_allowed(via: Via) {
    let server =
        TestServer::start(vec![Reply::stream(vec![send("data: a\n\n"), Step::Stall])]).await;
    let method = Method::from_bytes(b"QUERY").unwrap();
    let mut es = EventSource::builder(method.clone(), server.url("/.well-known/mercure"))
        .transport(via.transport())
        .header("content-type", "application/x-www-form-urlencoded")
        .body("match=*")
        .build()
        .unwrap();
    collect(&mut es, 1).await;
    let seen = server.seen();
    assert_eq!(seen[0].method, method);
    assert_eq!(seen[0].body, "match=*".as_bytes());
}

#[tokio::test(start_paused = true)]
async fn works_over_http2() {
    let server =
        TestServer::start(vec![Reply::stream(vec![send("data: a\n\n"), Step::Stall])]).await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let mut es = get(server.url("/")).client(client).build().unwrap();
    let items = collect(&mut es, 1).await;
    let Ok(Item::Open(open)) = &items[0] else {
        panic!()
    };
    assert_eq!(open.version, http::Version::HTTP_2);
    assert_eq!(data(&items), ["a"]);
    assert_eq!(server.seen()[0].header("accept"), Some("text/event-stream"));
}

/// An HTTPS server (self-signed for `localhost`, ALPN h2 and http/1.1)
/// answering every request with one event carrying the request's
/// `Last-Event-ID`, then ending the stream.
async fn tls_server() -> (std::net::SocketAddr, Vec<u8>) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto;
    use hyper_util::service::TowerToHyperService;

    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let pem = cert.cert.pem().into_bytes();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let app = axum::Router::new().fallback(|headers: http::HeaderMap| async move {
        let last = headers
            .get("last-event-id")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let next = last.parse::<u32>().map_or(1, |n| n + 1);
        (
            [("content-type", "text/event-stream")],
            format!("id: {next}\ndata: after [{last}]\n\n"),
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (acceptor, service) = (acceptor.clone(), TowerToHyperService::new(app.clone()));
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, pem)
}

#[tokio::test]
async fn works_over_tls_with_http2_negotiated_by_alpn() {
    let (addr, pem) = tls_server().await;
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .resolve("localhost", addr)
        .build()
        .unwrap();
    let mut es = EventSource::get(format!("https://localhost:{}/", addr.port()))
        .client(client)
        .backoff(Backoff {
            initial: Duration::from_millis(10),
            jitter: 0.0,
            ..Backoff::default()
        })
        .build()
        .unwrap();
    let items = collect(&mut es, 3).await;
    let Ok(Item::Open(open)) = &items[0] else {
        panic!("{:?}", kinds(&items))
    };
    assert_eq!(open.version, http::Version::HTTP_2);
    // Each reconnection resumes from the id the previous connection ended on.
    assert_eq!(data(&items), ["after []", "after [1]", "after [2]"]);
}

each_transport!(
    post_body_and_headers_are_sent_on_every_attempt,
    any_method_is_allowed,
);
