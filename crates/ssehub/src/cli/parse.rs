//! `ssehub parse`: stdin bytes, as they arrive, through the `sse-wire` parser; one JSON line
//! per dispatched event. How anyone checks a stream by hand, and how conformance suites
//! drive the parser.

use std::io::{BufWriter, Read, Write};
use std::process::ExitCode;

use anyhow::Context as _;
use serde::Serialize;
use sse_wire::{FrameRef, Parser};

/// Arguments of `ssehub parse`.
#[derive(clap::Args, Debug)]
pub(crate) struct ParseArgs {
    /// After end of input, print `{"retry": ms|null, "last_event_id": "..."}`.
    #[arg(long)]
    emit_state: bool,
}

/// One dispatched event as printed; also the `--json` format of `ssehub listen`.
#[derive(Serialize)]
pub(crate) struct JsonEvent<'a> {
    #[serde(rename = "type")]
    pub(crate) event_type: &'a str,
    pub(crate) data: &'a str,
    pub(crate) id: &'a str,
}

#[derive(Serialize)]
struct JsonState<'a> {
    retry: Option<u64>,
    last_event_id: &'a str,
}

pub(crate) fn run(args: ParseArgs) -> anyhow::Result<ExitCode> {
    let mut stdin = std::io::stdin().lock();
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut parser = Parser::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("reading stdin"),
        };
        // Lent frames: each event is printed at once, so none needs its own strings.
        let mut feed = parser.feed(&buf[..n]);
        while let Some(frame) = feed.next_ref() {
            let frame = frame.context("parsing the event stream")?;
            if let FrameRef::Event(ev) = frame {
                let line = JsonEvent {
                    event_type: ev.event_type(),
                    data: ev.data,
                    id: ev.id.unwrap_or(""),
                };
                serde_json::to_writer(&mut out, &line)?;
                out.write_all(b"\n")?;
            }
        }
        // Events are printed as they arrive, not when input ends.
        out.flush().context("writing stdout")?;
    }
    if args.emit_state {
        let state = JsonState {
            retry: parser.retry(),
            last_event_id: parser.last_event_id(),
        };
        serde_json::to_writer(&mut out, &state)?;
        out.write_all(b"\n")?;
    }
    out.flush().context("writing stdout")?;
    Ok(ExitCode::SUCCESS)
}
