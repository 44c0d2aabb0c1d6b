//! The lean HTTP/1.1 transport against raw servers that write exactly the
//! bytes given: chunk framing cut anywhere, extensions, malformed sizes,
//! oversized heads, connections cut mid-chunk. (The behaviour shared with
//! reqwest runs over both transports in the other modules.)

use std::time::Duration;

use sse_client::{Backoff, Error, EventSource, Http1Error, Item, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::support::*;

/// What the raw server does with one connection, after reading the
/// request head.
#[derive(Clone, Debug)]
enum Act {
    /// Write these bytes, then wait a little so that reads do not coalesce.
    Write(Vec<u8>),
    /// Close the connection.
    Close,
    /// Keep the connection open and silent.
    Stall,
}

fn write(bytes: impl AsRef<[u8]>) -> Act {
    Act::Write(bytes.as_ref().to_vec())
}

/// A loopback server that answers the n-th connection with the n-th script
/// (the last one repeats) and reports each request head it read.
async fn raw_server(scripts: Vec<Vec<Act>>) -> (String, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        for n in 0.. {
            let (stream, _) = listener.accept().await.unwrap();
            let script = scripts[n.min(scripts.len() - 1)].clone();
            tokio::spawn(serve(stream, script, tx.clone()));
        }
    });
    (url, rx)
}

async fn serve(mut stream: TcpStream, script: Vec<Act>, heads: mpsc::UnboundedSender<String>) {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0];
        if stream.read(&mut byte).await.unwrap_or(0) == 0 {
            return;
        }
        head.push(byte[0]);
    }
    let _ = heads.send(String::from_utf8(head).unwrap());
    for act in script {
        match act {
            Act::Write(bytes) => {
                if stream.write_all(&bytes).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Act::Close => return,
            Act::Stall => std::future::pending::<()>().await,
        }
    }
}

const CHUNKED_HEAD: &str =
    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";

fn lean(url: &str) -> sse_client::Builder {
    EventSource::get(url)
        .transport(Transport::LeanHttp1)
        .backoff(Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(30),
            jitter: 0.0,
        })
}

/// A chunked body with extensions, a trailer, and CRLF split across chunks.
const BODY: &[u8] = b"A;a=1;b=\"x;y\"\r\nid: 1\r\ndat\r\n7\r\na: one\r\r\n5 ;z\r\n\n\r\nda\r\n9\r\nta: two\n\n\r\n0\r\nx-checksum: 1\r\n\r\n";

