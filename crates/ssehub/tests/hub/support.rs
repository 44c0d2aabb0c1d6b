//! A `TestServer` running the hub in-process on `127.0.0.1:0`, and an SSE reader.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use sse_wire::{Event, Frame, Parser};
use ssehub::auth::{AuthConfig, ClaimFormat, Key, MintClaims, MintTopic, VerifyingKey, mint};
use ssehub::{Config, RunError};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The HS256 secret every test server verifies with.
pub(crate) const SECRET: &str = "test-secret-please-change-0123456789";

/// How long a test waits for something that should happen promptly before failing.
pub(crate) const PATIENCE: Duration = Duration::from_secs(10);

pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    pub(crate) shutdown: CancellationToken,
    pub(crate) handle: Option<JoinHandle<Result<(), RunError>>>,
    /// The data directory; taken over by the next server on [`TestServer::restart`].
    dir: Option<tempfile::TempDir>,
    pub(crate) client: reqwest::Client,
}

pub(crate) fn key() -> Key {
    Key::secret(SECRET.as_bytes(), None).unwrap()
}

/// These selectors as exact-match token topics.
fn exact(selectors: &[&str]) -> Vec<MintTopic> {
    selectors.iter().map(|s| MintTopic::exact(*s)).collect()
}

/// A 0.x token granting these publish and subscribe selectors.
pub(crate) fn token(publish: &[&str], subscribe: &[&str]) -> String {
    let mut claims = MintClaims::default();
    claims.publish = exact(publish);
    claims.subscribe = exact(subscribe);
    mint(&key(), claims).unwrap()
}

/// A token with everything allowed.
pub(crate) fn admin_token() -> String {
    token(&["*"], &["*"])
}

/// A subscriber token whose `exp` is more than `whole_secs` seconds away (and at most one
/// more). `exp` is whole seconds, so a lifetime of `n` s from now truncates to anywhere in
/// `(n - 1, n]`: a 1 s token could expire before its first use.
pub(crate) fn expiring_token(subscribe: &[&str], whole_secs: u64) -> String {
    let mut claims = MintClaims::default();
    claims.subscribe = exact(subscribe);
    claims.expires_in = Some(Duration::from_secs(whole_secs + 1));
    mint(&key(), claims).unwrap()
}

/// A publisher token that expired an hour ago, well past any leeway, so its refusal does not
/// depend on when the test runs.
pub(crate) fn expired_token(publish: &[&str]) -> String {
    let mut claims = MintClaims::default();
    claims.publish = exact(publish);
    claims.issued_at = Some(std::time::SystemTime::now() - Duration::from_secs(7200));
    claims.expires_in = Some(Duration::from_secs(3600));
    mint(&key(), claims).unwrap()
}

/// A 1.0 (`at+jwt`, `authorization_details`) token.
pub(crate) fn token_v1(publish: &[&str], subscribe: &[&str], audience: &str) -> String {
    let mut claims = MintClaims::default();
    claims.format = ClaimFormat::AuthorizationDetails;
    claims.publish = exact(publish);
    claims.subscribe = exact(subscribe);
    claims.audience = Some(audience.to_owned());
    claims.expires_in = Some(Duration::from_secs(3600));
    mint(&key(), claims).unwrap()
}

pub(crate) fn base_config(dir: &std::path::Path) -> Config {
    let auth = AuthConfig::new(VerifyingKey::secret(SECRET.as_bytes(), None).unwrap());
    Config::new(dir.to_path_buf(), auth)
}

