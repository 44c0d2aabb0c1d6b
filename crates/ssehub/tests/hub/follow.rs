//! `ssehub publish --follow`: each new line of a file (or of standard input) becomes one
//! update, across truncation and replacement of the file. Waits are bounded by the SSE reader's
//! patience, never asserted on.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::support::{Sse, TestServer, admin_token};

const BIN: &str = env!("CARGO_BIN_EXE_ssehub");

/// The follower, killed when dropped.
struct Follower(Child);

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `ssehub publish --follow source --topic topic` and waits until it says it follows.
fn follow(hub: &TestServer, source: &str, topic: &str) -> Follower {
    let mut child = Command::new(BIN)
        .args(["publish", "--hub", &hub.hub_url(), "--topic", topic])
        .args(["--token", &admin_token(), "--follow", source])
        .stdin(if source == "-" {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("following") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "the follower exited before following"
        );
    }
    // Keep draining, so a chatty follower never blocks on a full pipe.
    std::thread::spawn(move || stderr.lines().for_each(drop));
    Follower(child)
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

async fn next_data(stream: &mut Sse) -> String {
    stream.next_event().await.data
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_lines_are_published_across_truncation_and_replacement() {
    let hub = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, "written before, not published\n");
    let mut stream = hub.subscribe("topic=/logs").await;
    let _follower = follow(&hub, log.to_str().unwrap(), "/logs");

    append(
        &log,
        "first line of the original file, long enough\nsecond\n",
    );
    assert_eq!(
        next_data(&mut stream).await,
        "first line of the original file, long enough"
    );
    assert_eq!(next_data(&mut stream).await, "second");

    // copytruncate: the same file, emptied, then written again (less than it held).
    std::fs::write(&log, "").unwrap();
    append(&log, "after truncation\n");
    assert_eq!(next_data(&mut stream).await, "after truncation");

    // Rename and create: the old file's last line, then the new file's lines.
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    append(
        &dir.path().join("app.log.1"),
        "last words of the old file\n",
    );
    append(&log, "first line of the new file\n");
    assert_eq!(next_data(&mut stream).await, "last words of the old file");
    assert_eq!(next_data(&mut stream).await, "first line of the new file");
    append(&log, "and it goes on\n");
    assert_eq!(next_data(&mut stream).await, "and it goes on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_input_is_published_line_by_line_until_it_ends() {
    let hub = TestServer::start().await;
    let mut stream = hub.subscribe("topic=/stdin").await;
    let mut follower = follow(&hub, "-", "/stdin");
    let mut stdin = follower.0.stdin.take().unwrap();
    stdin
        .write_all(b"one\r\n\ntwo\nthree without newline")
        .unwrap();
    drop(stdin);
    let status = tokio::task::spawn_blocking(move || follower.0.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success());
    let data: Vec<String> = stream.events(3).await.into_iter().map(|e| e.data).collect();
    assert_eq!(data, ["one", "two", "three without newline"]);
}
