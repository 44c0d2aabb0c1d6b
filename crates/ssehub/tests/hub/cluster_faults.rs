//! Faults in a cluster: two `ssehub serve` processes on one Redis that writes and fsyncs its
//! append-only file before answering (`appendonly yes`, `appendfsync always`), under concurrent
//! publish load on both nodes. A node killed with SIGKILL, Redis killed and restarted on the
//! same port and directory, Redis gone for good. What is checked is what the README promises:
//! an acknowledged publish is in history exactly once and in its publisher's order, only a
//! publish whose answer never came (or came as an error while Redis went down or came back)
//! may be stored besides, a refusal that certainly never reached Redis is never stored, and
//! open streams go on without reconnecting.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sse_wire::Frame;
use tokio::task::JoinHandle;

use super::binary::{Served, serve};
use super::redis_server::RedisServer;
use super::support::{PATIENCE, SECRET, Sse, admin_token};

const TOPIC: &str = "/cluster";

/// Publishes one publisher makes at most: bounds every run in count.
const MAX_PER_PUBLISHER: usize = 600;

/// Every this many publishes, a publisher re-sends an id another publisher got acknowledged:
/// the append script must refuse it (409) on whichever node, and store nothing.
const DUPLICATE_EVERY: usize = 7;

/// One `ssehub serve` process on the shared history.
struct Node {
    served: Served,
    /// Its `--data-dir` (keys only; history is in Redis).
    _dir: tempfile::TempDir,
}

impl Node {
    fn start(redis: &RedisServer, namespace: &str, heartbeat: &str) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let url = redis.url();
        let args = [
            "--publisher-jwt-key",
            SECRET,
            "--store",
            &url,
            "--redis-namespace",
            namespace,
            "--heartbeat",
            heartbeat,
        ];
        let served = serve(dir.path(), &args);
        Node { served, _dir: dir }
    }

    fn addr(&self) -> SocketAddr {
        self.served.addr
    }
}

/// `127.0.0.1:<port>`, as the hub names Redis in its errors.
fn redis_addr(redis: &RedisServer) -> String {
    let url = redis.url();
    let rest = url.strip_prefix("redis://").unwrap();
    rest.split('/').next().unwrap().to_owned()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Answered 200 with the id.
    Acked,
    /// Answered with this status.
    Refused(u16),
    /// No answer: the connection broke or the request timed out.
    NoAnswer,
}

/// One publish, as its publisher saw it.
#[derive(Clone, Debug)]
struct Record {
    publisher: usize,
    id: String,
    /// Re-sent an id already acknowledged (data `duplicate`).
    duplicate: bool,
    outcome: Outcome,
    /// The body of a refusal.
    reason: String,
    sent: Instant,
    answered: Instant,
}

/// Concurrent publishers and what each of them saw, in the order the answers came.
#[derive(Clone)]
struct Load {
    records: Arc<Mutex<Vec<Record>>>,
    stop: Arc<AtomicBool>,
    /// Bounded per request, so a hung node shows up as `NoAnswer`, not a hung test.
    client: reqwest::Client,
}

impl Load {
    fn new() -> Self {
        Load {
            records: Arc::default(),
            stop: Arc::default(),
            client: reqwest::Client::builder()
                .timeout(PATIENCE)
                .build()
                .unwrap(),
        }
    }

    /// Starts `publishers` (numbers) against `addr`; each ends at its first unanswered publish,
    /// at [`Load::finish`] or after [`MAX_PER_PUBLISHER`].
    fn start(&self, addr: SocketAddr, publishers: std::ops::Range<usize>) -> Vec<JoinHandle<()>> {
        publishers
            .map(|p| tokio::spawn(self.clone().publisher(addr, p)))
            .collect()
    }

