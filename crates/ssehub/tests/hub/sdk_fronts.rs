//! The official Python SDKs against the relay's other fronts: `openai` for the Responses API
//! (stream, background resume by sequence number after a dropped connection, polling, cancel)
//! and `anthropic` for Messages (`messages.stream`, resumed through `/v1/streams/{id}`).
//! `scripts/test.sh` installs both into `target/test-venv`; `SSEHUB_TEST_PYTHON` names
//! another interpreter that has them.

use std::process::Command;
use std::time::Duration;

use super::relay_support::relay_with_fake_upstream;
use super::sdk::python;
use super::support::TestServer;

const RESPONSES: &str = r#"
import sys, time, openai
client = openai.OpenAI(base_url=sys.argv[1], api_key="relay-key", max_retries=0)
ask = dict(model="ssehub-simulator", input="stream me an answer", extra_body={"seed": 7})
text, seqs, final = [], [], None
for ev in client.responses.create(stream=True, **ask):
    seqs.append(ev.sequence_number)
    if ev.type == "response.output_text.delta":
        text.append(ev.delta)
    if ev.type == "response.completed":
        final = ev.response
text = "".join(text)
chat = client.chat.completions.create(model="ssehub-simulator", seed=7,
    messages=[{"role": "user", "content": "stream me an answer"}])
print(len(text) > 20 and text == chat.choices[0].message.content == final.output_text)
print(seqs == list(range(1, len(seqs) + 1)))

# A background answer, its connection dropped after three deltas, resumed by number.
stream = client.responses.create(stream=True, background=True, **ask)
got, last, rid = [], None, None
for ev in stream:
    last = ev.sequence_number
    if ev.type == "response.created":
        rid = ev.response.id
    if ev.type == "response.output_text.delta":
        got.append(ev.delta)
        if len(got) == 3:
            break
stream.close()
first, final2 = None, None
for ev in client.responses.retrieve(rid, stream=True, starting_after=last):
    if first is None:
        first = ev.sequence_number
    if ev.type == "response.output_text.delta":
        got.append(ev.delta)
    if ev.type == "response.completed":
        final2 = ev.response
print(first == last + 1)
print("".join(got) == final2.output_text == text)

# Background without streaming: polled to the end.
r = client.responses.create(background=True, **ask)
print(r.status)
while r.status in ("queued", "in_progress"):
    time.sleep(0.02)
    r = client.responses.retrieve(r.id)
print(r.status, r.output_text == text)
print(client.responses.create(**ask).output_text == text)
try:
    client.responses.retrieve("strm_nope")
    print("found")
except openai.NotFoundError as e:
    print(e.status_code, e.body["code"])
"#;

const RESPONSES_CANCEL: &str = r#"
import sys, openai
client = openai.OpenAI(base_url=sys.argv[1], api_key="relay-key", max_retries=0)
rid, kinds = None, []
for ev in client.responses.create(model="fake-slow", input="hi", stream=True, background=True):
    kinds.append(ev.type)
    if ev.type == "response.created":
        rid = ev.response.id
    if len(kinds) == 6:
        print(client.responses.cancel(rid).status)
print(kinds[-1])
"#;

const MESSAGES: &str = r#"
import sys, anthropic, httpx
base = sys.argv[1].removesuffix("/v1")
client = anthropic.Anthropic(base_url=base, api_key="relay-key", max_retries=0)
ask = dict(model="ssehub-simulator", max_tokens=1024, extra_body={"seed": 7},
           messages=[{"role": "user", "content": "stream me an answer"}])
with client.messages.stream(**ask) as stream:
    text = "".join(stream.text_stream)
    final = stream.get_final_message()
    sid = stream.response.headers.get("x-stream-id")
print(len(text) > 20 and text == final.content[0].text)
print(final.stop_reason)
print(client.messages.create(**ask).content[0].text == text)
# The same answer, resumed after its fifth event through the stream endpoint.
events = []
with httpx.stream("GET", f"{base}/v1/streams/{sid}", headers={"x-api-key": "relay-key"}) as r:
    for line in r.iter_lines():
        if line.startswith("id: "):
            events.append(line[4:])
with httpx.stream("GET", f"{base}/v1/streams/{sid}",
                  headers={"x-api-key": "relay-key", "last-event-id": events[4]}) as r:
    rest = [line[4:] for line in r.iter_lines() if line.startswith("id: ")]
print(rest == events[5:])
try:
    client.messages.create(model="m", max_tokens=5, messages=[{"role": "tool", "content": "x"}])
except anthropic.BadRequestError as e:
    print(e.status_code, e.body["error"]["type"])
"#;

/// Runs `script` with the hub's `/v1` URL as its argument; its stdout lines.
async fn run(hub: &TestServer, script: &'static str) -> Vec<String> {
    let base = hub.url("/v1");
    let python = python();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(&python)
            .arg("-c")
            .arg(script)
            .arg(base)
            .output()
    })
    .await
    .unwrap()
    .expect(
        "cannot run python: run scripts/test.sh (it installs the SDKs) or set SSEHUB_TEST_PYTHON",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the SDK script failed (are `openai` and `anthropic` installed? scripts/test.sh installs them):\n{stderr}"
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

async fn simulator_hub() -> TestServer {
    TestServer::start_with(|c| {
        c.relay_api_keys = vec!["relay-key".into()];
        c.simulator.tokens_per_second = 1000.0;
        c.simulator.first_token_delay = Duration::from_millis(5);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_openai_sdk_streams_resumes_and_polls_responses() {
    let hub = simulator_hub().await;
    let lines = run(&hub, RESPONSES).await;
    assert_eq!(
        lines,
        [
            "True",
            "True",
            "True",
            "True",
            "queued",
            "completed True",
            "True",
            "404 response_not_found"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_openai_sdk_cancels_a_background_response_and_the_upstream_request_drops() {
    let (hub, seen) = relay_with_fake_upstream().await;
    let lines = run(&hub, RESPONSES_CANCEL).await;
    assert_eq!(lines, ["cancelled", "response.cancelled"]);
    assert!(
        seen.lock().unwrap().dropped_at.is_some(),
        "upstream request still open"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_anthropic_sdk_streams_a_message_that_resumes_by_last_event_id() {
    let hub = simulator_hub().await;
    let lines = run(&hub, MESSAGES).await;
    assert_eq!(
        lines,
        [
            "True",
            "end_turn",
            "True",
            "True",
            "400 invalid_request_error"
        ]
    );
}
