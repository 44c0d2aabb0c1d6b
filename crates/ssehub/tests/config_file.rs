//! `ssehub serve --config FILE`, `ssehub config check|print` and reload on SIGHUP, driven
//! through the real binary.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ssehub::auth::{Key, MintClaims, MintTopic, mint};

const BIN: &str = env!("CARGO_BIN_EXE_ssehub");
const PATIENCE: Duration = Duration::from_secs(15);
const OLD_KEY: &str = "old-secret-0123456789-0123456789-abcdef";
const NEW_KEY: &str = "new-secret-0123456789-0123456789-abcdef";

/// Variables that would change what the hub reads; every child starts without them.
const CLEARED: &[&str] = &[
    "SSEHUB_CONFIG",
    "SSEHUB_PUBLISHER_JWT_KEY",
    "SSEHUB_SUBSCRIBER_JWT_KEY",
    "SSEHUB_HEARTBEAT",
    "SSEHUB_CORS_ORIGINS",
    "SSEHUB_MAX_CONNECTIONS",
    "MERCURE_PUBLISHER_JWT_KEY",
    "MERCURE_SUBSCRIBER_JWT_KEY",
    "MERCURE_JWT_KEY",
    "RUST_LOG",
];

fn ssehub(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).stdin(Stdio::null());
    for name in CLEARED {
        cmd.env_remove(name);
    }
    cmd.envs(env.iter().copied());
    cmd
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    ssehub(args, env).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

fn publish_token(secret: &str) -> String {
    let mut claims = MintClaims::default();
    claims.publish = vec![MintTopic::exact("*")];
    mint(&Key::secret(secret.as_bytes(), None).unwrap(), claims).unwrap()
}