    async fn publisher(self, addr: SocketAddr, p: usize) {
        let token = admin_token();
        for i in 0..MAX_PER_PUBLISHER {
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            let other = (i % DUPLICATE_EVERY == DUPLICATE_EVERY - 1)
                .then(|| self.last_acked_by_another(p))
                .flatten();
            let duplicate = other.is_some();
            let id = other.unwrap_or_else(|| format!("p{p}-{i}"));
            let data = if duplicate { "duplicate" } else { id.as_str() };
            let sent = Instant::now();
            let form = [("topic", TOPIC), ("id", &id), ("data", data)];
            let answer = post(&self.client, addr, &token, &form).await;
            let (outcome, reason) = match answer {
                Ok(r) => {
                    let status = r.status().as_u16();
                    match r.text().await {
                        Ok(text) if status == 200 => {
                            assert_eq!(text, id, "acknowledged under another id");
                            (Outcome::Acked, String::new())
                        }
                        Ok(text) => (Outcome::Refused(status), text),
                        Err(_) => (Outcome::NoAnswer, String::new()),
                    }
                }
                Err(_) => (Outcome::NoAnswer, String::new()),
            };
            self.records.lock().unwrap().push(Record {
                publisher: p,
                id,
                duplicate,
                outcome,
                reason,
                sent,
                answered: Instant::now(),
            });
            match outcome {
                Outcome::NoAnswer => return,
                // Redis is away: no point hammering the node.
                Outcome::Refused(503) => tokio::time::sleep(Duration::from_millis(20)).await,
                _ => {}
            }
        }
    }

    fn last_acked_by_another(&self, p: usize) -> Option<String> {
        let records = self.records.lock().unwrap();
        records
            .iter()
            .rev()
            .find(|r| r.publisher != p && r.outcome == Outcome::Acked && !r.duplicate)
            .map(|r| r.id.clone())
    }

    fn records(&self) -> Vec<Record> {
        self.records.lock().unwrap().clone()
    }

