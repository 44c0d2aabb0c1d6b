//! Fuzzes the hub's own HTTP/1.1 path (`ssehub::http::h1`): arbitrary bytes from a client,
//! served by a router with a streaming, a non-streaming and a body-echoing endpoint. Never a panic or a hang;
//! when the connection is handed to hyper, what hyper reads is exactly a suffix of what the
//! client sent (nothing lost, nothing invented).
//!
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run http1 -- -max_total_time=180`

#![no_main]

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use ssehub::http::h1::{Outcome, Prefixed, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

fn router() -> Router {
    let stream = || async {
        let chunks = futures_util::stream::iter([
            Ok::<_, std::convert::Infallible>(Bytes::from_static(b":\n")),
            Ok(Bytes::from_static(b"data: x\n\n")),
        ]);
        axum::response::Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from_stream(chunks))
            .unwrap()
    };
    Router::new()
        .route("/.well-known/mercure", get(stream))
        .route("/v1/streams/{id}", get(|| async { (http::StatusCode::NOT_FOUND, "no such stream") }))
        // Echoes the request body: what the path read must be exactly the announced body.
        .route("/v1/chat/completions", post(|body: Bytes| async move { body }))
}

fuzz_target!(|input: &[u8]| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, server) = tokio::io::duplex(1 << 16);
        let (mut reader, mut writer) = tokio::io::split(client);
        let sent = input.to_vec();
        let write = tokio::spawn(async move {
            let _ = writer.write_all(&sent).await;
            let _ = writer.shutdown().await;
        });
        // Drain answers so the server never blocks on a full pipe.
        let drain = tokio::spawn(async move {
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink).await;
        });
        let app = router();
        let shutdown = CancellationToken::new();
        let mut server = server;
        match serve(&mut server, &app, Duration::from_secs(1), &shutdown).await {
            Outcome::Closed => {}
            Outcome::Handoff(read) => {
                let mut rest = Prefixed::new(read, server);
                let mut seen = Vec::new();
                let _ = rest.read_to_end(&mut seen).await;
                assert!(input.ends_with(&seen), "hyper must read a suffix of the client's bytes");
            }
        }
        let _ = write.await;
        drain.abort();
    });
});
