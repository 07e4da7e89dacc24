//! `[journal.events]`: the progress of DAG runs published to the local Redis
//! (`127.0.0.1:6379`, or `ERGON_TEST_REDIS_URL`) by the real binary, as stream entries
//! and as channel messages; a publisher whose Redis is unreachable never blocks the
//! journal, and drops (and counts) what does not fit its queue.

#![cfg(all(feature = "file", feature = "local", feature = "run-events"))]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ergon_journal::EventSink;
use ergon_journal::config::EventsConfig;
use ergon_journal::run::RunEvent;
use ergon_runner::run_events::{BATCH, QUEUE_CAPACITY, RedisEvents};
use redis::streams::{StreamId, StreamRangeReply};
use serde_json::{Value, json};

mod common;
#[path = "common/workflow.rs"]
mod workflow;

use common::{run_ok, runner};
use workflow::{JOURNAL, diamond, enqueue_docs, local_tasks, node, workflow_table, write_config};

fn url() -> String {
    std::env::var("ERGON_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn redis() -> redis::Connection {
    redis::Client::open(url())
        .unwrap()
        .get_connection()
        .unwrap_or_else(|err| panic!("Redis is not reachable at {} ({err})", url()))
}

/// A stream key or channel of this test alone.
fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("ergon-runner-test:{what}:{}:{nanos}", std::process::id())
}

/// `first → second → last`: every transition in one order only.
fn chain() -> String {
    [
        node("first", "a", &[], ""),
        node("second", "b", &["first"], ""),
        node("last", "a", &["second"], ""),
    ]
    .concat()
}

/// The workflow `wf` (its `nodes`) started from the local queue `docs`, run by `forward`
/// tasks, its journal in the queues' file publishing `[journal.events]` (`events`: the
/// table's keys).
fn workflow_config(dir: &Path, nodes: &str, events: &str) -> PathBuf {
    let toml = format!(
        "{}{JOURNAL}[journal.events]\ntype = \"redis\"\nurl = \"{}\"\n{events}\n{}{nodes}",
        local_tasks(None),
        url(),
        workflow_table("timeout = \"1m\""),
    );
    write_config(dir, &toml)
}

/// Enqueues `docs` and runs every task until the runs are over.
fn run_workflow(config: &Path, docs: &[Value]) {
    enqueue_docs(config, docs);
    run_ok(config, &["run"]);
}

/// An event as published, whichever the mode.
#[derive(Debug, Clone, PartialEq)]
struct Event {
    run_id: String,
    workflow: String,
    node: Option<String>,
    status: String,
    error: Option<String>,
    at_ms: i64,
}

impl Event {
    /// From a stream entry's fields.
    fn from_entry(entry: &StreamId) -> Self {
        let mut fields: Vec<&String> = entry.map.keys().collect();
        fields.sort();
        for field in fields {
            let known = ["run_id", "workflow", "node", "status", "error", "at_ms"];
            assert!(known.contains(&field.as_str()), "{field} in {entry:?}");
        }
        let text = |field: &str| entry.get::<String>(field);
        Self {
            run_id: text("run_id").unwrap(),
            workflow: text("workflow").unwrap(),
            node: text("node"),
            status: text("status").unwrap(),
            error: text("error"),
            at_ms: text("at_ms").unwrap().parse().unwrap(),
        }
    }

    /// From a channel message's JSON.
    fn from_json(json: &str) -> Self {
        let value: Value = serde_json::from_str(json).unwrap();
        let text = |field: &str| value.get(field).map(|v| v.as_str().unwrap().to_owned());
        Self {
            run_id: text("run_id").unwrap(),
            workflow: text("workflow").unwrap(),
            node: text("node"),
            status: text("status").unwrap(),
            error: text("error"),
            at_ms: value["at_ms"].as_i64().unwrap(),
        }
    }

    /// `(node, status)`, the run itself being `run`.
    fn step(&self) -> (String, String) {
        let node = self.node.clone().unwrap_or_else(|| "run".to_owned());
        (node, self.status.clone())
    }
}

/// The steps `[("run", "running"), ("first", "running"), …]` of `spec`: `node:status`.
fn steps(spec: &[&str]) -> Vec<(String, String)> {
    spec.iter()
        .map(|step| {
            let (node, status) = step.split_once(':').unwrap();
            (node.to_owned(), status.to_owned())
        })
        .collect()
}

/// Every entry of `stream`, oldest first.
fn stream_events(stream: &str) -> Vec<Event> {
    let reply: StreamRangeReply = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query(&mut redis())
        .unwrap();
    reply.ids.iter().map(Event::from_entry).collect()
}

/// The events of run `run_id` among `events`, in their order, each of workflow `wf`,
/// without an error, and no earlier than the one before.
fn of_run(events: &[Event], run_id: &str) -> Vec<Event> {
    let run: Vec<Event> = events
        .iter()
        .filter(|event| event.run_id == run_id)
        .cloned()
        .collect();
    for pair in run.windows(2) {
        assert!(pair[0].at_ms <= pair[1].at_ms, "{pair:?}");
    }
    for event in &run {
        assert_eq!(event.workflow, "wf", "{event:?}");
        assert_eq!(event.error, None, "{event:?}");
    }
    run
}

