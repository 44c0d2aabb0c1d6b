//! A scripted test server: answers the n-th request with the n-th reply of
//! its script (the last one repeats) and records what each request carried.
#![allow(unreachable_pub)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use futures_util::{Stream, StreamExt};
use sse_client::{Builder, Error, EventSource, Item, Transport};
use tokio::net::TcpListener;
use tokio::time::Instant;

/// One step of a response body.
#[derive(Clone, Debug)]
pub enum Step {
    /// Write these bytes as one chunk.
    Send(Vec<u8>),
    /// Wait before the next step.
    Sleep(Duration),
    /// Never write again and never end: a silent dead connection.
    Stall,
    /// Abort the connection without ending the body (a crash, a cut cable).
    Fail,
}

/// Shorthand for a `Step::Send`.
pub fn send(bytes: impl AsRef<[u8]>) -> Step {
    Step::Send(bytes.as_ref().to_vec())
}

/// One scripted response.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<Step>,
}

impl Reply {
    /// 200 `text/event-stream` with this body, then the end of the stream.
    pub fn stream(body: Vec<Step>) -> Self {
        Self {
            status: StatusCode::OK,
            headers: vec![("content-type", "text/event-stream".into())],
            body,
        }
    }

    /// Any status with a plain text body.
    pub fn status(status: u16, body: &str) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap(),
            headers: vec![("content-type", "text/plain".into())],
            body: vec![send(body)],
        }
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, value.to_owned()));
        self
    }
}

/// What the server saw of one request.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

#[derive(Clone)]
struct Shared {
    script: Arc<Vec<Reply>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// A server on an ephemeral loopback port, stopped on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    pub async fn start(script: Vec<Reply>) -> Self {
        assert!(!script.is_empty());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared {
            script: Arc::new(script),
            seen: seen.clone(),
        };
        let app = Router::new().fallback(handle).with_state(shared);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { addr, seen, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(State(s): State<Shared>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let n = {
        let mut seen = s.seen.lock().unwrap();
        seen.push(Seen {
            method: parts.method,
            path: parts.uri.path().to_owned(),
            headers: parts.headers,
            body,
            at: Instant::now(),
        });
        seen.len() - 1
    };
    let reply = s.script[n.min(s.script.len() - 1)].clone();
    let mut builder = Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        builder = builder.header(*name, value);
    }
    let steps = futures_util::stream::unfold(reply.body.into_iter(), |mut steps| async move {
        loop {
            match steps.next()? {
                Step::Send(b) => return Some((Ok::<_, std::io::Error>(Bytes::from(b)), steps)),
                Step::Sleep(d) => tokio::time::sleep(d).await,
                Step::Stall => std::future::pending::<()>().await,
                Step::Fail => return Some((Err(std::io::Error::other("cut")), steps)),
            }
        }
    });
    builder
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(steps))
        .unwrap()
}

/// Polls until `n` events were seen, the stream ended or failed, and
/// returns every item (events as `type:data:id`, others by kind).
pub async fn collect(source: &mut EventSource, events: usize) -> Vec<Result<Item, Error>> {
    let mut items = Vec::new();
    let mut seen = 0;
    let guard = tokio::time::timeout(Duration::from_secs(24 * 3600), async {
        while seen < events {
            let Some(item) = source.next().await else {
                break;
            };
            if matches!(item, Ok(Item::Event(_))) {
                seen += 1;
            }
            items.push(item);
        }
    });
    guard
        .await
        .expect("the stream neither ended nor delivered the events");
    items
}

/// The data of every event in `items`.
pub fn data(items: &[Result<Item, Error>]) -> Vec<String> {
    items
        .iter()
        .filter_map(|i| match i {
            Ok(Item::Event(e)) => Some(e.data.clone()),
            _ => None,
        })
        .collect()
}

