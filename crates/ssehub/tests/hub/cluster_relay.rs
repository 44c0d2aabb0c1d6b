//! The relay across nodes sharing one Redis history: an answer generated on one node is
//! watched, resumed and cancelled on another, and ends for its watchers when its node dies;
//! a single node still ends an answer interrupted by `kill -9` at the first watch.

use serde_json::Value;

use super::cluster_support::{Process, Proxy, eventually, node, node_at, redis_flags, relay_flags};
use super::redis_server::RedisServer;
use super::relay_support::{
    cancel, chunk, drain, fake_upstream, post_chat, relay_config, stream_id, streaming,
    upstream_dropped, watch,
};
use super::support::{Sse, TestServer};

async fn relay_node(redis: &RedisServer, namespace: &str, upstream: &str) -> TestServer {
    node(redis, namespace, |c| relay_config(c, upstream)).await
}

/// Starts a streamed completion of `model` on process `p`; the stream id and the caller's view.
async fn post_chat_to(p: &Process, model: &str) -> (String, Sse) {
    let res = p
        .client
        .post(p.url("/v1/chat/completions"))
        .bearer_auth("relay-key")
        .json(&streaming(model))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    (stream_id(&res), Sse::new(res))
}

/// Asserts `rest` ends with the `stream_interrupted` error chunk and `[DONE]`, under the ids
/// every end of stream `id` uses.
fn assert_interrupted(id: &str, rest: &[(String, String)]) {
    assert!(rest.len() >= 2, "{rest:?}");
    let (end, done) = (&rest[rest.len() - 2], &rest[rest.len() - 1]);
    assert_eq!(end.0, format!("{id}-end"), "{rest:?}");
    let end: Value = serde_json::from_str(&end.1).unwrap();
    assert_eq!(end["error"]["code"], "stream_interrupted", "{end}");
    assert_eq!(done, &(format!("{id}-done"), "[DONE]".to_owned()));
}

/// Regression (issue 11): watching an answer on a node other than the one generating it ended
/// it for everyone as interrupted, the watching node taking the generator for dead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_generated_on_one_node_is_watched_and_resumed_on_another_to_done() {
    let redis = RedisServer::start();
    let (upstream, seen) = fake_upstream().await;
    let a = relay_node(&redis, "watch", &upstream).await;
    let b = relay_node(&redis, "watch", &upstream).await;
    let res = post_chat(&a, streaming("fake-long")).await;
    let id = stream_id(&res);
    let mut caller = Sse::new(res);
    let first = caller.events(2).await;
    // While a generates: one watch from the start, one resuming after the caller's second.
    let mut on_b = Sse::new(watch(&b, &id).send().await.unwrap());
    let second = first[1].id.clone().unwrap();
    let mut resumed = Sse::new(
        watch(&b, &id)
            .header("last-event-id", &second)
            .send()
            .await
            .unwrap(),
    );
    let all = drain(&mut on_b).await;
    assert_eq!(all.len(), 31, "{all:?}");
    for (i, (event_id, data)) in all[..30].iter().enumerate() {
        assert_eq!(data, &chunk(i, &format!("w{i} ")));
        assert_eq!(event_id, &format!("{id}-{}", i + 1));
    }
    assert_eq!(all[30], (format!("{id}-done"), "[DONE]".to_owned()));
    assert_eq!(drain(&mut resumed).await, all[2..]);
    // The caller on a got the very same answer, and the upstream ran to its end.
    let mut on_a: Vec<(String, String)> =
        first.into_iter().map(|e| (e.id.unwrap(), e.data)).collect();
    on_a.extend(drain(&mut caller).await);
    assert_eq!(on_a, all);
    assert_eq!(seen.lock().unwrap().finished, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_sent_to_another_node_stops_the_upstream_request() {
    let redis = RedisServer::start();
    let (upstream, seen) = fake_upstream().await;
    let a = relay_node(&redis, "cancel", &upstream).await;
    let b = relay_node(&redis, "cancel", &upstream).await;
    let res = post_chat(&a, streaming("fake-slow")).await;
    let id = stream_id(&res);
    let mut caller = Sse::new(res);
    caller.events(2).await;
    let mut on_b = Sse::new(watch(&b, &id).send().await.unwrap());
    on_b.events(2).await;
    let res = cancel(&b, &id).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["cancelled"], true);
    for sse in [&mut caller, &mut on_b] {
        let rest = drain(sse).await;
        let (last, done) = (&rest[rest.len() - 2], &rest[rest.len() - 1]);
        let last: Value = serde_json::from_str(&last.1).unwrap();
        assert_eq!(last["choices"][0]["finish_reason"], "cancelled", "{rest:?}");
        assert_eq!(done, &(format!("{id}-done"), "[DONE]".to_owned()));
    }
    // "fake-slow" never ends by itself: only the cancel can have dropped its request.
    // (How soon is measured in BENCHMARKS.md, not asserted here: no timing in tests.)
    upstream_dropped(&seen).await;
    // Asking again, on either node, says it had finished.
    for hub in [&b, &a] {
        let again: Value = cancel(hub, &id).await.json().await.unwrap();
        assert_eq!(again["cancelled"], false, "{again}");
    }
}