#[test]
fn a_stream_holds_each_runs_transitions_in_causal_order() {
    let stream = unique("events");
    let dir = tempfile::tempdir().unwrap();
    let events = format!("stream = \"{stream}\"\nmaxlen = 1000");
    let config = workflow_config(dir.path(), &chain(), &events);

    run_workflow(&config, &[json!({ "id": "d1" }), json!({ "id": "d2" })]);

    let events = stream_events(&stream);
    let expected = steps(&[
        "run:running",
        "first:running",
        "first:succeeded",
        "second:running",
        "second:succeeded",
        "last:running",
        "last:succeeded",
        "run:succeeded",
    ]);
    for run_id in ["d1", "d2"] {
        let run: Vec<_> = of_run(&events, run_id).iter().map(Event::step).collect();
        assert_eq!(run, expected, "run {run_id}");
    }
    assert_eq!(events.len(), 2 * expected.len(), "{events:?}");
    let _: () = redis::cmd("DEL").arg(&stream).query(&mut redis()).unwrap();
}

#[test]
fn a_channel_tells_its_subscribers_each_transition_after_its_causes() {
    let channel = unique("channel");
    let mut connection = redis();
    let mut subscription = connection.as_pubsub();
    subscription.subscribe(&channel).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let events = format!("mode = \"channel\"\nstream = \"{channel}\"");
    let config = workflow_config(dir.path(), &diamond(true), &events);

    let doc = json!({ "id": "d1", "doc": "hello", "langs": ["en", "fr"] });
    run_workflow(&config, &[doc]);

    let mut events = Vec::new();
    subscription
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let ended = |events: &[Event]| {
        events
            .last()
            .is_some_and(|last| last.node.is_none() && last.status != "running")
    };
    while !ended(&events) {
        assert!(Instant::now() < deadline, "the run never ended: {events:?}");
        if let Ok(message) = subscription.get_message() {
            events.push(Event::from_json(&message.get_payload::<String>().unwrap()));
        }
    }
    let run: Vec<_> = of_run(&events, "d1").iter().map(Event::step).collect();
    assert_eq!(run.len(), events.len(), "{events:?}");
    assert_eq!(run.first(), steps(&["run:running"]).first());
    assert_eq!(run.last(), steps(&["run:succeeded"]).last());
    let mut sorted = run.clone();
    sorted.sort();
    let mut expected = steps(&[
        "run:running",
        "run:succeeded",
        "first:running",
        "first:succeeded",
        "second:running",
        "second:succeeded",
        "fan:running",
        "fan:succeeded",
        "last:running",
        "last:succeeded",
    ]);
    expected.sort();
    assert_eq!(sorted, expected);
    let at: BTreeMap<(String, String), usize> = run
        .iter()
        .enumerate()
        .map(|(index, step)| (step.clone(), index))
        .collect();
    let index = |spec: &str| at[&steps(&[spec])[0]];
    for (cause, effect) in [
        ("first:running", "first:succeeded"),
        ("first:succeeded", "second:running"),
        ("first:succeeded", "fan:running"),
        ("second:running", "second:succeeded"),
        ("fan:running", "fan:succeeded"),
        ("second:succeeded", "last:running"),
        ("fan:succeeded", "last:running"),
        ("last:running", "last:succeeded"),
    ] {
        assert!(
            index(cause) < index(effect),
            "{cause} after {effect}: {run:?}"
        );
    }
}

#[test]
fn a_bad_events_table_is_a_config_error_naming_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = workflow_config(dir.path(), &chain(), "mode = \"list\"");
    let out = runner(&config, &["validate"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("journal.events.mode"), "{stderr}");
}

/// `count` events of run `r`.
fn many(count: usize) -> Vec<RunEvent> {
    (0..count)
        .map(|index| RunEvent {
            run_id: "r".to_owned(),
            workflow: "wf".to_owned(),
            node: Some(format!("n{index}")),
            status: "running",
            error: None,
            at_ms: 0,
        })
        .collect()
}

#[tokio::test]
async fn an_unreachable_redis_never_blocks_publishing_and_drops_what_does_not_fit() {
    let config = EventsConfig {
        url: "redis://127.0.0.1:1".into(),
        stream: unique("unreachable"),
        ..EventsConfig::default()
    };
    let events = Arc::new(RedisEvents::new(&config).unwrap());
    events.start();
    let total = QUEUE_CAPACITY + 1_000;

    // On a thread of its own, as the journal's writer calls it: a publish that blocked
    // would never say it is done.
    let publisher = events.clone();
    let (done, published) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        publisher.publish(many(total - 10));
        publisher.publish(many(10));
        done.send(()).unwrap();
    });
    published
        .recv_timeout(Duration::from_secs(30))
        .expect("publish blocked");

    // The queue holds QUEUE_CAPACITY; the task sending to Redis holds at most one batch.
    let dropped = usize::try_from(events.dropped()).unwrap();
    let most_kept = QUEUE_CAPACITY + BATCH;
    assert!(
        (total - most_kept..=total - QUEUE_CAPACITY).contains(&dropped),
        "{dropped} dropped of {total}"
    );
    assert!(!events.flush(Duration::from_millis(200)).await);
}