#[tokio::test(start_paused = true)]
async fn chunked_body_split_at_every_byte_boundary() {
    let whole = [CHUNKED_HEAD.as_bytes(), BODY].concat();
    for cut in 1..whole.len() {
        let (url, _) = raw_server(vec![vec![
            write(&whole[..cut]),
            write(&whole[cut..]),
            Act::Close,
        ]])
        .await;
        let mut es = lean(&url).reconnect_on_end(false).build().unwrap();
        let items = drain(&mut es).await;
        assert_eq!(
            kinds(&items),
            ["open", "event message:one:1", "event message:two:1"],
            "cut at {cut}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn chunked_body_one_byte_per_write() {
    let mut script: Vec<Act> = CHUNKED_HEAD
        .bytes()
        .chain(BODY.iter().copied())
        .map(|b| write([b]))
        .collect();
    script.push(Act::Close);
    let (url, _) = raw_server(vec![script]).await;
    let mut es = lean(&url).reconnect_on_end(false).build().unwrap();
    let items = drain(&mut es).await;
    assert_eq!(
        kinds(&items),
        ["open", "event message:one:1", "event message:two:1"]
    );
}

#[tokio::test(start_paused = true)]
async fn malformed_chunk_size_is_a_typed_error() {
    let (url, _) = raw_server(vec![vec![
        write(CHUNKED_HEAD),
        write("c\r\ndata: fine\n\n\r\nxyz\r\ndata: never\n\n\r\n"),
        Act::Stall,
    ]])
    .await;
    let mut es = lean(&url).no_reconnect().build().unwrap();
    let items = drain(&mut es).await;
    assert_eq!(
        kinds(&items),
        ["open", "event message:fine:", "error request"]
    );
    let Some(Err(Error::Http1(Http1Error::ChunkSize(line)))) = items.last() else {
        panic!("{:?}", items.last())
    };
    assert_eq!(line, "xyz");
}

#[tokio::test(start_paused = true)]
async fn response_head_over_the_limit_is_an_error() {
    let big = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nx-big: {}\r\n\r\n",
        "x".repeat(20_000)
    );
    let (url, _) = raw_server(vec![vec![write(big), Act::Stall]]).await;
    let mut es = lean(&url).no_reconnect().build().unwrap();
    let items = drain(&mut es).await;
    let [Err(Error::Http1(Http1Error::HeadTooLarge(limit)))] = &items[..] else {
        panic!("{:?}", kinds(&items))
    };
    assert_eq!(*limit, 16 * 1024);
}

#[tokio::test(start_paused = true)]
async fn server_closing_mid_chunk_reconnects_with_last_event_id() {
    let (url, mut heads) = raw_server(vec![
        vec![
            write(CHUNKED_HEAD),
            // A 0x40-byte chunk of which only the start arrives.
            write("40\r\nid: 7\ndata: a\n\ndata: cut"),
            Act::Close,
        ],
        vec![
            write(CHUNKED_HEAD),
            write("9\r\ndata: b\n\n\r\n"),
            Act::Stall,
        ],
    ])
    .await;
    let mut es = lean(&url).build().unwrap();
    let items = collect(&mut es, 2).await;
    assert_eq!(
        kinds(&items),
        [
            "open",
            "event message:a:7",
            "reconnect request",
            "open",
            "event message:b:7"
        ]
    );
    let Ok(Item::Reconnecting(r)) = &items[2] else {
        unreachable!()
    };
    assert!(
        matches!(&r.cause, Some(Error::Http1(Http1Error::EndedEarly("body")))),
        "{:?}",
        r.cause
    );
    let first = heads.recv().await.unwrap();
    let second = heads.recv().await.unwrap();
    assert!(
        !first.to_ascii_lowercase().contains("last-event-id"),
        "{first}"
    );
    assert!(
        second.to_ascii_lowercase().contains("last-event-id: 7\r\n"),
        "{second}"
    );
}

#[tokio::test(start_paused = true)]
async fn length_delimited_and_read_to_close_bodies() {
    let event = "data: a\n\n";
    let (url, _) = raw_server(vec![
        vec![
            write(format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\n\r\n{event}",
                event.len()
            )),
            Act::Stall,
        ],
        vec![write(format!("HTTP/1.0 200 OK\r\ncontent-type: text/event-stream\r\n\r\n{event}")), Act::Close],
        vec![Act::Stall],
    ])
    .await;
    let mut es = lean(&url).build().unwrap();
    let items = collect(&mut es, 2).await;
    // The length-delimited body ends after its length, though the
    // connection stays open.
    assert_eq!(
        kinds(&items),
        [
            "open",
            "event message:a:",
            "reconnect ended",
            "open",
            "event message:a:"
        ]
    );
    let Ok(Item::Open(open)) = &items[3] else {
        unreachable!()
    };
    assert_eq!(open.version, http::Version::HTTP_10);
}

#[tokio::test(start_paused = true)]
async fn interim_responses_are_skipped_and_redirects_to_https_end_the_stream() {
    let (url, _) = raw_server(vec![vec![
        write("HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n"),
        write(format!("{CHUNKED_HEAD}9\r\ndata: a\n\n\r\n")),
        Act::Stall,
    ]])
    .await;
    let mut es = lean(&url).build().unwrap();
    assert_eq!(data(&collect(&mut es, 1).await), ["a"]);

    let (url, _) = raw_server(vec![vec![
        write("HTTP/1.1 302 Found\r\nlocation: https://example.com/\r\ncontent-length: 0\r\n\r\n"),
        Act::Stall,
    ]])
    .await;
    let mut es = lean(&url).build().unwrap();
    let items = drain(&mut es).await;
    assert!(
        matches!(&items[..], [Err(Error::Http1(Http1Error::Redirect(_)))]),
        "{:?}",
        kinds(&items)
    );
}
