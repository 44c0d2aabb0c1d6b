//! `ssehub publish`: post one update to a Mercure hub and print its id.

use std::io::{IsTerminal, Read};
use std::process::ExitCode;

use anyhow::{Context as _, bail};

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
    #[arg(long)]
    data: Option<String>,
    /// A custom update id (the hub generates one otherwise).
    #[arg(long)]
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

pub(crate) async fn run(args: PublishArgs) -> anyhow::Result<ExitCode> {
    let data = read_data(args.data.as_deref())?;
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
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let mut req = reqwest::Client::new()
        .post(&args.hub)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body);
    if let Some(token) = &args.token {
        req = req.bearer_auth(token);
    }
    let res = req
        .send()
        .await
        .with_context(|| format!("cannot reach the hub at {}", args.hub))?;
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("the hub answered {status}: {}", text.trim());
    }
    println!("{}", text.trim());
    Ok(ExitCode::SUCCESS)
}
