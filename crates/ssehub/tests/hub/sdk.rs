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

fn python() -> String {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_openai_python_sdk_streams_through_the_relay() {
    let hub = TestServer::start_with(|c| {
        c.relay_api_keys = vec!["relay-key".into()];
        c.simulator.tokens_per_second = 1000.0;
        c.simulator.first_token_delay = Duration::from_millis(5);
    })
    .await;
    let base = hub.url("/v1");
    let python = python();
    let out = tokio::task::spawn_blocking(move || Command::new(&python).arg("-c").arg(SCRIPT).arg(base).output())
        .await
        .unwrap()
        .expect("cannot run python: run scripts/test.sh (it installs the openai package) or set SSEHUB_TEST_PYTHON");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the openai SDK failed (is the `openai` package installed? scripts/test.sh installs it):\n{stderr}"
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
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
