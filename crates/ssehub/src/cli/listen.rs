//! `ssehub listen URL`: curl for event streams. Subscribes with the
//! `sse-client` EventSource (so it reconnects like a browser) and prints
//! each event on stdout, either readable or as the JSON lines of
//! `ssehub parse`; connection news and errors go to stderr.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::StreamExt;
use sse_client::{EndReason, Event, EventSource, Item};

/// Arguments of `ssehub listen`.
#[derive(clap::Args, Debug)]
pub(crate) struct ListenArgs {
    /// The event stream URL.
    pub(crate) url: String,
    /// Extra request header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub(crate) headers: Vec<String>,
    /// Request method (default GET, or POST when a body is given).
    #[arg(short = 'X', long = "request", value_name = "METHOD")]
    pub(crate) method: Option<String>,
    /// Request body, `@file` to read it from a file, `@-` from stdin; sent
    /// again on each reconnection. As with curl, the content type defaults to
    /// `application/x-www-form-urlencoded` unless a `-H` sets it.
    #[arg(short = 'd', long = "data", value_name = "BODY")]
    pub(crate) data: Option<String>,
    /// Resume after this event ID (sent as `Last-Event-ID`).
    #[arg(long, value_name = "ID")]
    pub(crate) last_event_id: Option<String>,
    /// Print one JSON object per event, as `ssehub parse` does.
    #[arg(long)]
    pub(crate) json: bool,
    /// Exit after this many events.
    #[arg(long, value_name = "N")]
    pub(crate) max_events: Option<u64>,
    /// Exit when the connection ends instead of reconnecting.
    #[arg(long)]
    pub(crate) no_reconnect: bool,
    /// Treat a connection silent for this long (no event, no heartbeat) as
    /// dead and reconnect, e.g. `60s` (Mercure heartbeats every 40 s).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub(crate) idle_timeout: Option<Duration>,
    /// Give up after this many consecutive failed reconnections.
    #[arg(long, value_name = "N")]
    pub(crate) max_retries: Option<u32>,
    /// Also retry when the server answers 5xx.
    #[arg(long)]
    pub(crate) retry_server_errors: bool,
    /// Also print comment lines (heartbeats), in human output only.
    #[arg(long)]
    pub(crate) comments: bool,
}

/// Runs `ssehub listen`: events to stdout, connection news to stderr.
///
/// # Errors
///
/// Bad arguments (header syntax, unreadable `-d @file`), a stream that
/// fails for good (non-200 status, wrong content type, retries used up,
/// network error with `--no-reconnect`), or stdout failing. A closed stdout
/// (`| head`) ends quietly.
pub(crate) async fn run(args: ListenArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    match listen(args, &mut out, &mut err).await {
        Err(e) if is_broken_pipe(&e) => Ok(()),
        other => other,
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}

async fn listen(
    args: ListenArgs,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let mut source = build(&args).await?;
    let mut events = 0u64;
    if args.max_events == Some(0) {
        return Ok(());
    }
    while let Some(item) = source.next().await {
        match item.with_context(|| format!("listening to {}", args.url))? {
            Item::Open(open) => {
                writeln!(
                    err,
                    "connected to {} ({:?}, {})",
                    open.url, open.version, open.status
                )?;
            }
            Item::Event(event) => {
                if args.json {
                    writeln!(out, "{}", json_line(&event))?;
                } else {
                    write_human(out, &event)?;
                }
                out.flush()?;
                events += 1;
                if args.max_events.is_some_and(|max| events >= max) {
                    source.close();
                    return Ok(());
                }
            }
            // Only asked for in human output.
            Item::Comment(text) => {
                writeln!(out, ": {text}")?;
                out.flush()?;
            }
            Item::Reconnecting(r) => {
                let why = match &r.cause {
                    None => "the server ended the stream".to_owned(),
                    Some(e) => format!("{e:#}"),
                };
                writeln!(
                    err,
                    "{why}; reconnecting in {:.1?} (attempt {})",
                    r.delay, r.attempt
                )?;
            }
            _ => {}
        }
    }
    if source.end_reason() == Some(EndReason::NoContent) {
        writeln!(err, "the server answered 204 No Content: not reconnecting")?;
    }
    Ok(())
}

async fn build(args: &ListenArgs) -> anyhow::Result<EventSource> {
    let body = match args.data.as_deref() {
        None => None,
        Some("@-") => {
            let mut body = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut body)
                .await
                .context("cannot read the body from stdin")?;
            Some(body)
        }
        Some(d) => match d.strip_prefix('@') {
            Some(path) => Some(
                tokio::fs::read(path)
                    .await
                    .with_context(|| format!("cannot read the body from {path}"))?,
            ),
            None => Some(d.as_bytes().to_vec()),
        },
    };
    let method = match &args.method {
        Some(m) => http::Method::from_bytes(m.as_bytes())
            .with_context(|| format!("invalid method {m:?}"))?,
        None if body.is_some() => http::Method::POST,
        None => http::Method::GET,
    };
    let mut builder = EventSource::builder(method, &args.url);
    let mut has_content_type = false;
    for h in &args.headers {
        let (name, value) = parse_header(h)?;
        has_content_type |= name.eq_ignore_ascii_case("content-type");
        builder = builder.header(name, value);
    }
    if let Some(body) = body {
        if !has_content_type {
            builder = builder.header("content-type", "application/x-www-form-urlencoded");
        }
        builder = builder.body(body);
    }
    if let Some(id) = &args.last_event_id {
        builder = builder.last_event_id(id.as_str());
    }
    if args.no_reconnect {
        builder = builder.no_reconnect();
    }
    if let Some(t) = args.idle_timeout {
        builder = builder.idle_timeout(t);
    }
    if let Some(n) = args.max_retries {
        builder = builder.max_retries(n);
    }
    if args.retry_server_errors {
        builder = builder.retry_server_errors(true);
    }
    Ok(builder.comments(args.comments && !args.json).build()?)
}