/// A `ssehub serve` child with its log lines collected; killed when dropped.
struct Hub {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Hub {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Hub {
        let mut full = vec!["serve"];
        full.extend_from_slice(args);
        let mut child = ssehub(&full, env)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(at) = line.find("listening on http://") {
                    let addr: String = line[at + "listening on http://".len()..]
                        .chars()
                        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                        .collect();
                    let _ = tx.send(addr);
                }
                lines.lock().unwrap().push(line);
            }
        });
        let addr = rx
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("ssehub serve never listened: {:?}", log.lock().unwrap()));
        Hub {
            child,
            addr: addr.parse().unwrap(),
            log,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn hup(&self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-HUP", &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    /// Waits for a log line containing every one of `parts` and returns it.
    fn wait_for_log(&self, parts: &[&str]) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(line) = self
                .log
                .lock()
                .unwrap()
                .iter()
                .find(|l| parts.iter().all(|p| l.contains(p)))
            {
                return line.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {parts:?} in {:?}",
                self.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

async fn publish_status(hub: &Hub, token: &str) -> u16 {
    reqwest::Client::new()
        .post(hub.url("/.well-known/mercure"))
        .bearer_auth(token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("topic=%2Ft&data=x")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn cors_allowed(hub: &Hub, origin: &str) -> Option<String> {
    let res = reqwest::Client::new()
        .get(hub.url("/.well-known/mercure?topic=/t"))
        .header("origin", origin)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap();
    res.headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_owned())
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn config_check_passes_on_the_example_file() {
    let example = repo_root().join("ssehub.example.toml");
    let out = run(&["config", "check", example.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).ends_with(": ok\n"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn a_bad_file_stops_serve_before_anything_starts_and_check_says_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cases = [
        (
            "listen = \"127.0.0.1:0\"\nheartbaet = \"5s\"\n",
            "bad.toml:2: unknown key `heartbaet` (did you mean `heartbeat`?)",
        ),
        (
            "listen = \"127.0.0.1:0\"\n\nheartbeat = \"soon\"\n",
            "bad.toml:3: key `heartbeat`: invalid duration \"soon\"",
        ),
        (
            "anonymous = 1\n",
            "bad.toml:1: key `anonymous`: expected true or false, found integer",
        ),
        (
            "tls-cert = \"cert.pem\"\n",
            "--tls-cert and --tls-key go together",
        ),
    ];
    for (contents, message) in cases {
        let file = write(
            dir.path(),
            "bad.toml",
            &format!("data-dir = {:?}\n{contents}", data.to_str().unwrap()),
        );
        let message = message.replace("bad.toml:", &format!("{}:", file.display()));
        // The data-dir line comes first: every line number is one more.
        let message = bump_line(&message);
        let out = run(&["serve", "--config", file.to_str().unwrap()], &[]);
        assert_eq!(out.status.code(), Some(1), "{contents}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(&message), "{contents}: {stderr}");
        assert!(!stderr.contains("listening"), "{stderr}");
        assert!(
            !data.exists(),
            "serve created its data directory for a bad file"
        );

        let out = run(&["config", "check", file.to_str().unwrap()], &[]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains(&message),
            "{}",
            text(&out.stderr)
        );
    }
}

/// `path:N: ...` as `path:N+1: ...`.
fn bump_line(message: &str) -> String {
    let Some((head, rest)) = message.split_once(".toml:") else {
        return message.to_owned();
    };
    let (n, tail) = rest.split_once(':').unwrap();
    let n: usize = n.parse().unwrap();
    format!("{head}.toml:{}:{tail}", n + 1)
}

#[test]
fn config_print_shows_each_value_and_its_source_with_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "hub.toml",
        "heartbeat = \"5s\"\nmax-connections = 10\npublisher-jwt-key = \"hunter2-file\"\n\
         store = \"redis://app:hunter2@redis.internal:6379/0\"\ncors-origins = \"https://a.example,https://b.example\"\n\
         relay-api-keys = [\"hunter2-relay\"]\n",
    );
    let out = run(
        &["config", "print"],
        &[
            ("SSEHUB_CONFIG", file.to_str().unwrap()),
            ("SSEHUB_MAX_CONNECTIONS", "20"),
            ("MERCURE_JWT_KEY", "hunter2-env"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    assert!(!printed.contains("hunter2"), "a secret leaked: {printed}");
    let f = file.display();
    for line in [
        format!("heartbeat = \"5s\"  # file {f}:1"),
        "max-connections = 20  # environment SSEHUB_MAX_CONNECTIONS".to_owned(),
        // Mercure's variable is environment, so it beats the file.
        "publisher-jwt-key = \"********\"  # environment MERCURE_JWT_KEY".to_owned(),
        format!("store = \"redis://app:********@redis.internal:6379/0\"  # file {f}:4"),
        format!("cors-origins = [\"https://a.example\", \"https://b.example\"]  # file {f}:5"),
        format!("relay-api-keys = [\"********\"]  # file {f}:6"),
        "listen = \"127.0.0.1:8080\"  # default".to_owned(),
        "anonymous = false  # default".to_owned(),
        "# tls-cert = (not set)".to_owned(),
    ] {
        assert!(
            printed.lines().any(|l| l == line),
            "no line {line:?} in\n{printed}"
        );
    }
    // What print shows is itself a valid config file.
    let again = write(dir.path(), "printed.toml", &printed);
    let out = run(&["config", "check", again.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reads_the_file_and_a_flag_or_the_environment_wins_over_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = write(
        dir.path(),
        "hub.toml",
        &format!(
            "listen = \"127.0.0.1:0\"\ndata-dir = {:?}\npublisher-jwt-key = {OLD_KEY:?}\ncors-origins = [\"https://app.example\"]\n",
            data.to_str().unwrap()
        ),
    );
    let path = file.to_str().unwrap();
    let hub = Hub::start(&["--config", path], &[]);
    assert_eq!(publish_status(&hub, &publish_token(OLD_KEY)).await, 200);
    assert_eq!(
        cors_allowed(&hub, "https://app.example").await.as_deref(),
        Some("https://app.example")
    );
    drop(hub);

    let hub = Hub::start(&["--config", path, "--publisher-jwt-key", NEW_KEY], &[]);
    assert_eq!(publish_status(&hub, &publish_token(NEW_KEY)).await, 200);
    assert_eq!(publish_status(&hub, &publish_token(OLD_KEY)).await, 401);
    drop(hub);

    let hub = Hub::start(
        &[],
        &[
            ("SSEHUB_CONFIG", path),
            ("MERCURE_PUBLISHER_JWT_KEY", NEW_KEY),
        ],
    );
    assert_eq!(publish_status(&hub, &publish_token(NEW_KEY)).await, 200);
    assert_eq!(publish_status(&hub, &publish_token(OLD_KEY)).await, 401);
}

fn hub_file(data: &Path, key: &str, rest: &str) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\ndata-dir = {:?}\npublisher-jwt-key = {key:?}\n{rest}",
        data.to_str().unwrap()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_new_key_and_cors_origin_and_names_what_needs_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let before = "cors-origins = [\"https://a.example\"]\n";
    let file = write(dir.path(), "hub.toml", &hub_file(&data, OLD_KEY, before));
    let hub = Hub::start(&["--config", file.to_str().unwrap()], &[]);
    assert_eq!(publish_status(&hub, &publish_token(OLD_KEY)).await, 200);
    assert_eq!(cors_allowed(&hub, "https://b.example").await, None);

    let after = "cors-origins = [\"https://a.example\", \"https://b.example\"]\n\
                 heartbeat = \"5s\"\nstore-cache-bytes = 1048576\n";
    write(dir.path(), "hub.toml", &hub_file(&data, NEW_KEY, after));
    hub.hup();
    let changed = hub.wait_for_log(&["configuration reloaded: "]);
    for part in [
        "publisher-jwt-key changed (secret, not shown)",
        "cors-origins [https://a.example] -> [https://a.example, https://b.example]",
        "heartbeat 40s -> 5s",
    ] {
        assert!(changed.contains(part), "{part:?} not in {changed}");
    }
    assert!(!changed.contains("store-cache-bytes"), "{changed}");
    let restart = hub.wait_for_log(&["need a restart"]);
    assert!(restart.contains("store-cache-bytes"), "{restart}");
    assert!(!restart.contains("heartbeat"), "{restart}");
    let log = hub.log.lock().unwrap().join("\n");
    assert!(
        !log.contains(NEW_KEY) && !log.contains(OLD_KEY),
        "a key was logged"
    );

    assert_eq!(publish_status(&hub, &publish_token(NEW_KEY)).await, 200);
    assert_eq!(publish_status(&hub, &publish_token(OLD_KEY)).await, 401);
    assert_eq!(
        cors_allowed(&hub, "https://b.example").await.as_deref(),
        Some("https://b.example")
    );
    assert_eq!(
        cors_allowed(&hub, "https://a.example").await.as_deref(),
        Some("https://a.example")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_file_on_sighup_keeps_the_running_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = write(dir.path(), "hub.toml", &hub_file(&data, OLD_KEY, ""));
    let hub = Hub::start(&["--config", file.to_str().unwrap()], &[]);
    let cases = [
        (
            "heartbaet = \"5s\"\n",
            "hub.toml:4: unknown key `heartbaet` (did you mean `heartbeat`?)",
        ),
        (
            "max-connections = \"lots\"\n",
            "hub.toml:4: key `max-connections`: invalid value \"lots\"",
        ),
        (
            "relay-max-streams = 0\n",
            "--relay-max-streams and --relay-max-streams-per-key must be at least 1",
        ),
    ];
    for (n, (rest, message)) in cases.into_iter().enumerate() {
        write(dir.path(), "hub.toml", &hub_file(&data, NEW_KEY, rest));
        hub.hup();
        let deadline = Instant::now() + PATIENCE;
        while hub
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("reload refused, the running configuration stays"))
            .count()
            <= n
        {
            assert!(Instant::now() < deadline, "no refusal for {rest}");
            std::thread::sleep(Duration::from_millis(20));
        }
        let line = hub.wait_for_log(&["reload refused", message]);
        assert!(!line.contains(NEW_KEY), "{line}");
        assert_eq!(
            publish_status(&hub, &publish_token(OLD_KEY)).await,
            200,
            "{rest}"
        );
        assert_eq!(
            publish_status(&hub, &publish_token(NEW_KEY)).await,
            401,
            "{rest}"
        );
    }
    // Fixed, the same file is applied.
    write(dir.path(), "hub.toml", &hub_file(&data, NEW_KEY, ""));
    hub.hup();
    hub.wait_for_log(&["configuration reloaded: publisher-jwt-key changed"]);
    assert_eq!(publish_status(&hub, &publish_token(NEW_KEY)).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_changes_the_body_limit_and_the_connection_cap() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = write(dir.path(), "hub.toml", &hub_file(&data, OLD_KEY, ""));
    let hub = Hub::start(&["--config", file.to_str().unwrap()], &[]);
    let token = publish_token(OLD_KEY);
    assert_eq!(publish_status(&hub, &token).await, 200);

    let after = "max-body-bytes = 10\nmax-connections = 1\n";
    write(dir.path(), "hub.toml", &hub_file(&data, OLD_KEY, after));
    hub.hup();
    let line = hub.wait_for_log(&["configuration reloaded: "]);
    assert!(line.contains("max-body-bytes 1048576 -> 10"), "{line}");
    assert!(line.contains("max-connections 19000 -> 1"), "{line}");
    // The publish body is 17 bytes.
    assert_eq!(publish_status(&hub, &token).await, 413);

    // One open stream holds the only connection (once the publishes' connections are gone);
    // the next connection is refused.
    let deadline = Instant::now() + PATIENCE;
    let held = loop {
        let res = reqwest::Client::new()
            .get(hub.url("/.well-known/mercure?topic=/t"))
            .bearer_auth(publish_token_subscribe(OLD_KEY))
            .send()
            .await
            .unwrap();
        if res.status() == 200 {
            break res;
        }
        assert_eq!(res.status(), 503);
        assert!(
            Instant::now() < deadline,
            "the earlier connections never ended"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let refused = reqwest::Client::new()
        .get(hub.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    drop(held);
}

fn publish_token_subscribe(secret: &str) -> String {
    let mut claims = MintClaims::default();
    claims.subscribe = vec![MintTopic::exact("*")];
    mint(&Key::secret(secret.as_bytes(), None).unwrap(), claims).unwrap()
}