    /// Waits until `done` holds for the records so far; fails the test after 3 x [`PATIENCE`].
    async fn wait_until(&self, what: &str, done: impl Fn(&[Record]) -> bool) {
        let deadline = Instant::now() + PATIENCE * 3;
        while !done(&self.records.lock().unwrap()) {
            assert!(Instant::now() < deadline, "never {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops every publisher after its current publish and waits for them.
    async fn finish(&self, tasks: Vec<JoinHandle<()>>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.unwrap();
        }
    }
}

fn acked(records: &[Record]) -> usize {
    records
        .iter()
        .filter(|r| r.outcome == Outcome::Acked)
        .count()
}

async fn subscribe(addr: SocketAddr, last_event_id: Option<&str>) -> Sse {
    let mut req = reqwest::Client::new()
        .get(format!("http://{addr}/.well-known/mercure?topic={TOPIC}"))
        .bearer_auth(admin_token());
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200);
    Sse::new(res)
}

/// Publishes `form` to the hub at `addr`.
async fn post(
    client: &reqwest::Client,
    addr: SocketAddr,
    token: &str,
    form: &[(&str, &str)],
) -> reqwest::Result<reqwest::Response> {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    client
        .post(format!("http://{addr}/.well-known/mercure"))
        .bearer_auth(token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
}

async fn publish_marker(addr: SocketAddr) {
    let form = [("topic", TOPIC), ("id", "marker"), ("data", "marker")];
    let res = post(&Load::new().client, addr, &admin_token(), &form)
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
}

/// (id, data) of every event before the one with id `marker`; at most `limit` of them.
async fn until_marker(sse: &mut Sse, limit: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    loop {
        let event = sse.next_event().await;
        let id = event.id.expect("an event without id");
        if id == "marker" {
            return out;
        }
        out.push((id, event.data));
        assert!(out.len() <= limit, "more events than publishes were made");
    }
}

/// Checks `history` against what the publishers saw: ids unique; every acknowledged publish
/// present, with its own data, in its publisher's order; a re-sent id never acknowledged nor
/// stored again; besides those, only publishes for which `may_be_stored` holds.
fn check(
    history: &[(String, String)],
    records: &[Record],
    may_be_stored: impl Fn(&Record) -> bool,
) {
    let mut at = HashMap::new();
    let count = |o: fn(&Outcome) -> bool| records.iter().filter(|r| o(&r.outcome)).count();
    eprintln!(
        "history {}, publishes {}: acknowledged {}, refused {}, unanswered {}, duplicates {}",
        history.len(),
        records.len(),
        count(|o| *o == Outcome::Acked),
        count(|o| matches!(o, Outcome::Refused(_))),
        count(|o| *o == Outcome::NoAnswer),
        records.iter().filter(|r| r.duplicate).count(),
    );
    let mut twice = Vec::new();
    for (i, (id, _)) in history.iter().enumerate() {
        if at.insert(id.as_str(), i).is_some() {
            twice.push(id);
        }
    }
    // What acknowledged means first: stored, in the publisher's order.
    let mut last: HashMap<usize, usize> = HashMap::new();
    let mut accounted = HashSet::new();
    for r in records.iter().filter(|r| !r.duplicate) {
        if r.outcome == Outcome::Acked {
            let i = *at
                .get(r.id.as_str())
                .unwrap_or_else(|| panic!("acknowledged {} was lost", r.id));
            if let Some(prev) = last.insert(r.publisher, i) {
                assert!(
                    prev < i,
                    "publisher {}'s {} is out of order",
                    r.publisher,
                    r.id
                );
            }
            accounted.insert(r.id.as_str());
        } else if may_be_stored(r) {
            accounted.insert(r.id.as_str());
        }
    }
    assert!(twice.is_empty(), "in history twice: {twice:?}");
    for r in records.iter().filter(|r| r.duplicate) {
        assert_ne!(
            r.outcome,
            Outcome::Acked,
            "duplicate id {} acknowledged",
            r.id
        );
    }
    for (id, data) in history {
        assert_eq!(id, data, "{id} is stored with a re-sent publish's data");
        assert!(
            accounted.contains(id.as_str()),
            "{id} is in history though its publish was refused: {:?}",
            records.iter().find(|r| r.id == *id)
        );
    }
}

/// Kill -9 of one of two nodes while both take publishes: on the survivor, the whole history
/// holds every acknowledged publish of both nodes exactly once and in order, and the stream
/// that was open on it all along delivered exactly that history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_under_load_loses_no_acknowledged_publish() {
    let redis = RedisServer::start_durable();
    let a = Node::start(&redis, "kill9", "40s");
    let b = Node::start(&redis, "kill9", "40s");
    let mut watching = subscribe(b.addr(), None).await;
    let load = Load::new();
    let on_a = load.start(a.addr(), 0..3);
    let on_b = load.start(b.addr(), 3..6);
    load.wait_until("150 acknowledged", |r| acked(r) >= 150)
        .await;
    drop(a); // SIGKILL, with publishes in flight
    for t in on_a {
        t.await.unwrap();
    }
    let at_kill = acked(&load.records());
    load.wait_until("150 more acknowledged", |r| acked(r) >= at_kill + 150)
        .await;
    load.finish(on_b).await;
    let records = load.records();
    assert!(
        records
            .iter()
            .all(|r| r.publisher < 3 || r.outcome != Outcome::NoAnswer),
        "the survivor left a publish unanswered"
    );

    let mut replay = subscribe(b.addr(), Some("earliest")).await;
    publish_marker(b.addr()).await;
    let history = until_marker(&mut replay, records.len()).await;
    // A publish the killed node never answered may or may not have reached Redis.
    check(&history, &records, |r| r.outcome == Outcome::NoAnswer);
    assert_eq!(until_marker(&mut watching, records.len()).await, history);
}

/// Redis killed (SIGKILL) and restarted on its port and directory while both nodes take
/// publishes: no false 200 while it is down, nothing acknowledged lost, a refusal made while
/// nothing listened never stored, streams open on both nodes go on without reconnecting, and a
/// `Last-Event-ID` from before the restart resumes on either node without gap or duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_under_load_keeps_every_acknowledged_publish_and_every_stream() {
    let mut redis = RedisServer::start_durable();
    let a = Node::start(&redis, "restart", "40s");
    let b = Node::start(&redis, "restart", "40s");
    let mut live = [
        subscribe(a.addr(), None).await,
        subscribe(b.addr(), None).await,
    ];
    let load = Load::new();
    let mut tasks = load.start(a.addr(), 0..2);
    tasks.extend(load.start(b.addr(), 2..4));
    load.wait_until("100 acknowledged", |r| acked(r) >= 100)
        .await;
    tokio::task::block_in_place(|| redis.stop());
    let down = Instant::now();
    // Each node answers publishes it took while nothing listened (with 503s, checked below).
    let answered_on = |r: &[Record], p: std::ops::Range<usize>| {
        r.iter()
            .filter(|r| p.contains(&r.publisher) && r.sent > down)
            .count()
            >= 3
    };
    load.wait_until("answers on both nodes with redis down", |r| {
        answered_on(r, 0..2) && answered_on(r, 2..4)
    })
    .await;
    let up = Instant::now();
    tokio::task::block_in_place(|| redis.restart());
    load.wait_until("100 acknowledged after the restart", |r| {
        r.iter()
            .filter(|r| r.sent > up && r.outcome == Outcome::Acked)
            .count()
            >= 100
    })
    .await;
    load.finish(tasks).await;
    let records = load.records();

