//! The `ssehub` binary itself: `parse` against the shared conformance cases, durability
//! across `kill -9`, first run, the `token` and `publish` commands, SIGTERM, `--store`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::redis_server::RedisServer;
use super::support::{SECRET, Sse, admin_token};

const BIN: &str = env!("CARGO_BIN_EXE_ssehub");

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn parse_prints_every_conformance_case() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../conformance/parse-cases.json");
    let cases: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(cases.len() > 20);
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let chunks: Vec<Vec<u8>> = match (case.get("chunks"), case.get("chunks_hex")) {
            (Some(c), _) => c
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().as_bytes().to_vec())
                .collect(),
            (_, Some(h)) => h
                .as_array()
                .unwrap()
                .iter()
                .map(|s| hex(s.as_str().unwrap()))
                .collect(),
            _ => panic!("{name}: no chunks"),
        };
        let mut child = Command::new(BIN)
            .args(["parse", "--emit-state"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        for c in &chunks {
            stdin.write_all(c).unwrap();
            stdin.flush().unwrap();
        }
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{name}");
        let lines: Vec<Value> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let (state, events) = lines.split_last().unwrap();
        assert_eq!(
            events,
            case["events"].as_array().unwrap().as_slice(),
            "{name}"
        );
        assert_eq!(state["retry"], case["retry"], "{name}");
        assert_eq!(state["last_event_id"], case["last_event_id"], "{name}");
    }
}