/// Two nodes watch when the generator dies: both end the answer at about the same time, and
/// history holds its end once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_generating_node_dies_watchers_elsewhere_get_an_error_chunk_and_done() {
    let redis = RedisServer::start();
    let (upstream, _) = fake_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let mut flags = redis_flags(&redis, "death");
    flags.extend(relay_flags(&upstream));
    let mut a = Process::spawn(dir.path(), &flags);
    let b = relay_node(&redis, "death", &upstream).await;
    let c = relay_node(&redis, "death", &upstream).await;
    let (id, mut caller) = post_chat_to(&a, "fake-slow").await;
    caller.events(2).await;
    let mut on_b = Sse::new(watch(&b, &id).send().await.unwrap());
    let mut on_c = Sse::new(watch(&c, &id).send().await.unwrap());
    // Live on both (a third chunk is generated after the watches began), before the kill.
    on_b.events(3).await;
    on_c.events(3).await;
    a.kill();
    // Within a's lease and a renewal period of theirs; nothing else is sent meanwhile (the
    // heartbeat is 40 s), so each end is waited for within PATIENCE.
    for sse in [&mut on_b, &mut on_c] {
        assert_interrupted(&id, &drain(sse).await);
    }
    let replay = drain(&mut Sse::new(watch(&b, &id).send().await.unwrap())).await;
    let ends = replay.iter().filter(|(eid, _)| eid.ends_with("-end"));
    assert_eq!(ends.count(), 1, "{replay:?}");
    assert_interrupted(&id, &replay);
}

/// A node cut off from Redis past its lease is taken for gone, and a watcher elsewhere gets
/// the end. Back, that node stops the generation the others ended rather than recording
/// after its end (and paying for the rest of the answer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_back_after_its_lease_ran_out_stops_the_answers_the_others_ended() {
    let redis = RedisServer::start();
    let proxy = Proxy::start(&redis).await;
    let (upstream, seen) = fake_upstream().await;
    let a = node_at(&proxy.url(), "cut", |c| relay_config(c, &upstream)).await;
    let b = relay_node(&redis, "cut", &upstream).await;
    // Two chunks, then the upstream is silent for PAUSE: no append tells a it is cut off.
    let res = post_chat(&a, streaming("fake-pause")).await;
    let id = stream_id(&res);
    Sse::new(res).events(2).await;
    let mut on_b = Sse::new(watch(&b, &id).send().await.unwrap());
    on_b.events(2).await;
    proxy.cut();
    assert_interrupted(&id, &drain(&mut on_b).await);
    proxy.restore();
    eventually(
        "the upstream request dropped",
        || async { seen.lock().unwrap().dropped_at },
        Option::is_some,
    )
    .await;
    assert_eq!(seen.lock().unwrap().finished, 0);
    let replay = drain(&mut Sse::new(watch(&b, &id).send().await.unwrap())).await;
    let ids: Vec<&str> = replay.iter().map(|(i, _)| i.as_str()).collect();
    let expected = ["-1", "-2", "-end", "-done"].map(|suffix| format!("{id}{suffix}"));
    assert_eq!(ids, expected, "nothing recorded after the end");
}

/// A single node behaves as before nodes existed: an answer whose generation a `kill -9` cut
/// short is ended at the first watch after the restart, at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_a_single_node_ends_the_interrupted_answer_at_the_first_watch() {
    let (upstream, _) = fake_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let flags = relay_flags(&upstream);
    let mut a = Process::spawn(dir.path(), &flags);
    let (id, mut caller) = post_chat_to(&a, "fake-slow").await;
    caller.events(2).await;
    a.kill();
    let a = Process::spawn(dir.path(), &flags);
    let res = a
        .client
        .get(a.url(&format!("/v1/streams/{id}")))
        .bearer_auth("relay-key")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let rest = drain(&mut Sse::new(res)).await;
    assert_eq!(rest[0].0, format!("{id}-1"));
    assert_interrupted(&id, &rest);
}
