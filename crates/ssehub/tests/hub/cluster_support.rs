//! Nodes sharing one Redis history, for the cluster tests: in-process hubs, and `ssehub serve`
//! processes a test can `kill -9` (aborting an in-process hub would leave its tasks running).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ssehub::Config;
use ssehub::config::StoreConfig;
use ssehub::store::redis::RedisOptions;
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::redis_server::RedisServer;
use super::support::{PATIENCE, SECRET, TestServer};

/// The node lease of every node in these tests: a dead node is taken for gone within about
/// 2.5 s, well inside [`PATIENCE`], and a busy test machine does not make a live one miss it.
pub(crate) const NODE_LEASE: Duration = Duration::from_secs(2);

/// An in-process hub on the `namespace` history of `redis`, configured further by `adjust`.
pub(crate) async fn node(
    redis: &RedisServer,
    namespace: &str,
    adjust: impl FnOnce(&mut Config),
) -> TestServer {
    node_at(&redis.url(), namespace, adjust).await
}

/// An in-process hub on the `namespace` history of the Redis at `url`.
pub(crate) async fn node_at(
    url: &str,
    namespace: &str,
    adjust: impl FnOnce(&mut Config),
) -> TestServer {
    let mut options = RedisOptions::new(url);
    options.namespace = namespace.to_owned();
    TestServer::start_with(|config| {
        config.store = StoreConfig::Redis(options);
        config.node_lease = NODE_LEASE;
        adjust(config);
    })
    .await
}

/// The flags that put a `ssehub serve` process on the `namespace` history of `redis`.
pub(crate) fn redis_flags(redis: &RedisServer, namespace: &str) -> Vec<String> {
    ["--store", &redis.url(), "--redis-namespace", namespace]
        .map(str::to_owned)
        .to_vec()
}

/// The flags of a relay in front of `upstream` accepting the key `relay-key`.
pub(crate) fn relay_flags(upstream: &str) -> Vec<String> {
    let flags = [
        "--upstream",
        upstream,
        "--upstream-api-key",
        "sk-upstream-secret",
        "--relay-api-keys",
        "relay-key",
    ];
    flags.map(str::to_owned).to_vec()
}

/// A `ssehub serve` child process, killed (SIGKILL, by its pid) when dropped.
pub(crate) struct Process {
    child: Child,
    pub(crate) addr: SocketAddr,
    pub(crate) client: reqwest::Client,
}

impl Process {
    /// Starts `ssehub serve` on an ephemeral port with its data in `dir`, the test key, the
    /// test node lease and `flags`, and waits until it listens.
    pub(crate) fn spawn(dir: &Path, flags: &[String]) -> Process {
        let lease = format!("{}ms", NODE_LEASE.as_millis());
        let mut child = Command::new(env!("CARGO_BIN_EXE_ssehub"))
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .args(["--publisher-jwt-key", SECRET, "--node-lease", &lease])
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start ssehub serve");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let mut addr = None;
        for line in lines.by_ref() {
            let line = line.expect("stderr of ssehub serve");
            if let Some(at) = line.find("listening on http://") {
                let text: String = line[at + "listening on http://".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                    .collect();
                addr = Some(text.parse().expect("listen address"));
                break;
            }
        }
        let addr = addr.expect("ssehub serve never said where it listens");
        // Keep draining stderr so the child never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Process {
            child,
            addr,
            client: reqwest::Client::new(),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `kill -9`: nothing of the process runs after this returns.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP proxy in front of a Redis server that the test can cut (every connection through it
/// closes, new ones are closed at once) and restore: one node loses Redis, the others keep it.
pub(crate) struct Proxy {
    /// Where it listens.
    port: u16,
    /// True while cut.
    cut: watch::Sender<bool>,
}

impl Proxy {
    pub(crate) async fn start(redis: &RedisServer) -> Proxy {
        let url = redis.url();
        let target: SocketAddr = url
            .trim_start_matches("redis://")
            .trim_end_matches("/0")
            .parse()
            .expect("redis address");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, _) = watch::channel(false);
        let cut_of = cut.subscribe();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut cut = cut_of.clone();
                if *cut.borrow() {
                    continue;
                }
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Proxy { port, cut }
    }

    /// The Redis URL through this proxy.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub(crate) fn cut(&self) {
        self.cut.send_replace(true);
    }

    pub(crate) fn restore(&self) {
        self.cut.send_replace(false);
    }
}

/// Asks `condition` every 50 ms until it holds; fails the test after [`PATIENCE`], showing
/// the last value seen.
pub(crate) async fn eventually<T: std::fmt::Debug, F: std::future::Future<Output = T>>(
    what: &str,
    mut probe: impl FnMut() -> F,
    condition: impl Fn(&T) -> bool,
) -> T {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let value = probe().await;
        if condition(&value) {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: still {value:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
