//! OpenTelemetry traces: `ssehub serve --otlp-endpoint` against a fake OTLP/HTTP collector
//! that decodes what it receives, for the publish span and the relay spans with their
//! HTTP attributes.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message as _;

use super::binary::serve_with_env;
use super::support::{SECRET, admin_token};

/// Every span received, with its resource's `service.name`.
type Received = Arc<Mutex<Vec<(String, Span)>>>;

async fn collect(
    State(received): State<Received>,
    body: Bytes,
) -> impl axum::response::IntoResponse {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export");
    let mut received = received.lock().unwrap();
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| string(kv.value.as_ref()?.value.as_ref()?))
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                received.push((service.clone(), span));
            }
        }
    }
    (
        [("content-type", "application/x-protobuf")],
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
}

fn string(v: &AnyValue) -> Option<String> {
    match v {
        AnyValue::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

/// A fake collector on an ephemeral port accepting `POST /v1/traces`.
async fn collector() -> (String, Received) {
    let received: Received = Received::default();
    let app = axum::Router::new()
        .route("/v1/traces", post(collect))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), received)
}

fn attr(span: &Span, key: &str) -> Option<AnyValue> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.clone())
}

fn attr_str(span: &Span, key: &str) -> String {
    match attr(span, key) {
        Some(AnyValue::StringValue(s)) => s,
        other => panic!("{}: {key} = {other:?}", span.name),
    }
}

fn attr_int(span: &Span, key: &str) -> i64 {
    match attr(span, key) {
        Some(AnyValue::IntValue(i)) => i,
        other => panic!("{}: {key} = {other:?}", span.name),
    }
}

/// Waits until spans with every name in `names` have arrived.
async fn wait_for(received: &Received, names: &[&str]) -> Vec<(String, Span)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let spans = received.lock().unwrap().clone();
        if names
            .iter()
            .all(|n| spans.iter().any(|(_, s)| s.name == *n))
        {
            return spans;
        }
        let seen: Vec<&str> = spans.iter().map(|(_, s)| s.name.as_str()).collect();
        assert!(
            Instant::now() < deadline,
            "spans {names:?} never arrived; got {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_and_relay_spans_reach_the_collector_with_their_http_attributes() {
    let (endpoint, received) = collector().await;
    let dir = tempfile::tempdir().unwrap();
    let hub = serve_with_env(
        dir.path(),
        &[
            "--publisher-jwt-key",
            SECRET,
            "--otlp-endpoint",
            &endpoint,
            "--simulator-tokens-per-second",
            "2000",
            "--simulator-first-token-delay",
            "5ms",
        ],
        &[
            ("OTEL_SERVICE_NAME", Path::new("ssehub-under-test")),
            // Batches leave every 100 ms instead of 5 s.
            ("OTEL_BSP_SCHEDULE_DELAY", Path::new("100")),
        ],
    );
    let client = reqwest::Client::new();
    let res = client
        .post(format!("http://{}/.well-known/mercure", hub.addr))
        .bearer_auth(admin_token())
        .header("content-type", "application/x-www-form-urlencoded")
        .body("topic=/traced&data=hello")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let answer = client
        .post(format!("http://{}/v1/chat/completions", hub.addr))
        .json(&serde_json::json!({"model": "sim", "stream": true,
                                  "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let stream_id = answer.headers()["x-stream-id"].to_str().unwrap().to_owned();
    assert!(answer.text().await.unwrap().contains("[DONE]"));

    let spans = wait_for(
        &received,
        &[
            "POST /.well-known/mercure",
            "POST /v1/chat/completions",
            "relay first token",
        ],
    )
    .await;
    let find = |name: &str| spans.iter().find(|(_, s)| s.name == name).unwrap();

    let (service, publish) = find("POST /.well-known/mercure");
    assert_eq!(
        service, "ssehub-under-test",
        "OTEL_SERVICE_NAME is honoured"
    );
    assert_eq!(publish.kind, SpanKind::Server as i32);
    assert_eq!(attr_str(publish, "http.request.method"), "POST");
    assert_eq!(attr_str(publish, "url.path"), "/.well-known/mercure");
    assert_eq!(attr_str(publish, "http.route"), "/.well-known/mercure");
    assert_eq!(attr_int(publish, "http.response.status_code"), 200);
    assert_eq!(attr_str(publish, "server.address"), "127.0.0.1");
    assert_eq!(attr_int(publish, "server.port"), i64::from(hub.addr.port()));
    assert!(publish.end_time_unix_nano > publish.start_time_unix_nano);

    let (_, relay) = find("POST /v1/chat/completions");
    assert_eq!(relay.kind, SpanKind::Server as i32);
    assert_eq!(attr_str(relay, "http.request.method"), "POST");
    assert_eq!(attr_str(relay, "url.path"), "/v1/chat/completions");
    assert_eq!(attr_int(relay, "http.response.status_code"), 200);
    assert_eq!(attr_str(relay, "ssehub.stream_id"), stream_id);
    assert!(
        attr_int(relay, "ssehub.relay.chunks") > 0,
        "recorded at the answer's end"
    );

    // From the request to the first token, inside the relay stream's span.
    let (_, first) = find("relay first token");
    assert_eq!(first.trace_id, relay.trace_id);
    assert_eq!(first.parent_span_id, relay.span_id);
    assert!(first.start_time_unix_nano >= relay.start_time_unix_nano);
    assert!(
        first.end_time_unix_nano <= relay.end_time_unix_nano,
        "the relay span lasts to the answer's end, past the first token"
    );
    assert_ne!(publish.trace_id, relay.trace_id, "one trace per request");
}

/// Without the flag, the standard `OTEL_EXPORTER_OTLP_ENDPOINT` turns traces on; and the last
/// batch leaves at shutdown: the default 5 s batch delay never passes before SIGTERM here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standard_variable_turns_traces_on_and_sigterm_flushes_them() {
    let (endpoint, received) = collector().await;
    let dir = tempfile::tempdir().unwrap();
    let mut hub = serve_with_env(
        dir.path(),
        &["--publisher-jwt-key", SECRET],
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", Path::new(&endpoint))],
    );
    let res = reqwest::Client::new()
        .post(format!("http://{}/.well-known/mercure", hub.addr))
        .bearer_auth(admin_token())
        .header("content-type", "application/x-www-form-urlencoded")
        .body("topic=/traced&data=hello")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let pid = hub.child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || {
        let status = hub.child.wait().unwrap();
        drop(hub);
        status
    })
    .await
    .unwrap();
    assert!(status.success(), "{status}");
    let spans = received.lock().unwrap().clone();
    let (service, publish) = spans
        .iter()
        .find(|(_, s)| s.name == "POST /.well-known/mercure")
        .expect("the publish span was sent before the hub exited");
    assert_eq!(service, "ssehub", "the default service name");
    assert_eq!(attr_int(publish, "http.response.status_code"), 200);
}