/// `Name: value` as curl takes it.
fn parse_header(h: &str) -> anyhow::Result<(&str, &str)> {
    let Some((name, value)) = h.split_once(':') else {
        bail!("invalid header {h:?}: expected 'Name: value'");
    };
    let name = name.trim();
    if name.is_empty() {
        bail!("invalid header {h:?}: empty name");
    }
    Ok((name, value.trim()))
}

/// `40s`, `5m`, `24h`, `250ms`, or plain seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected a number and a unit, like 40s"))?;
    let secs = |k: u64| Duration::from_secs(n.saturating_mul(k));
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => Ok(secs(1)),
        "m" => Ok(secs(60)),
        "h" => Ok(secs(3600)),
        _ => Err(format!(
            "invalid duration {s:?}: the unit must be ms, s, m or h"
        )),
    }
}

/// The line `ssehub parse` prints, from the same type so the two cannot
/// drift apart.
fn json_line(event: &Event) -> String {
    let line = super::parse::JsonEvent {
        event_type: event.event_type(),
        data: &event.data,
        id: event.id.as_deref().unwrap_or(""),
    };
    // Serialising borrowed strings into a String cannot fail.
    serde_json::to_string(&line).unwrap_or_default()
}

/// A header line (`[type] id=...`), the data as is, a blank line.
fn write_human(out: &mut (dyn Write + Send), event: &Event) -> std::io::Result<()> {
    match event.id.as_deref() {
        Some(id) if !id.is_empty() => writeln!(out, "[{}] id={id}", event.event_type())?,
        _ => writeln!(out, "[{}]", event.event_type())?,
    }
    writeln!(out, "{}\n", event.data)
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::body::Body;
    use axum::extract::Request;
    use axum::response::Response;
    use clap::Parser;

    use super::*;

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: ListenArgs,
    }

    fn args(argv: &[&str]) -> ListenArgs {
        Cli::try_parse_from(std::iter::once("listen").chain(argv.iter().copied()))
            .unwrap()
            .args
    }

    type Seen = Arc<Mutex<Vec<(http::Method, http::HeaderMap, bytes::Bytes)>>>;

    /// Answers each request with `replies[n]` (the last repeats), recording
    /// method, headers and body.
    async fn server(replies: Vec<(u16, &'static str, &'static str)>) -> (SocketAddr, Seen) {
        let seen: Seen = Arc::default();
        let log = seen.clone();
        let app = Router::new().fallback(move |req: Request| {
            let log = log.clone();
            let replies = replies.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
                let n = {
                    let mut log = log.lock().unwrap();
                    log.push((parts.method, parts.headers, body));
                    log.len() - 1
                };
                let (status, content_type, body) = replies[n.min(replies.len() - 1)];
                Response::builder()
                    .status(status)
                    .header("content-type", content_type)
                    .body(Body::from(body))
                    .unwrap()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (addr, seen)
    }

    async fn run_capture(a: ListenArgs) -> (anyhow::Result<()>, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let r = listen(a, &mut out, &mut err).await;
        (
            r,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    const STREAM: &str = "id: 1\ndata: hello\n\nevent: greet\ndata: a\ndata: \"b\"\n\n";

    #[tokio::test]
    async fn json_lines_match_ssehub_parse() {
        let (addr, _) = server(vec![(200, "text/event-stream", STREAM)]).await;
        let url = format!("http://{addr}/");
        let (r, out, _) = run_capture(args(&[&url, "--json", "--max-events", "2"])).await;
        r.unwrap();
        assert_eq!(
            out,
            "{\"type\":\"message\",\"data\":\"hello\",\"id\":\"1\"}\n\
             {\"type\":\"greet\",\"data\":\"a\\n\\\"b\\\"\",\"id\":\"1\"}\n"
        );
    }

    #[tokio::test]
    async fn human_output_by_default_and_no_reconnect_exits_at_end() {
        let (addr, seen) = server(vec![(200, "text/event-stream", STREAM)]).await;
        let url = format!("http://{addr}/");
        let (r, out, err) = run_capture(args(&[&url, "--no-reconnect"])).await;
        r.unwrap();
        assert_eq!(out, "[message] id=1\nhello\n\n[greet] id=1\na\n\"b\"\n\n");
        assert!(err.starts_with("connected to "), "{err}");
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn headers_method_body_and_last_event_id_are_sent() {
        let (addr, seen) = server(vec![(200, "text/event-stream", STREAM)]).await;
        let url = format!("http://{addr}/v1/chat/completions");
        let dir = std::env::temp_dir().join(format!("ssehub-listen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("body.json");
        std::fs::write(&file, "{\"stream\": true}").unwrap();
        let data = format!("@{}", file.display());
        let a = args(&[
            &url,
            "-H",
            "Authorization: Bearer k",
            "-H",
            "Content-Type: application/json",
            "-d",
            &data,
            "--last-event-id",
            "41",
            "--max-events",
            "1",
        ]);
        run_capture(a).await.0.unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let seen = seen.lock().unwrap();
        let (method, headers, body) = &seen[0];
        assert_eq!(method, http::Method::POST);
        assert_eq!(body.as_ref(), b"{\"stream\": true}");
        assert_eq!(headers["authorization"], "Bearer k");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["last-event-id"], "41");
        assert_eq!(headers["accept"], "text/event-stream");
    }

    #[tokio::test]
    async fn explicit_method_and_default_form_content_type() {
        let (addr, seen) = server(vec![(200, "text/event-stream", STREAM)]).await;
        let url = format!("http://{addr}/.well-known/mercure");
        run_capture(args(&[
            &url,
            "-X",
            "QUERY",
            "-d",
            "match=*",
            "--max-events",
            "1",
        ]))
        .await
        .0
        .unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0].0.as_str(), "QUERY");
        assert_eq!(
            seen[0].1["content-type"],
            "application/x-www-form-urlencoded"
        );
        assert_eq!(seen[0].2.as_ref(), b"match=*");
    }

    #[tokio::test]
    async fn non_200_is_an_error_naming_the_status_and_the_url() {
        let (addr, seen) = server(vec![(
            401,
            "application/json",
            "{\"error\": \"bad token\"}",
        )])
        .await;
        let url = format!("http://{addr}/");
        let (r, out, _) = run_capture(args(&[&url])).await;
        let e = format!("{:#}", r.unwrap_err());
        assert!(
            e.starts_with(&format!(
                "listening to {url}: server answered 401 Unauthorized"
            )),
            "{e}"
        );
        assert!(e.contains("bad token"), "{e}");
        assert!(out.is_empty());
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn no_content_ends_quietly_with_a_note() {
        let (addr, _) = server(vec![(204, "text/plain", "")]).await;
        let (r, out, err) = run_capture(args(&[&format!("http://{addr}/")])).await;
        r.unwrap();
        assert!(out.is_empty());
        assert!(err.contains("204"), "{err}");
    }

    #[tokio::test]
    async fn bad_header_syntax_is_refused_before_connecting() {
        let (r, _, _) = run_capture(args(&["http://127.0.0.1:1/", "-H", "NoColon"])).await;
        assert_eq!(
            r.unwrap_err().to_string(),
            "invalid header \"NoColon\": expected 'Name: value'"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("40s"), Ok(Duration::from_secs(40)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("7d").is_err());
        assert!(parse_duration("s").is_err());
    }
}
