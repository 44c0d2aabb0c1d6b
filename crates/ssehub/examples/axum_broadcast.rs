//! The baseline a user would write by hand: an axum SSE server with one
//! `tokio::sync::broadcast` channel per topic, no auth, no history, no durability.
//!
//! Same shape as nginx + nchan, so `ssehub bench --target axum` drives it:
//! `POST /pub?id=<topic>` with the data as body, `GET /sub?id=<topic>` for the stream.
//!
//! ```text
//! cargo run --release -p ssehub --example axum_broadcast -- 127.0.0.1:18082
//! ```

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use futures_util::Stream;
use serde::Deserialize;
use tokio::sync::broadcast;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::BroadcastStream;

type Topics = Arc<Mutex<HashMap<String, broadcast::Sender<String>>>>;

#[derive(Deserialize)]
struct Channel {
    id: String,
}

fn sender(topics: &Topics, id: &str) -> broadcast::Sender<String> {
    let mut map = topics.lock().unwrap_or_else(|e| e.into_inner());
    map.entry(id.to_owned())
        .or_insert_with(|| broadcast::channel(1024).0)
        .clone()
}

async fn subscribe(
    State(topics): State<Topics>,
    Query(ch): Query<Channel>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = sender(&topics, &ch.id).subscribe();
    // A lagging receiver skips what it missed, as most hand-written servers do.
    let stream =
        BroadcastStream::new(rx).filter_map(|m| m.ok().map(|d| Ok(Event::default().data(d))));
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn publish(
    State(topics): State<Topics>,
    Query(ch): Query<Channel>,
    body: Bytes,
) -> StatusCode {
    let Ok(data) = String::from_utf8(body.to_vec()) else {
        return StatusCode::BAD_REQUEST;
    };
    // No receivers is not an error for a publisher.
    let _ = sender(&topics, &ch.id).send(data);
    StatusCode::ACCEPTED
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18082".into());
    let topics: Topics = Arc::default();
    let app = Router::new()
        .route("/sub", get(subscribe))
        .route("/pub", post(publish))
        .with_state(topics);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await
}