/// A `ssehub serve` child process, killed (SIGKILL) when dropped.
pub(crate) struct Served {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
    stdout: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `ssehub serve` on an ephemeral port and waits for its "listening on" line.
pub(crate) fn serve(dir: &Path, extra: &[&str]) -> Served {
    serve_with_env(dir, extra, &[])
}

pub(crate) fn serve_with_env(dir: &Path, extra: &[&str], env: &[(&str, &Path)]) -> Served {
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(extra)
        .envs(env.iter().copied())
        .env_remove("SSEHUB_PUBLISHER_JWT_KEY")
        .env_remove("MERCURE_PUBLISHER_JWT_KEY")
        .env_remove("MERCURE_JWT_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut addr = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(at) = line.find("listening on http") {
            let rest = &line[at..];
            let start = rest.find("://").unwrap() + 3;
            let text: String = rest[start..]
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                .collect();
            addr = Some(text.parse().unwrap());
            break;
        }
    }
    let addr = addr.expect("ssehub serve never said where it listens");
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let mut served = Served {
        child,
        addr,
        stdout: String::new(),
    };
    if !extra.contains(&"--publisher-jwt-key") {
        let mut out = served.child.stdout.take().unwrap();
        let mut buf = [0u8; 4096];
        // The first-run message follows the listening line.
        while !served.stdout.contains("Mint narrower tokens") {
            let n = out.read(&mut buf).unwrap();
            assert!(n > 0, "stdout closed before the first-run message");
            served.stdout.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
    served
}

async fn publish(
    client: &reqwest::Client,
    addr: SocketAddr,
    token: &str,
    data: &str,
) -> reqwest::Result<reqwest::Response> {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([("topic", "/durable"), ("data", data)])
        .finish();
    client
        .post(format!("http://{addr}/.well-known/mercure"))
        .bearer_auth(token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_publish_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let hub = serve(dir.path(), &["--publisher-jwt-key", SECRET]);
    let token = admin_token();
    let client = reqwest::Client::new();
    // Several publishers at once, so acknowledged writes share group commits when the kill lands.
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(usize, String)>::new()));
    let mut tasks = Vec::new();
    for p in 0..4 {
        let (client, token, acked) = (client.clone(), token.clone(), acked.clone());
        let addr = hub.addr;
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                match publish(&client, addr, &token, &format!("{p}-{i}")).await {
                    Ok(r) if r.status() == 200 => {
                        let id = r.text().await.unwrap();
                        acked.lock().unwrap().push((p, id));
                    }
                    _ => return,
                }
            }
        }));
    }
    // Kill mid-stream, once a good number have been acknowledged.
    while acked.lock().unwrap().len() < 200 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(hub); // SIGKILL
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();

    let hub = serve(dir.path(), &["--publisher-jwt-key", SECRET]);
    let res = client
        .get(format!(
            "http://{}/.well-known/mercure?topic=/durable&lastEventID=earliest",
            hub.addr
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let mut sse = Sse::new(res);
    // A marker published after the restart ends the replay: everything before it is the
    // whole history, however long (the old loop stopped at the length it then asserted).
    let marker = publish(&client, hub.addr, &token, "marker")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut history = Vec::new();
    loop {
        let id = sse.next_event().await.id.unwrap();
        if id == marker {
            break;
        }
        history.push(id);
    }
    let unique: std::collections::HashSet<&String> = history.iter().collect();
    assert_eq!(unique.len(), history.len(), "an update is in history twice");
    let position = |id: &String| history.iter().position(|h| h == id);
    for p in 0..4 {
        let mine: Vec<_> = acked
            .iter()
            .filter(|(q, _)| *q == p)
            .map(|(_, id)| id)
            .collect();
        let at: Vec<usize> = mine
            .iter()
            .map(|id| position(id).unwrap_or_else(|| panic!("acknowledged {id} was lost")))
            .collect();
        // Each publisher's updates are in the order they were acknowledged.
        assert!(
            at.windows(2).all(|w| w[0] < w[1]),
            "publisher {p}'s updates out of order"
        );
    }
    // Besides the acknowledged ones, only the publish each publisher had in flight when the
    // kill landed may have been stored.
    assert!(
        history.len() <= acked.len() + 4,
        "{} in history, {} acknowledged: more than the 4 in flight",
        history.len(),
        acked.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_run_generates_a_key_and_prints_a_token_that_works_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let hub = serve(dir.path(), &[]);
    let token_line = hub
        .stdout
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("eyJ"))
        .expect("no token printed");
    let token = token_line.to_owned();
    assert!(hub.stdout.contains("curl -N"), "{}", hub.stdout);
    let client = reqwest::Client::new();
    let r = publish(&client, hub.addr, &token, "first").await.unwrap();
    assert_eq!(r.status(), 200);
    let key = std::fs::read_to_string(dir.path().join("publisher-jwt-key")).unwrap();
    assert_eq!(key.trim().len(), 64);
    drop(hub);
    // The stored key is reused: the same token still works.
    let hub = serve(dir.path(), &[]);
    assert_eq!(
        publish(&client, hub.addr, &token, "second")
            .await
            .unwrap()
            .status(),
        200
    );
}

/// Regression (issue 15): `serve --publisher-jwt-key /etc/ssehub/publisher.pem` without such a
/// file started, with the path's text as the HMAC secret anyone could sign with.
#[test]
fn a_key_path_that_does_not_exist_stops_serve_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir/publisher.pem");
    let missing = missing.to_str().unwrap();
    for (flags, alg_flag) in [
        (vec!["--publisher-jwt-key", missing], "--publisher-jwt-alg"),
        (
            vec![
                "--publisher-jwt-key",
                SECRET,
                "--subscriber-jwt-key",
                missing,
            ],
            "--subscriber-jwt-alg",
        ),
    ] {
        let mut child = Command::new(BIN)
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .args(&flags)
            .env_remove("SSEHUB_PUBLISHER_JWT_ALG")
            .env_remove("SSEHUB_SUBSCRIBER_JWT_ALG")
            .env_remove("MERCURE_PUBLISHER_JWT_ALG")
            .env_remove("MERCURE_SUBSCRIBER_JWT_ALG")
            .env_remove("MERCURE_JWT_ALG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Read stderr until it closes (the process exited) or the hub says it listens, which
        // would mean it started: stopped here rather than left to serve forever.
        let mut stderr = String::new();
        for line in BufReader::new(child.stderr.take().unwrap()).lines() {
            let line = line.unwrap();
            stderr.push_str(&line);
            stderr.push('\n');
            if line.contains("listening on") {
                let _ = child.kill();
                break;
            }
        }
        let status = child.wait().unwrap();
        assert!(!status.success(), "{flags:?} started:\n{stderr}");
        assert!(
            !stderr.contains("listening on"),
            "{flags:?} started:\n{stderr}"
        );
        // It names the value, and the way to mean it as a literal secret.
        assert!(stderr.contains(missing), "{stderr}");
        assert!(
            stderr.contains(alg_flag) && stderr.contains("HS256"),
            "{stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_and_publish_commands_talk_to_a_running_hub() {
    let dir = tempfile::tempdir().unwrap();
    let hub = serve(dir.path(), &["--publisher-jwt-key", SECRET]);
    let out = Command::new(BIN)
        .args(["token", "--key", SECRET, "--publish", "/cli/{id}"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let hub_url = format!("http://{}/.well-known/mercure", hub.addr);
    let out = Command::new(BIN)
        .args([
            "publish",
            "--hub",
            &hub_url,
            "--topic",
            "/cli/1",
            "--data",
            "from the cli",
            "--id",
            "cli-1",
        ])
        .args(["--token", &token])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), "cli-1");
    // A topic the token does not grant: non-zero exit, the hub's reason on stderr.
    let out = Command::new(BIN)
        .args([
            "publish", "--hub", &hub_url, "--topic", "/other", "--data", "x", "--token", &token,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("403") && err.contains("/other"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_streams_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut hub = serve(
        dir.path(),
        &["--publisher-jwt-key", SECRET, "--shutdown-grace", "60s"],
    );
    let res = reqwest::Client::new()
        .get(format!("http://{}/.well-known/mercure?topic=/t", hub.addr))
        .bearer_auth(admin_token())
        .send()
        .await
        .unwrap();
    let mut sse = Sse::new(res);
    sse.next_frame().await;
    let pid = hub.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    // The stream ends (the client would reconnect elsewhere), then the process exits 0,
    // well before the 60 s grace period.
    sse.until_end().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = hub.child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "ssehub did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until the hub's `/metrics` counts `n` subscribers.
async fn wait_for_subscribers(client: &reqwest::Client, addr: SocketAddr, n: usize) {
    let metrics = format!("http://{addr}/metrics");
    let line = format!("\nssehub_subscribers {n}\n");
    let deadline = tokio::time::Instant::now() + super::support::PATIENCE;
    while !client
        .get(&metrics)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .contains(&line)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never saw {n} subscribers"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Resident memory of a process, in KiB.
pub(super) fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Publishes 30 MiB to a fresh hub, with or without a subscriber that never reads;
/// returns how much the hub's resident memory grew, in KiB.
async fn memory_growth_under_flood(stuck: bool) -> u64 {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let hub = serve(
        dir.path(),
        &[
            "--publisher-jwt-key",
            SECRET,
            "--subscriber-queue-bytes",
            "262144",
        ],
    );
    let client = reqwest::Client::new();
    let token = admin_token();
    // Warm up allocator and store so both runs start from the same state.
    for _ in 0..5 {
        publish(&client, hub.addr, &token, "warm-up").await.unwrap();
    }
    let mut _socket = None;
    if stuck {
        let mut s = tokio::net::TcpStream::connect(hub.addr).await.unwrap();
        let req = format!(
            "GET /.well-known/mercure?topic=/durable HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\r\n",
            hub.addr
        );
        s.write_all(req.as_bytes()).await.unwrap();
        wait_for_subscribers(&client, hub.addr, 1).await;
        _socket = Some(s);
    }
    let before = rss_kib(hub.child.id());
    let chunk = "m".repeat(200 * 1024);
    for _ in 0..150 {
        let r = publish(&client, hub.addr, &token, &chunk).await.unwrap();
        assert_eq!(r.status(), 200);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    rss_kib(hub.child.id()).saturating_sub(before)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_never_reads_does_not_grow_the_hubs_memory() {
    let without = memory_growth_under_flood(false).await;
    let with = memory_growth_under_flood(true).await;
    // Unbounded, the stuck subscriber would pin most of the 30 MiB; bounded, it pins at most
    // its 256 KiB queue (the kernel's socket buffers are not in the hub's RSS).
    assert!(
        with < without + 12 * 1024,
        "a stuck subscriber grew the hub by {with} KiB against {without} KiB without it"
    );
}

/// Regression (issue 15.1): a subscriber asking for `earliest` that then stops reading held a
/// whole replay page (512 updates in one chunk) until the write-stall timeout; 8 of them over
/// 40 MB of history took the hub from 76 to 444 MiB. Replay is now paced by the socket and
/// bounded in bytes per page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_replay_readers_do_not_grow_the_hubs_memory() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let hub = serve(dir.path(), &["--publisher-jwt-key", SECRET]);
    let client = reqwest::Client::new();
    let token = admin_token();
    let chunk = "r".repeat(200 * 1024);
    for _ in 0..200 {
        let r = publish(&client, hub.addr, &token, &chunk).await.unwrap();
        assert_eq!(r.status(), 200);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(hub.child.id());
    let mut sockets = Vec::new();
    for _ in 0..8 {
        let mut s = tokio::net::TcpStream::connect(hub.addr).await.unwrap();
        let req = format!(
            "GET /.well-known/mercure?topic=/durable HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nLast-Event-ID: earliest\r\n\r\n",
            hub.addr
        );
        s.write_all(req.as_bytes()).await.unwrap();
        sockets.push(s);
    }
    wait_for_subscribers(&client, hub.addr, 8).await;
    // Let each replay run until its socket is full.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let grown = rss_kib(hub.child.id()).saturating_sub(before);
    // Each stuck reader may hold one 1 MiB page and two encoded chunks; before the fix each
    // held the whole 40 MB history (about 46 MiB per reader).
    assert!(
        grown < 8 * 4 * 1024,
        "8 stuck replay readers grew the hub by {grown} KiB"
    );
    drop(sockets);
}

/// Regression: after a restart, subscribers without a Last-Event-ID were told `earliest`
/// although history existed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_the_header_names_the_newest_update() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let token = admin_token();
    let hub = serve(dir.path(), &["--publisher-jwt-key", SECRET]);
    publish(&client, hub.addr, &token, "one").await.unwrap();
    let last = publish(&client, hub.addr, &token, "two")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    drop(hub);
    let hub = serve(dir.path(), &["--publisher-jwt-key", SECRET]);
    let res = client
        .get(format!(
            "http://{}/.well-known/mercure?topic=/durable",
            hub.addr
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["last-event-id"], last.as_str());
}

/// Two `ssehub serve` processes given one `--store redis://...` share one history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_redis_url_share_history() {
    let redis = RedisServer::start();
    let url = redis.url();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let args = [
        "--publisher-jwt-key",
        SECRET,
        "--store",
        &url,
        "--redis-namespace",
        "cli",
    ];
    let a = serve(dir_a.path(), &args);
    let b = serve(dir_b.path(), &args);
    let client = reqwest::Client::new();
    let token = admin_token();
    let id = publish(&client, a.addr, &token, "via a")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let res = client
        .get(format!(
            "http://{}/.well-known/mercure?topic=/durable&lastEventID=earliest",
            b.addr
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let mut sse = Sse::new(res);
    assert_eq!(sse.next_event().await.id.unwrap(), id);
}

/// `--store rediss://` speaks TLS and verifies the server's certificate against the system's
/// roots (here a private CA given by `SSL_CERT_FILE`); an untrusted certificate is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rediss_store_verifies_the_server_certificate() {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let cert = rcgen::generate_simple_self_signed(names).unwrap();
    let redis = RedisServer::start_tls(&cert.cert.pem(), &cert.signing_key.serialize_pem());
    let url = redis.tls_url();
    let args = ["--publisher-jwt-key", SECRET, "--store", &url];
    let roots = tempfile::tempdir().unwrap();
    let ca = roots.path().join("ca.pem");
    std::fs::write(&ca, cert.cert.pem()).unwrap();
    let untrusting = tempfile::tempdir().unwrap();
    let empty = roots.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let refused = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .arg("--data-dir")
        .arg(untrusting.path())
        .env("SSL_CERT_FILE", &empty)
        .env_remove("SSL_CERT_DIR")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("invalid peer certificate"), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let hub = serve_with_env(dir.path(), &args, &[("SSL_CERT_FILE", &ca)]);
    let client = reqwest::Client::new();
    let token = admin_token();
    let res = publish(&client, hub.addr, &token, "over tls")
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let stored = redis.command(&["XLEN", "ssehub:{default}:log"]);
    assert_eq!(stored, ":1");
}

/// An unknown `--store` value is refused at start without echoing it (it may hold a password).
#[test]
fn an_unknown_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--publisher-jwt-key",
            SECRET,
        ])
        .args(["--store", "postgres://user:hunter2@db/x", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unsupported --store value"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
