//! `ssehub publish`: post one update to a Mercure hub and print its id, or with `--follow`,
//! one update per line of a growing file (or of standard input), like `tail -f`.

use std::io::{IsTerminal, Read};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};

use super::follow;

/// Arguments of `ssehub publish`.
#[derive(clap::Args, Debug)]
pub(crate) struct PublishArgs {
    /// The hub's `/.well-known/mercure` URL.
    #[arg(
        long,
        env = "SSEHUB_HUB",
        default_value = "http://127.0.0.1:8080/.well-known/mercure"
    )]
    hub: String,
    /// Topic of the update (repeatable: the first is canonical, the rest alternates).
    #[arg(long = "topic", required = true)]
    topics: Vec<String>,
    /// The data: text, `@file`, or read from stdin when omitted.
    #[arg(long, conflicts_with = "follow")]
    data: Option<String>,
    /// Publish every line appended to FILE from now on, one update per line, and keep
    /// following it across rotation (replaced or truncated) until interrupted; `-` reads
    /// standard input line by line until it ends. Prints each update's id.
    #[arg(long, value_name = "FILE")]
    follow: Option<String>,
    /// A custom update id (the hub generates one otherwise).
    #[arg(long, conflicts_with = "follow")]
    id: Option<String>,
    /// The SSE event type.
    #[arg(long = "type")]
    event_type: Option<String>,
    /// Reconnection time for subscribers, in milliseconds.
    #[arg(long)]
    retry: Option<u64>,
    /// Deliver only to subscribers authorized for one of the topics.
    #[arg(long)]
    private: bool,
    /// Publisher JWT.
    #[arg(long, env = "SSEHUB_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

fn read_data(arg: Option<&str>) -> anyhow::Result<String> {
    match arg {
        Some(path) if path.starts_with('@') => std::fs::read_to_string(&path[1..])
            .with_context(|| format!("reading data from {}", &path[1..])),
        Some(text) => Ok(text.to_owned()),
        None if std::io::stdin().is_terminal() => Ok(String::new()),
        None => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading data from stdin")?;
            Ok(s)
        }
    }
}

/// The publish form for `data` with the other fields from the arguments.
fn form(args: &PublishArgs, data: String) -> String {
    let mut form: Vec<(&str, String)> = args.topics.iter().map(|t| ("topic", t.clone())).collect();
    form.push(("data", data));
    if let Some(id) = &args.id {
        form.push(("id", id.clone()));
    }
    if let Some(t) = &args.event_type {
        form.push(("type", t.clone()));
    }
    if let Some(r) = args.retry {
        form.push(("retry", r.to_string()));
    }
    if args.private {
        form.push(("private", "on".into()));
    }
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish()
}

/// How one attempt to publish ended.
enum Outcome {
    /// Stored: the id.
    Published(String),
    /// Worth trying again later: the hub is unreachable, overloaded or failing.
    Transient(anyhow::Error),
    /// Trying again cannot help (a refused token, a malformed update): the status and message.
    Refused(reqwest::StatusCode, String),
}

async fn post(client: &reqwest::Client, args: &PublishArgs, body: String) -> Outcome {
    let mut req = client
        .post(&args.hub)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body);
    if let Some(token) = &args.token {
        req = req.bearer_auth(token);
    }
    let res = match req.send().await {
        Ok(res) => res,
        Err(e) => {
            return Outcome::Transient(
                anyhow::Error::new(e).context(format!("cannot reach the hub at {}", args.hub)),
            );
        }
    };
    let status = res.status();
    let text = res.text().await.unwrap_or_default().trim().to_owned();
    if status.is_success() {
        Outcome::Published(text)
    } else if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        Outcome::Transient(anyhow::anyhow!("the hub answered {status}: {text}"))
    } else {
        Outcome::Refused(status, text)
    }
}

pub(crate) async fn run(args: PublishArgs) -> anyhow::Result<ExitCode> {
    if let Some(source) = args.follow.clone() {
        return follow(args, &source).await;
    }
    let data = read_data(args.data.as_deref())?;
    match post(&reqwest::Client::new(), &args, form(&args, data)).await {
        Outcome::Published(id) => println!("{id}"),
        Outcome::Transient(err) => return Err(err),
        Outcome::Refused(status, text) => bail!("the hub answered {status}: {text}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Longest wait between two attempts at one line while the hub is away.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// `--follow`: publishes each line in order. A line the hub cannot take now is tried again
/// (with backoff) until it can, so a hub restart loses nothing; a line it refuses for good is
/// skipped with a warning if it is the line's fault (too large), and ends the command if it is
/// the token's.
async fn follow(args: PublishArgs, source: &str) -> anyhow::Result<ExitCode> {
    let shown = if source == "-" {
        "standard input".to_owned()
    } else {
        source.to_owned()
    };
    let announce = shown.clone();
    let mut lines = follow::spawn(source, move || {
        eprintln!("ssehub publish: following {announce}");
    });
    let client = reqwest::Client::new();
    while let Some(line) = lines.recv().await {
        let line = line.with_context(|| format!("reading {shown}"))?;
        let body = form(&args, line);
        let mut backoff = Duration::from_millis(250);
        loop {
            match post(&client, &args, body.clone()).await {
                Outcome::Published(id) => {
                    println!("{id}");
                    break;
                }
                Outcome::Transient(err) => {
                    eprintln!(
                        "ssehub publish: {err:#}; trying again in {} ms",
                        backoff.as_millis()
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Outcome::Refused(status, text)
                    if status == reqwest::StatusCode::PAYLOAD_TOO_LARGE =>
                {
                    eprintln!(
                        "ssehub publish: a line was skipped: the hub answered {status}: {text}"
                    );
                    break;
                }
                Outcome::Refused(status, text) => bail!("the hub answered {status}: {text}"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
