//! What an idle subscriber keeps on the hub's heap, counted by dhat's allocator: the guard
//! for the idle figure in BENCHMARKS.md ("Where the remaining memory of an idle subscriber
//! is", issue 16), which the size tests of the connection future and the stream do not
//! cover whole (a request kept in its box for the stream's life was 240 bytes of it).
//!
//! Its own test binary, because the counting allocator is global. The subscribers are plain
//! blocking sockets on another thread, so that the client side adds no heap of its own.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use ssehub::Config;
use ssehub::auth::{AuthConfig, VerifyingKey};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Subscribers opened before counting, so that one-time allocations are not counted.
const WARM: usize = 20;
/// Subscribers counted.
const COUNTED: usize = 200;
/// Heap bytes per idle subscriber, at most: 1,207 measured here on 2026-12-05 (the task 512,
/// tokio's socket registration 256, the body's box 144, the heartbeat timer 112, the queue
/// 104, the `JoinSet` entry 56, the group's table), ~3.4 KiB before the idle-memory work. Six
/// per cent of slack: a request kept in its box (240), a copy of the filter (~250) or a task
/// grown by one step of tokio's 128-byte alignment each fails it.
const BOUND: usize = 1280;

/// Opens `n` anonymous Mercure subscriptions and waits for each stream's opening comment.
fn subscribe(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = TcpStream::connect(addr).unwrap();
        // A hub that stops answering fails the test instead of hanging it.
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        s.write_all(b"GET /.well-known/mercure?topic=idle HTTP/1.1\r\nHost: hub\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 2048];
        let mut len = 0;
        // The head, then the opening comment's chunk: the stream is open and live.
        while !buf[..len].windows(2).any(|w| w == b":\n") {
            let read = s.read(&mut buf[len..]).unwrap();
            assert!(read > 0, "the hub closed the stream");
            len += read;
        }
        assert!(buf.starts_with(b"HTTP/1.1 200 "), "not a stream");
        held.push(s);
    }
    held
}

#[test]
fn an_idle_subscriber_keeps_little_of_the_hubs_heap() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut auth = AuthConfig::new(VerifyingKey::secret(b"idle-memory-test-secret", None).unwrap());
    auth.anonymous = true;
    let config = Config::new(dir.path().to_path_buf(), auth);
    let shutdown = CancellationToken::new();
    let (addr, server) = rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        (
            addr,
            tokio::spawn(ssehub::run(listener, config, shutdown.clone())),
        )
    });
    let warm = subscribe(addr, WARM);
    let before = dhat::HeapStats::get().curr_bytes;
    let counted = subscribe(addr, COUNTED);
    let after = dhat::HeapStats::get().curr_bytes;
    let per = after.saturating_sub(before) / COUNTED;
    assert!(
        per <= BOUND,
        "an idle subscriber keeps {per} bytes of the hub's heap (at most {BOUND})"
    );
    drop((warm, counted));
    shutdown.cancel();
    rt.block_on(server).unwrap().unwrap();
}
