//! What the relay benches share: a fake Chat Completions upstream, the hub in front of it,
//! all in this process on loopback, and the small measuring helpers.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Body;
use axum::response::Response;
use axum::routing::post;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub(crate) fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// A fake Chat Completions upstream: `max_tokens` chunks at `temperature` chunks/s (the one
/// number every front passes through unchanged), the first at once. Each chunk's content is
/// `"{index}:{µs since the epoch when sent} "`, so a client can count drops, reordering and
/// lateness.
async fn fake_chat(Json(body): Json<Value>) -> Response {
    let tokens = body["max_tokens"].as_u64().unwrap_or(5);
    let rate = body["temperature"].as_f64().unwrap_or(1000.0);
    let start = tokio::time::Instant::now();
    let frames = futures_util::stream::unfold(0u64, move |i| async move {
        if i > tokens {
            return None;
        }
        if i == tokens {
            return Some((
                Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"data: [DONE]\n\n")),
                i + 1,
            ));
        }
        tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / rate)).await;
        let chunk = json!({"object": "chat.completion.chunk", "choices": [{"index": 0,
            "delta": {"content": format!("{i}:{} ", now_us())}, "finish_reason": null}]});
        Some((Ok(bytes::Bytes::from(format!("data: {chunk}\n\n"))), i + 1))
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(frames))
        .unwrap()
}

/// The fake upstream and a hub relaying to it, each on its own loopback port.
pub(crate) struct Rig {
    pub(crate) upstream: SocketAddr,
    pub(crate) hub: SocketAddr,
    shutdown: CancellationToken,
    served: tokio::task::JoinHandle<Result<(), ssehub::RunError>>,
    _dir: tempfile::TempDir,
}

impl Rig {
    pub(crate) async fn start() -> Rig {
        let listener = ssehub::http::server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let upstream = listener.local_addr().unwrap();
        tokio::spawn(async move {
            // Like any real server, no Nagle delay on small chunks.
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let app = axum::Router::new().route("/v1/chat/completions", post(fake_chat));
            axum::serve(listener, app).await.unwrap()
        });
        let dir = tempfile::tempdir().unwrap();
        let auth = ssehub::auth::AuthConfig::new(
            ssehub::auth::VerifyingKey::secret(b"bench", None).unwrap(),
        );
        let mut config = ssehub::Config::new(dir.path().to_path_buf(), auth);
        config.upstream = Some(format!("http://{upstream}/v1"));
        // The hub's bounds on concurrent generations (256, 16 per key) are for people; the
        // benches open hundreds at once without a key.
        config.relay_max_streams = 100_000;
        config.relay_max_streams_per_key = 100_000;
        let listener = ssehub::http::server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let hub = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let served = tokio::spawn(ssehub::run(listener, config, shutdown.clone()));
        tokio::time::sleep(Duration::from_millis(200)).await;
        Rig {
            upstream,
            hub,
            shutdown,
            served,
            _dir: dir,
        }
    }

    pub(crate) async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.served.await;
    }
}

pub(crate) fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// This process's CPU time (user + system) so far.
pub(crate) fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: u64 = fields
        .get(11..13)
        .map_or(0, |f| f.iter().filter_map(|t| t.parse::<u64>().ok()).sum());
    // Linux reports these in clock ticks of 1/100 s.
    Duration::from_millis(ticks * 10)
}