impl TestServer {
    pub(crate) async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub(crate) async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = base_config(dir.path());
        adjust(&mut config);
        Self::start_config(config, dir).await
    }

    pub(crate) async fn start_config(config: Config, dir: tempfile::TempDir) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let tls = config.tls.is_some();
        let handle = tokio::spawn(ssehub::run(listener, config, shutdown.clone()));
        let client = reqwest::Client::builder().build().unwrap();
        let server = TestServer {
            addr,
            shutdown,
            handle: Some(handle),
            dir: Some(dir),
            client,
        };
        server.wait_healthy(tls).await;
        server
    }

    async fn wait_healthy(&self, tls: bool) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        // Only for the readiness probe: tests that use TLS verify the certificate themselves.
        let probe = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .build()
            .unwrap();
        let url = format!(
            "{}://{}/healthz",
            if tls { "https" } else { "http" },
            self.addr
        );
        loop {
            if let Ok(r) = probe.get(&url).send().await
                && r.status() == 200
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "hub did not become healthy"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub(crate) fn hub_url(&self) -> String {
        self.url("/.well-known/mercure")
    }

    /// Sends a GET of `path` with no credentials.
    pub(crate) async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// A GET of `path` carrying this bearer token, to send or extend.
    pub(crate) fn get_as(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(path)).bearer_auth(token)
    }

    /// Publishes a form with an all-powerful token.
    pub(crate) async fn publish(&self, form: &[(&str, &str)]) -> reqwest::Response {
        self.publish_with(&admin_token(), form).await
    }

    pub(crate) async fn publish_with(
        &self,
        token: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        self.client
            .post(self.hub_url())
            .bearer_auth(token)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Publishes and returns the acknowledged id.
    pub(crate) async fn publish_ok(&self, topic: &str, data: &str) -> String {
        let r = self.publish(&[("topic", topic), ("data", data)]).await;
        assert_eq!(
            r.status(),
            200,
            "publish refused: {}",
            r.text().await.unwrap()
        );
        r.text().await.unwrap()
    }

    /// Opens a subscription with an all-powerful token; fails the test unless it is a 200 stream.
    pub(crate) async fn subscribe(&self, query: &str) -> Sse {
        self.subscribe_as(query, &admin_token()).await
    }

    /// Opens a subscription with this bearer token; fails the test unless it is a 200 stream.
    pub(crate) async fn subscribe_as(&self, query: &str, token: &str) -> Sse {
        self.subscribe_with(query, &[("authorization", &format!("Bearer {token}"))])
            .await
    }

    /// Like [`Self::subscribe`], resuming after `last_event_id` sent as the header.
    pub(crate) async fn subscribe_after(&self, query: &str, last_event_id: &str) -> Sse {
        self.subscribe_with(
            query,
            &[
                ("authorization", &format!("Bearer {}", admin_token())),
                ("last-event-id", last_event_id),
            ],
        )
        .await
    }

    pub(crate) async fn subscribe_with(&self, query: &str, headers: &[(&str, &str)]) -> Sse {
        let res = self.subscribe_raw(query, headers).await;
        assert_eq!(res.status(), 200, "subscribe refused: {:?}", res.headers());
        Sse::new(res)
    }

    pub(crate) async fn subscribe_raw(
        &self,
        query: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self.client.get(format!("{}?{query}", self.hub_url()));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap()
    }

    /// Waits until `/metrics` has this exact line; fails the test after [`PATIENCE`].
    pub(crate) async fn wait_for_metric(&self, line: &str) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let metrics = self.get("/metrics").await.text().await.unwrap();
            if metrics.lines().any(|l| l == line) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "never saw {line:?} in /metrics:\n{metrics}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the hub and waits for `run` to return.
    pub(crate) async fn stop(mut self) -> Result<(), RunError> {
        self.stop_running().await
    }

    async fn stop_running(&mut self) -> Result<(), RunError> {
        self.shutdown.cancel();
        let handle = self.handle.take().unwrap();
        tokio::time::timeout(PATIENCE * 3, handle)
            .await
            .expect("hub did not stop")
            .unwrap()
    }

    /// Stops the hub and starts another on the same data directory, configured by `adjust`.
    pub(crate) async fn restart(mut self, adjust: impl FnOnce(&mut Config)) -> Self {
        self.stop_running()
            .await
            .expect("hub stopped with an error");
        let dir = self.dir.take().unwrap();
        let mut config = base_config(dir.path());
        adjust(&mut config);
        Self::start_config(config, dir).await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Reads an SSE response frame by frame through the `sse-wire` parser.
pub(crate) struct Sse {
    pub(crate) headers: reqwest::header::HeaderMap,
    body: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    parser: Parser,
    pending: std::collections::VecDeque<Frame>,
    ended: bool,
    /// How long to wait for the next frame before failing the test.
    patience: Duration,
}

impl Sse {
    pub(crate) fn new(res: reqwest::Response) -> Self {
        let headers = res.headers().clone();
        Sse {
            headers,
            body: res.bytes_stream().boxed(),
            parser: Parser::new().with_comments(true),
            pending: Default::default(),
            ended: false,
            patience: PATIENCE,
        }
    }

    /// Waits `extra` longer for each frame: for a stream that ends at a token's expiry.
    pub(crate) fn with_extra_patience(mut self, extra: Duration) -> Self {
        self.patience += extra;
        self
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The next frame, or `None` when the stream ended; fails the test after [`PATIENCE`]
    /// (plus any extra patience given).
    pub(crate) async fn next_frame(&mut self) -> Option<Frame> {
        tokio::time::timeout(self.patience, self.next_frame_inner())
            .await
            .expect("no frame within the patience window")
    }

    async fn next_frame_inner(&mut self) -> Option<Frame> {
        loop {
            if let Some(f) = self.pending.pop_front() {
                return Some(f);
            }
            if self.ended {
                return None;
            }
            match self.body.next().await {
                Some(Ok(chunk)) => {
                    for f in self.parser.feed(&chunk) {
                        self.pending
                            .push_back(f.expect("hub sent a malformed stream"));
                    }
                }
                Some(Err(_)) | None => self.ended = true,
            }
        }
    }

    /// The next event, skipping comments; fails the test if the stream ends first.
    pub(crate) async fn next_event(&mut self) -> Event {
        loop {
            match self.next_frame().await {
                Some(Frame::Event(e)) => return e,
                Some(_) => continue,
                None => panic!("stream ended while an event was expected"),
            }
        }
    }

    pub(crate) async fn events(&mut self, n: usize) -> Vec<Event> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.next_event().await);
        }
        out
    }

    /// The ids of the next `n` events; fails the test if one has no id.
    pub(crate) async fn event_ids(&mut self, n: usize) -> Vec<String> {
        self.events(n)
            .await
            .into_iter()
            .map(|e| e.id.unwrap())
            .collect()
    }

    /// Waits for the stream to end, returning any events that arrived before the end.
    pub(crate) async fn until_end(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        while let Some(f) = self.next_frame().await {
            if let Frame::Event(e) = f {
                out.push(e);
            }
        }
        out
    }
}
