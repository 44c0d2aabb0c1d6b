//! A real `redis-server` on a free loopback port, for the Redis store's tests: the library's
//! conformance and unit tests include this file too (`store/redis/mod.rs`), so each test crate
//! uses only part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the server gets to start accepting commands.
const STARTUP: Duration = Duration::from_secs(20);

/// A `redis-server` child process; killed (by its pid) when dropped.
pub(crate) struct RedisServer {
    port: u16,
    /// `None` while stopped.
    child: Option<Child>,
    /// Working directory: the AOF and the log live here, across restarts.
    dir: tempfile::TempDir,
    /// Append-only file with `appendfsync always`, so a restart keeps every acknowledged write.
    durable: bool,
    /// A second, TLS-only port (the plain one stays for [`RedisServer::command`]).
    tls_port: Option<u16>,
}

fn free_port() -> u16 {
    // Redis needs an explicit port: take a free one from the OS and release it.
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("cannot find a free port")
        .port()
}

impl RedisServer {
    /// A server without persistence.
    pub(crate) fn start() -> Self {
        Self::spawn(false)
    }

    /// A server with `appendonly yes` and `appendfsync always`: stopping and restarting it
    /// loses nothing it acknowledged.
    pub(crate) fn start_durable() -> Self {
        Self::spawn(true)
    }

    /// A server that also accepts TLS, with this PEM certificate chain and key (clients are
    /// not asked for certificates).
    pub(crate) fn start_tls(cert_pem: &str, key_pem: &str) -> Self {
        let mut server = Self::new(false);
        std::fs::write(server.dir.path().join("tls.crt"), cert_pem).expect("write cert");
        std::fs::write(server.dir.path().join("tls.key"), key_pem).expect("write key");
        server.tls_port = Some(free_port());
        server.launch();
        server
    }

    fn spawn(durable: bool) -> Self {
        let mut server = Self::new(durable);
        server.launch();
        server
    }

    fn new(durable: bool) -> Self {
        RedisServer {
            port: free_port(),
            child: None,
            dir: tempfile::tempdir().expect("tempdir"),
            durable,
            tls_port: None,
        }
    }

    fn launch(&mut self) {
        let dir = self.dir.path();
        let log = dir.join("redis.log");
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--daemonize", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(dir)
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(tls_port) = self.tls_port {
            command
                .args([
                    "--tls-port",
                    &tls_port.to_string(),
                    "--tls-auth-clients",
                    "no",
                ])
                .arg("--tls-cert-file")
                .arg(dir.join("tls.crt"))
                .arg("--tls-key-file")
                .arg(dir.join("tls.key"));
        }
        if self.durable {
            command.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            command.args(["--appendonly", "no"]);
        }
        let child = match command.spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-server is not installed, and the Redis store tests need a real Redis: \
                 run scripts/test.sh (the README's test command), which installs it, or \
                 `apt-get install redis-server`"
            ),
            Err(e) => panic!("cannot start redis-server: {e}"),
        };
        self.child = Some(child);
        let deadline = Instant::now() + STARTUP;
        loop {
            if self.try_command(&["PING"]).is_some_and(|r| r == "+PONG") {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("redis-server exited at start ({status}):\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's process id, for reading its CPU from `/proc`.
    ///
    /// # Panics
    /// While the server is stopped.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("redis-server is stopped").id()
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// `rediss://127.0.0.1:<tls port>/0`, for a server made by [`RedisServer::start_tls`].
    pub(crate) fn tls_url(&self) -> String {
        let port = self.tls_port.expect("not a TLS server");
        format!("rediss://127.0.0.1:{port}/0")
    }

    /// Kills the server (by pid) and waits for it to exit.
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and directory (the AOF, if any, is reloaded).
    pub(crate) fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Sends one command and returns the first line of the reply (`+OK`, `:1`, `-ERR ...`).
    ///
    /// # Panics
    /// When the server cannot be reached.
    pub(crate) fn command(&self, args: &[&str]) -> String {
        self.try_command(args)
            .unwrap_or_else(|| panic!("redis-server on port {} does not answer", self.port))
    }

    fn try_command(&self, args: &[&str]) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(STARTUP)).ok()?;
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(request.as_bytes()).ok()?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).ok()?;
        Some(line.trim_end().to_owned())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
