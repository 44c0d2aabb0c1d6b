//! The official `openai` Python SDK, pointed at the hub with `base_url`: a real client that
//! nobody here wrote. `scripts/test.sh` installs it into `target/test-venv`;
//! `SSEHUB_TEST_PYTHON` names another interpreter that has it.

use std::process::Command;
use std::time::Duration;

use super::support::TestServer;

const SCRIPT: &str = r#"
import sys, openai
client = openai.OpenAI(base_url=sys.argv[1], api_key="relay-key", max_retries=0)
text, ids, finish = [], 0, None
with client.chat.completions.with_streaming_response.create(
    model="ssehub-simulator", stream=True, seed=7,
    messages=[{"role": "user", "content": "stream me an answer"}],
) as response:
    stream_id = response.headers.get("x-stream-id")
    for chunk in response.parse():
        ids += 1
        if chunk.choices and chunk.choices[0].delta.content:
            text.append(chunk.choices[0].delta.content)
        if chunk.choices and chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
whole = client.chat.completions.create(model="ssehub-simulator", seed=7,
    messages=[{"role": "user", "content": "stream me an answer"}])
models = [m.id for m in client.models.list()]
try:
    openai.OpenAI(base_url=sys.argv[1], api_key="wrong", max_retries=0).models.list()
    refused = "no"
except openai.AuthenticationError as e:
    refused = e.body["code"] if isinstance(e.body, dict) else str(e.body)
print(stream_id)
print(ids)
print(finish)
print("".join(text) == whole.choices[0].message.content)
print(",".join(models))
print(refused)
"#;

/// Stops an answer after its first words, then reads on to the end of the stream.
const CANCEL_SCRIPT: &str = r#"
import sys, httpx, openai
base = sys.argv[1]
client = openai.OpenAI(base_url=base, api_key="relay-key", max_retries=0)
finish, cancelled = None, None
with client.chat.completions.with_streaming_response.create(
    model="ssehub-simulator", stream=True,
    messages=[{"role": "user", "content": "a long answer please"}],
) as response:
    stream_id = response.headers.get("x-stream-id")
    for chunk in response.parse():
        if cancelled is None and chunk.choices and chunk.choices[0].delta.content:
            r = httpx.post(f"{base}/streams/{stream_id}/cancel",
                           headers={"Authorization": "Bearer relay-key"})
            cancelled = r.json()["cancelled"]
        if chunk.choices and chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
print(cancelled)
print(finish)
"#;

pub(crate) fn python() -> String {
    if let Ok(p) = std::env::var("SSEHUB_TEST_PYTHON") {
        return p;
    }
    let venv = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../target/test-venv/bin/python"
    );
    if std::path::Path::new(venv).exists() {
        venv.to_owned()
    } else {
        "python3".to_owned()
    }
}

/// Runs `script` with the hub's `/v1` URL as its argument; its stdout lines.
async fn run_python(hub: &TestServer, script: &'static str) -> Vec<String> {
    let base = hub.url("/v1");
    let python = python();
    let out = tokio::task::spawn_blocking(move || Command::new(&python).arg("-c").arg(script).arg(base).output())
        .await
        .unwrap()
        .expect("cannot run python: run scripts/test.sh (it installs the openai package) or set SSEHUB_TEST_PYTHON");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the openai SDK failed (is the `openai` package installed? scripts/test.sh installs it):\n{stderr}"
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_openai_python_sdk_streams_through_the_relay() {
    let hub = TestServer::start_with(|c| {
        c.relay_api_keys = vec!["relay-key".into()];
        c.simulator.tokens_per_second = 1000.0;
        c.simulator.first_token_delay = Duration::from_millis(5);
    })
    .await;
    let lines = run_python(&hub, SCRIPT).await;
    assert!(lines[0].starts_with("strm_"), "X-Stream-Id: {}", lines[0]);
    assert!(
        lines[1].parse::<u32>().unwrap() > 10,
        "chunks: {}",
        lines[1]
    );
    assert_eq!(lines[2], "stop");
    assert_eq!(
        lines[3], "True",
        "streamed text differs from the non-streamed answer"
    );
    assert_eq!(lines[4], "ssehub-simulator");
    assert_eq!(lines[5], "invalid_api_key");
}

/// The SDK takes the `"cancelled"` finish reason a stopped answer ends with (OpenAI has no such
/// value; README promises it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_openai_python_sdk_reads_a_cancelled_answer_to_its_end() {
    let hub = TestServer::start_with(|c| {
        c.relay_api_keys = vec!["relay-key".into()];
        c.simulator.tokens_per_second = 20.0;
        c.simulator.first_token_delay = Duration::from_millis(5);
    })
    .await;
    let lines = run_python(&hub, CANCEL_SCRIPT).await;
    assert_eq!(lines, ["True", "cancelled"]);
}
