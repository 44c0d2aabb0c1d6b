//! Memory per idle client: heap bytes held per open, silent `EventSource`,
//! over HTTP/1.1 (one connection per stream) through reqwest and through
//! the lean transport (`Transport::LeanHttp1`), and over HTTP/2 (streams
//! sharing one connection, as with a hub behind TLS and ALPN).
//!
//! The binary runs twice: as the measuring parent, and (re-executed with
//! `SSE_IDLE_SERVER` set) as a child server that answers each request with
//! the stream head and one comment, then stays silent. The server lives in
//! another process so that only client-side allocations are counted, by
//! dhat's counting global allocator. Kernel socket buffers are not heap and
//! are not counted.
//!
//! Run: `cargo bench -p sse-client --bench idle_memory`. With
//! `SSE_IDLE_PROFILE` set it also writes `dhat-heap.json` (allocation sites
//! at the peak, when every client is open) for dhat's viewer;
//! `SSE_IDLE_ONLY=lean` (any part of a row's label) measures only matching
//! rows, so that the peak is theirs.

#![allow(missing_docs)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use futures_util::StreamExt;
use sse_client::{EventSource, Item, Transport};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const CLIENTS: usize = 500;

fn main() {
    if std::env::var_os("SSE_IDLE_SERVER").is_some() {
        return serve();
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing:
    // measure only when asked.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env("SSE_IDLE_SERVER", "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = format!("http://{}/", line.trim());
    let _profiler = if std::env::var_os("SSE_IDLE_PROFILE").is_some() {
        dhat::Profiler::new_heap()
    } else {
        dhat::Profiler::builder().testing().build()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        measure("HTTP/1.1", Some(reqwest::Client::new()), &url).await;
        measure("HTTP/1.1 lean", None, &url).await;
        let h2 = reqwest::Client::builder()
            .http2_prior_knowledge()
            .build()
            .unwrap();
        measure("HTTP/2", Some(h2), &url).await;
    });
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `client`: reqwest's, or `None` for the lean transport.
async fn measure(label: &str, client: Option<reqwest::Client>, url: &str) {
    if std::env::var("SSE_IDLE_ONLY").is_ok_and(|only| !label.contains(only.as_str())) {
        return;
    }
    // Warm up: the first connection builds lazily created state (and, for
    // HTTP/2, the one connection all streams share).
    let warm = open(client.as_ref(), url).await;
    let mut sources = Vec::with_capacity(CLIENTS);
    let before = dhat::HeapStats::get().curr_bytes;
    for _ in 0..CLIENTS {
        sources.push(open(client.as_ref(), url).await);
    }
    // Let connection tasks settle into their idle state.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    let after = dhat::HeapStats::get().curr_bytes;
    // `sources` was allocated before `before`: add the struct itself.
    let per_client =
        (after as f64 - before as f64) / CLIENTS as f64 + std::mem::size_of::<EventSource>() as f64;
    println!(
        "{label}: {CLIENTS} idle clients, heap per client {per_client:.0} bytes ({:.2} KiB; EventSource struct {} bytes)",
        per_client / 1024.0,
        std::mem::size_of::<EventSource>()
    );
    drop(sources);
    drop(warm);
    // hyper's connection tasks end (and free their buffers) only when next
    // polled: let them go before the next row is measured.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
}

/// Opens a stream and waits for the first comment: the connection is then
/// established and idle.
async fn open(client: Option<&reqwest::Client>, url: &str) -> EventSource {
    let builder = EventSource::get(url).comments(true);
    let builder = match client {
        Some(c) => builder.client(c.clone()),
        None => builder.transport(Transport::LeanHttp1),
    };
    let mut source = builder.build().unwrap();
    loop {
        match source.next().await {
            Some(Ok(Item::Comment(_))) => return source,
            Some(Ok(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn serve() {
    use axum::body::{Body, Bytes};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto;
    use hyper_util::service::TowerToHyperService;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let app = axum::Router::new().fallback(|| async {
            let first = futures_util::stream::once(async {
                Ok::<_, std::io::Error>(Bytes::from_static(b": hi\n\n"))
            });
            let body = first.chain(futures_util::stream::pending());
            (
                [("content-type", "text/event-stream")],
                Body::from_stream(body),
            )
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", listener.local_addr().unwrap());
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service = TowerToHyperService::new(app.clone());
            tokio::spawn(async move {
                let mut builder = auto::Builder::new(TokioExecutor::new());
                // hyper's default of 200 would queue the later streams.
                builder.http2().max_concurrent_streams(10_000);
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}