/// Drains a stream to its end (with the same guard as `collect`).
pub async fn drain(
    source: &mut (impl Stream<Item = Result<Item, Error>> + Unpin),
) -> Vec<Result<Item, Error>> {
    let mut items = Vec::new();
    tokio::time::timeout(Duration::from_secs(24 * 3600), async {
        while let Some(item) = source.next().await {
            items.push(item);
        }
    })
    .await
    .expect("the stream did not end");
    items
}

/// A short description of each item, for exact assertions.
pub fn kinds(items: &[Result<Item, Error>]) -> Vec<String> {
    items
        .iter()
        .map(|i| match i {
            Ok(Item::Open(_)) => "open".to_owned(),
            Ok(Item::Event(e)) => format!(
                "event {}:{}:{}",
                e.event_type(),
                e.data,
                e.id.as_deref().unwrap_or("")
            ),
            Ok(Item::Comment(c)) => format!("comment {c}"),
            Ok(Item::Reconnecting(r)) => match &r.cause {
                None => "reconnect ended".to_owned(),
                Some(e) => format!("reconnect {}", short(e)),
            },
            Ok(_) => "other".to_owned(),
            Err(e) => format!("error {}", short(e)),
        })
        .collect()
}

fn short(e: &Error) -> &'static str {
    match e {
        // The same failures, from either transport.
        Error::Request(_) | Error::Http1(_) => "request",
        Error::Status { .. } => "status",
        Error::ContentType { .. } => "content-type",
        Error::IdleTimeout(_) => "idle",
        Error::Parse(_) => "parse",
        Error::RetriesExhausted { .. } => "exhausted",
        _ => "other",
    }
}

/// Polls until the `n`-th connection opened (or the stream ended).
pub async fn until_opens(source: &mut EventSource, n: usize) -> Vec<Result<Item, Error>> {
    let mut items = Vec::new();
    let mut opens = 0;
    tokio::time::timeout(Duration::from_secs(24 * 3600), async {
        while opens < n {
            let Some(item) = source.next().await else {
                break;
            };
            if matches!(item, Ok(Item::Open(_))) {
                opens += 1;
            }
            items.push(item);
        }
    })
    .await
    .expect("the connections did not open");
    items
}

/// A client that opens a new connection per attempt. With paused time, a
/// response that sleeps on a reused keep-alive connection never wakes (a
/// test artifact: real time works, see
/// `policy::reconnects_over_a_reused_pooled_connection`).
fn unpooled() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

pub fn get(url: impl AsRef<str>) -> Builder {
    EventSource::get(url).client(unpooled())
}

pub fn post(url: impl AsRef<str>) -> Builder {
    EventSource::post(url).client(unpooled())
}

/// The transports a behaviour test runs over.
#[derive(Clone, Copy, Debug)]
pub enum Via {
    /// reqwest, one connection per attempt (see `unpooled`).
    Reqwest,
    /// The lean HTTP/1.1 transport.
    Lean,
}

impl Via {
    pub fn transport(self) -> Transport {
        match self {
            Self::Reqwest => Transport::Reqwest,
            Self::Lean => Transport::LeanHttp1,
        }
    }
}

pub fn get_via(via: Via, url: impl AsRef<str>) -> Builder {
    match via {
        Via::Reqwest => get(url),
        Via::Lean => EventSource::get(url).transport(Transport::LeanHttp1),
    }
}

pub fn post_via(via: Via, url: impl AsRef<str>) -> Builder {
    match via {
        Via::Reqwest => post(url),
        Via::Lean => EventSource::post(url).transport(Transport::LeanHttp1),
    }
}

/// Runs each `async fn name(via: Via)` of the calling module once per
/// transport, as the tests `name::reqwest` and `name::lean` (paused time).
macro_rules! each_transport {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(start_paused = true)]
            async fn reqwest() {
                super::$name(crate::support::Via::Reqwest).await
            }
            #[tokio::test(start_paused = true)]
            async fn lean() {
                super::$name(crate::support::Via::Lean).await
            }
        }
    )*};
}
