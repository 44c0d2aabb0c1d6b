//! Durability under `kill -9`: every append the store acknowledged is in the history after the
//! process dies mid-stream and the directory is reopened.
//!
//! The appending process is this test binary itself, re-run with [`CHILD_DIR`] set and a filter
//! selecting [`crash_child`], which is a no-op in ordinary test runs. The child never checkpoints
//! (see [`child_options`]), so what it acknowledged is durable only in the write-ahead log, and
//! the reopen must replay it from there.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use ssehub::store::redb::{RedbOptions, RedbStore};
use ssehub::store::{Cursor, Store};
use ssehub::update::Update;

/// Where the child keeps its history; unset in ordinary runs.
const CHILD_DIR: &str = "SSEHUB_STORE_CRASH_CHILD_DIR";
/// Concurrent appenders in the child, so the kill lands while a batch is being committed.
const WRITERS: usize = 8;
/// Acknowledgements the parent waits for before it kills the child.
const KILL_AFTER: usize = 400;

/// The child's store: checkpoints only when the log is full, which these few appends never
/// reach, so none happens before the kill.
fn child_options() -> RedbOptions {
    RedbOptions {
        checkpoint_interval: Duration::from_secs(24 * 3600),
        ..RedbOptions::default()
    }
}

fn update(id: &str) -> Update {
    Update {
        id: id.to_owned(),
        topics: vec!["https://example.com/crash".to_owned()],
        data: format!("payload of {id}"),
        private: false,
        event_type: None,
        retry: None,
        published_at_ms: Update::now_ms(),
    }
}

#[test]
fn acknowledged_appends_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acked: Vec<(u64, String)> = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let Some(ack) = line.unwrap().strip_prefix("ack ").map(str::to_owned) else {
            continue;
        };
        let (seq, id) = ack.split_once(' ').unwrap();
        acked.push((seq.parse().unwrap(), id.to_owned()));
        if acked.len() == KILL_AFTER {
            break;
        }
    }
    // SIGKILL: no destructor, no flush, no chance to finish the batch in flight.
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(acked.len(), KILL_AFTER, "child stopped before the kill");

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = RedbStore::open(dir.path(), RedbOptions::default()).unwrap();
        let mut history = Vec::new();
        let mut cursor = Cursor::Earliest;
        loop {
            let page = store.read_after(cursor, 1000).await.unwrap();
            history.extend(page.updates);
            match (page.more, history.last()) {
                (true, Some(last)) => cursor = Cursor::Seq(last.seq),
                _ => break,
            }
        }
        // Gap-free and in order: seqs are 1..=n.
        let seqs: Vec<u64> = history.iter().map(|s| s.seq).collect();
        assert_eq!(seqs, (1..=history.len() as u64).collect::<Vec<_>>());
        let by_id: HashMap<&str, (u64, &Update)> = history
            .iter()
            .map(|s| (s.update.id.as_str(), (s.seq, &*s.update)))
            .collect();
        for (seq, id) in &acked {
            let (stored_seq, stored) = by_id
                .get(id.as_str())
                .unwrap_or_else(|| panic!("acknowledged update {id} (seq {seq}) was lost"));
            assert_eq!(stored_seq, seq, "{id} moved");
            assert_eq!(stored.data, format!("payload of {id}"));
        }
        assert!(history.len() >= KILL_AFTER);
        // The reopened store continues the sequence instead of reusing seqs.
        let next = store.append(update("after-crash")).await.unwrap();
        assert_eq!(next.seq, history.len() as u64 + 1);
    });
}

/// The child half of [`acknowledged_appends_survive_kill_9`]: appends from several tasks
/// until killed, printing `ack <seq> <id>` after each acknowledgement.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = Arc::new(RedbStore::open(dir.as_ref(), child_options()).unwrap());
        let tasks: Vec<_> = (0..WRITERS)
            .map(|w| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    // Bounded so an orphaned child cannot run forever.
                    for i in 0..100_000 {
                        let id = format!("w{w}-{i}");
                        let stored = store.append(update(&id)).await.unwrap();
                        let mut out = std::io::stdout().lock();
                        if writeln!(out, "ack {} {id}", stored.seq).is_err() || out.flush().is_err()
                        {
                            return;
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            let _ = task.await;
        }
    });
}