    let away = |r: &Record| r.sent > down && r.answered < up;
    let server = redis_addr(&redis);
    for r in records.iter().filter(|r| away(r)) {
        assert_eq!(
            r.outcome,
            Outcome::Refused(503),
            "{r:?} while redis was down"
        );
        assert!(
            r.reason.contains(&format!("redis at {server}")),
            "{}",
            r.reason
        );
    }
    assert!(records.iter().all(|r| r.outcome != Outcome::NoAnswer));

    publish_marker(a.addr()).await;
    let mut replay = subscribe(b.addr(), Some("earliest")).await;
    let history = until_marker(&mut replay, records.len()).await;
    // A refusal answered while Redis went down or came back may have been stored by it.
    check(&history, &records, |r| !away(r));
    for (node, stream) in live.iter_mut().enumerate() {
        let delivered = until_marker(stream, records.len()).await;
        assert_eq!(delivered, history, "the stream open on node {node}");
    }
    let before = records
        .iter()
        .rfind(|r| r.answered < down && r.outcome == Outcome::Acked && !r.duplicate)
        .unwrap();
    let from = history.iter().position(|(id, _)| *id == before.id).unwrap();
    for addr in [a.addr(), b.addr()] {
        let mut resumed = subscribe(addr, Some(&before.id)).await;
        assert_eq!(resumed.header("last-event-id"), Some(before.id.as_str()));
        let rest = until_marker(&mut resumed, records.len()).await;
        assert_eq!(rest, history[from + 1..], "resumed on {addr}");
    }
}

/// Redis stopped for good: both nodes answer `/healthz` and publishes with 503 and a reason
/// naming Redis, and their open streams stay open with heartbeats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_gone_nodes_report_it_and_keep_streams_alive() {
    let mut redis = RedisServer::start();
    let nodes = [
        Node::start(&redis, "gone", "100ms"),
        Node::start(&redis, "gone", "100ms"),
    ];
    let mut streams = Vec::new();
    for node in &nodes {
        streams.push(subscribe(node.addr(), None).await);
    }
    publish_marker(nodes[0].addr()).await;
    for stream in &mut streams {
        assert!(until_marker(stream, 0).await.is_empty());
    }
    tokio::task::block_in_place(|| redis.stop());
    let server = format!("redis at {}", redis_addr(&redis));
    let client = Load::new().client;
    for node in &nodes {
        let health = client
            .get(format!("http://{}/healthz", node.addr()))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 503);
        let reason = health.text().await.unwrap();
        assert!(reason.contains(&server), "/healthz said {reason:?}");
        let form = [("topic", TOPIC), ("data", "while gone")];
        let refused = post(&client, node.addr(), &admin_token(), &form)
            .await
            .unwrap();
        assert_eq!(refused.status(), 503);
        let reason = refused.text().await.unwrap();
        assert!(reason.contains(&server), "publish refused with {reason:?}");
    }
    // Ten a stream: more than it can have had in flight when Redis stopped.
    for (node, stream) in streams.iter_mut().enumerate() {
        let mut heartbeats = 0;
        while heartbeats < 10 {
            match stream.next_frame().await {
                Some(Frame::Comment(_)) => heartbeats += 1,
                Some(Frame::Event(e)) => panic!("node {node} sent {e:?} with redis gone"),
                Some(_) => {}
                None => panic!("node {node} ended its stream with redis gone"),
            }
        }
    }
}
