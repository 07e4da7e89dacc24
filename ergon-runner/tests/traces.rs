//! The span tree ergon emits, checked with the OpenTelemetry SDK's in-memory exporter
//! behind ergon's own tracing layer, through the runner (TOML → plan → TaskManager) with
//! real file and memory connectors.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use opentelemetry::trace::{SpanId, Status};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};

use ergon_core::{Consumer, Context, Hybrid, TaskError, Transaction};
use ergon_runner::plan::Plan;
use ergon_runner::telemetry::{self, LogFormat, traces};
use ergon_runner::{Registry, TaskManager, config};

/// Fails its first two attempts with a system error, then succeeds.
struct Flaky(AtomicU32);

impl Consumer for Flaky {
    type Output = ();
    async fn process_transaction(&self, _: &Context, _: &Transaction) -> Result<(), TaskError> {
        match self.0.fetch_add(1, Relaxed) {
            0 | 1 => Err(TaskError::system("database unavailable")),
            _ => Ok(()),
        }
    }
}

/// Fans each transaction out into two.
struct Split;

impl Hybrid for Split {
    async fn process_transaction(
        &self,
        _: &Context,
        tx: &Transaction,
    ) -> Result<Vec<Transaction>, TaskError> {
        Ok((0..2)
            .map(|i| Transaction::new(format!("{}-{i}", tx.id()), tx.payload().clone()))
            .collect())
    }
}

/// Acks everything.
struct Sink;

impl Consumer for Sink {
    type Output = ();
    async fn process_transaction(&self, _: &Context, _: &Transaction) -> Result<(), TaskError> {
        Ok(())
    }
}

/// `split` from `input.jsonl` (its table ending with `orders_extra`) into the `items`
/// connector `items_table` defines, and `sink` streaming the four items from there.
fn split_then_sink(orders_extra: &str, items_table: &str) -> String {
    format!(
        "[connectors.orders]\ntype = \"file\"\npath = \"input.jsonl\"\n{orders_extra}\n{items_table}
[tasks.a_split]
type = \"split\"
input = \"orders\"
output = \"items\"

[tasks.b_sink]
type = \"sink\"
input = \"items\"

[tasks.b_sink.policy.loop]
streaming = true
limit = 4

[tasks.b_sink.policy.fetch.empty]
backoff = \"5ms\"
"
    )
}

/// Runs the tasks of `toml` (with `files` written beside it, `(name, content)`) under a
/// subscriber with ergon's tracing layer, and returns the finished spans.
async fn spans_of(toml: &str, files: &[(&str, &str)], registry: Registry) -> Vec<SpanData> {
    spans_at(1.0, toml, files, registry).await
}

/// The sampling ratio is process-wide: the tests of this file take turns.
static SAMPLING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn spans_at(
    ratio: f64,
    toml: &str,
    files: &[(&str, &str)],
    registry: Registry,
) -> Vec<SpanData> {
    let _turn = SAMPLING.lock().await;
    ergon_telemetry::sampling::set_ratio(ratio);
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    let file = dir.path().join("tasks.toml");
    std::fs::write(&file, toml).unwrap();
    let plan = Plan::build(&config::load(&file).unwrap(), &registry).unwrap();

    let exporter = InMemorySpanExporter::default();
    let traces = traces::Traces::new(Some(exporter.clone()), Resource::builder_empty().build());
    let filter = tracing_subscriber::EnvFilter::new("warn");
    let subscriber = telemetry::subscriber(LogFormat::Text, false, filter, Some(&traces));
    let _guard = tracing::subscriber::set_default(subscriber);
    let report = TaskManager::new(plan.tasks.clone()).quiet().run().await;
    assert_eq!(report.exit_code(), 0, "{report:?}");
    traces.force_flush().unwrap();
    exporter.get_finished_spans().unwrap()
}

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv: &KeyValue| &kv.value)
}

fn str_attr(span: &SpanData, key: &str) -> Option<String> {
    attr(span, key).map(|v| v.as_str().into_owned())
}

fn children<'a>(spans: &'a [SpanData], parent: &SpanData) -> Vec<&'a SpanData> {
    let mut found: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.parent_span_id == parent.span_context.span_id())
        .collect();
    found.sort_by_key(|s| s.start_time);
    found
}

/// The exported parent of `span`.
fn parent_of<'a>(spans: &'a [SpanData], span: &SpanData) -> &'a SpanData {
    spans
        .iter()
        .find(|s| s.span_context.span_id() == span.parent_span_id)
        .expect("the parent span was exported")
}

fn only<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    let found: Vec<&SpanData> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "spans named {name}: {found:#?}");
    found[0]
}

#[tokio::test(flavor = "current_thread")]
async fn a_transaction_failing_twice_then_succeeding_has_the_exact_span_tree() {
    let toml = r#"
[connectors.orders]
type = "file"
path = "input.jsonl"

[tasks.flaky]
type = "flaky"
input = "orders"

[tasks.flaky.policy.process.retry]
max_attempts = 3
backoff = "1ms"
timeout = "5s"
"#;
    let registry = Registry::with_builtins().consumer("flaky", |_| Ok(Flaky(AtomicU32::new(0))));
    let spans = spans_of(toml, &[("input.jsonl", "{\"n\":1}\n")], registry).await;

    let task_run = only(&spans, "task_run");
    assert_eq!(
        task_run.parent_span_id,
        SpanId::INVALID,
        "task_run is the root"
    );
    assert_eq!(str_attr(task_run, "ergon.task").as_deref(), Some("flaky"));
    assert_eq!(
        str_attr(task_run, "ergon.role").as_deref(),
        Some("consumer")
    );

    let consume_loop = only(&spans, "consume_loop");
    assert_eq!(consume_loop.parent_span_id, task_run.span_context.span_id());
    assert_eq!(
        str_attr(consume_loop, "messaging.system").as_deref(),
        Some("file")
    );
    assert_eq!(
        str_attr(consume_loop, "messaging.destination.name").as_deref(),
        Some("orders")
    );
    assert!(attr(consume_loop, "ergon.policy.concurrency").is_some());

    let batch = only(&spans, "batch");
    assert_eq!(batch.parent_span_id, consume_loop.span_context.span_id());
    assert_eq!(
        attr(batch, "messaging.batch.message_count"),
        Some(&Value::I64(1))
    );

    let tx = only(&spans, "transaction");
    assert_eq!(tx.parent_span_id, batch.span_context.span_id());
    assert_eq!(tx.span_context.trace_id(), task_run.span_context.trace_id());
    assert!(str_attr(tx, "messaging.message.id").is_some_and(|id| !id.is_empty()));
    assert_eq!(
        str_attr(tx, "messaging.operation.type").as_deref(),
        Some("process")
    );
    assert_eq!(str_attr(tx, "messaging.system").as_deref(), Some("file"));
    assert_eq!(str_attr(tx, "ergon.settlement").as_deref(), Some("ack"));
    assert_eq!(tx.status, Status::Unset);

    // transaction → process (3 attempts), success (1); nothing else (the settlement is an
    // attribute of the transaction span).
    let steps: Vec<&str> = children(&spans, tx)
        .iter()
        .map(|s| s.name.as_ref())
        .collect();
    assert_eq!(steps, ["process", "success"]);
    let process = children(&spans, tx)[0];
    assert_eq!(str_attr(process, "ergon.step").as_deref(), Some("process"));
    assert_eq!(
        attr(process, "ergon.policy.max_attempts"),
        Some(&Value::I64(3))
    );
    assert_eq!(
        attr(process, "ergon.policy.timeout_ms"),
        Some(&Value::I64(5000))
    );
    assert_eq!(
        process.status,
        Status::Unset,
        "the step succeeded in the end"
    );
    let attempts = children(&spans, process);
    let numbers: Vec<Option<&Value>> = attempts.iter().map(|a| attr(a, "ergon.attempt")).collect();
    assert_eq!(
        numbers,
        [
            Some(&Value::I64(1)),
            Some(&Value::I64(2)),
            Some(&Value::I64(3))
        ]
    );
    for failed in &attempts[..2] {
        assert_eq!(failed.name, "attempt");
        assert_eq!(str_attr(failed, "error.type").as_deref(), Some("system"));
        assert_eq!(
            str_attr(failed, "ergon.error.category").as_deref(),
            Some("system")
        );
        assert!(
            matches!(failed.status, Status::Error { .. }),
            "{:?}",
            failed.status
        );
    }
    assert_eq!(attr(attempts[2], "error.type"), None);
    assert_eq!(attempts[2].status, Status::Unset);
    for step in &children(&spans, tx)[1..] {
        let below: Vec<&str> = children(&spans, step)
            .iter()
            .map(|s| s.name.as_ref())
            .collect();
        assert_eq!(below, ["attempt"], "{}", step.name);
    }
    // The fetches hang off the loop, each with its attempt.
    let fetches: Vec<&SpanData> = children(&spans, consume_loop)
        .into_iter()
        .filter(|s| s.name == "fetch")
        .collect();
    assert!(!fetches.is_empty());
    assert_eq!(
        str_attr(fetches[0], "messaging.operation.type").as_deref(),
        Some("receive")
    );
    assert_eq!(children(&spans, fetches[0]).len(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn a_hybrids_outbound_transactions_continue_its_trace_in_the_next_task() {
    let toml = split_then_sink("", "[connectors.items]\ntype = \"memory\"\n");
    let registry = Registry::with_builtins()
        .hybrid("split", |_| Ok(Split))
        .consumer("sink", |_| Ok(Sink));
    let spans = spans_of(
        &toml,
        &[("input.jsonl", "{\"n\":1}\n{\"n\":2}\n")],
        registry,
    )
    .await;

    let transactions: Vec<&SpanData> = spans.iter().filter(|s| s.name == "transaction").collect();
    let task_of = |s: &SpanData| str_attr(s, "ergon.task").unwrap();
    let upstream: Vec<&&SpanData> = transactions
        .iter()
        .filter(|s| task_of(s) == "a_split")
        .collect();
    let downstream: Vec<&&SpanData> = transactions
        .iter()
        .filter(|s| task_of(s) == "b_sink")
        .collect();
    assert_eq!((upstream.len(), downstream.len()), (2, 4));
    for child in downstream {
        // Its parent is an attempt of the hybrid's dispatch step, in the hybrid's trace...
        let parent = parent_of(&spans, child);
        assert_eq!(parent.name, "attempt");
        let dispatch = parent_of(&spans, parent);
        assert_eq!(dispatch.name, "dispatch");
        let origin = upstream
            .iter()
            .find(|u| u.span_context.span_id() == dispatch.parent_span_id)
            .expect("the dispatch belongs to a hybrid transaction");
        assert_eq!(
            child.span_context.trace_id(),
            origin.span_context.trace_id()
        );
        assert!(child.parent_span_is_remote);
        // ...and it keeps a link to its own batch.
        assert_eq!(child.links.len(), 1);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn unsampled_batches_make_no_spans_below_the_loop() {
    let toml = r#"
[connectors.orders]
type = "file"
path = "input.jsonl"

[tasks.sink]
type = "sink"
input = "orders"
"#;
    let registry = Registry::with_builtins().consumer("sink", |_| Ok(Sink));
    let spans = spans_at(
        0.0,
        toml,
        &[("input.jsonl", "{\"n\":1}\n{\"n\":2}\n")],
        registry,
    )
    .await;
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_ref()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names.contains(&"task_run") && names.contains(&"consume_loop"),
        "{names:?}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn trace_context_crosses_files_into_a_hybrid_and_out_to_the_next_task() {
    let items =
        "[connectors.items]\ntype = \"file\"\npath = \"items.jsonl\"\ntrace_field = \"tp\"\n";
    let toml = split_then_sink("trace_field = \"tp\"\n", items);
    let upstream = "4bf92f3577b34da6a3ce929d0e0e4736";
    let lines = format!(
        "{{\"tp\":\"00-{upstream}-00f067aa0ba902b7-01\",\"n\":1}}\n{{\"tp\":\"00-{upstream}-00f067aa0ba902b8-01\",\"n\":2}}\n"
    );
    let registry = Registry::with_builtins()
        .hybrid("split", |_| Ok(Split))
        .consumer("sink", |_| Ok(Sink));
    let files = [("input.jsonl", lines.as_str()), ("items.jsonl", "")];
    let spans = spans_of(&toml, &files, registry).await;

    let task_of = |s: &SpanData| str_attr(s, "ergon.task").unwrap();
    let transactions: Vec<&SpanData> = spans.iter().filter(|s| s.name == "transaction").collect();
    let (split, sink): (Vec<&SpanData>, Vec<&SpanData>) =
        transactions.iter().partition(|s| task_of(s) == "a_split");
    assert_eq!((split.len(), sink.len()), (2, 4));
    for tx in &split {
        // The input line's trace context: the hybrid continues the upstream trace.
        assert_eq!(tx.span_context.trace_id().to_string(), upstream);
        assert!(tx.parent_span_is_remote);
    }
    for tx in &sink {
        // Through items.jsonl: each line carried its dispatch attempt's context.
        assert_eq!(tx.span_context.trace_id().to_string(), upstream);
        let parent = parent_of(&spans, tx);
        assert_eq!(parent.name, "attempt");
        assert_eq!(
            str_attr(tx, "messaging.destination.name").as_deref(),
            Some("items")
        );
    }
}

/// Log lines captured in memory.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Logs inside its process step, and inside a span of its own there.
struct Chatty;

impl Consumer for Chatty {
    type Output = ();
    async fn process_transaction(&self, _: &Context, _: &Transaction) -> Result<(), TaskError> {
        tracing::info!("Inside process");
        let lookup = tracing::info_span!("lookup");
        let _entered = lookup.enter();
        tracing::info!(order = 7, "Inside a user span");
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn log_lines_and_user_spans_inside_a_step_carry_its_trace() {
    use tracing_subscriber::layer::SubscriberExt as _;

    let _turn = SAMPLING.lock().await;
    ergon_telemetry::sampling::set_ratio(1.0);
    let toml = "[connectors.orders]\ntype = \"file\"\npath = \"input.jsonl\"\n\n[tasks.chatty]\ntype = \"chatty\"\ninput = \"orders\"\n";
    for format in [LogFormat::Json, LogFormat::Text] {
        // A fresh input each time: the file connector consumes what it reads.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("input.jsonl"), "{\"n\":1}\n").unwrap();
        let file = dir.path().join("tasks.toml");
        std::fs::write(&file, toml).unwrap();
        let registry = Registry::with_builtins().consumer("chatty", |_| Ok(Chatty));
        let plan = Plan::build(&config::load(&file).unwrap(), &registry).unwrap();
        let exporter = InMemorySpanExporter::default();
        let traces = traces::Traces::new(Some(exporter.clone()), Resource::builder_empty().build());
        let captured = Captured::default();
        let sink = captured.clone();
        let line_format = telemetry::logs::LineFormat::new(format, false);
        let catcher = line_format.dispatch_catcher();
        let lines = tracing_subscriber::fmt::layer()
            .with_writer(move || sink.clone())
            .event_format(line_format);
        let gate = traces::Gate {
            events: tracing_subscriber::filter::LevelFilter::INFO,
        };
        let subscriber = tracing_subscriber::registry()
            .with(catcher)
            .with(gate)
            .with(traces.layer())
            .with(lines);
        let guard = tracing::subscriber::set_default(subscriber);
        tracing::info!(outside = true, "Before any span");
        let report = TaskManager::new(plan.tasks.clone()).quiet().run().await;
        assert_eq!(report.exit_code(), 0, "{report:?}");
        drop(guard);
        traces.force_flush().unwrap();
        let spans = exporter.get_finished_spans().unwrap();

        // The user's span is a child of the process step's attempt, in its trace.
        let lookup = only(&spans, "lookup");
        let attempt = parent_of(&spans, lookup);
        assert_eq!(attempt.name, "attempt");
        let step = parent_of(&spans, attempt);
        assert_eq!(step.name, "process");
        assert_eq!(
            lookup.span_context.trace_id(),
            attempt.span_context.trace_id()
        );
        assert!(!lookup.parent_span_is_remote);

        let ids = |s: &SpanData| {
            (
                s.span_context.trace_id().to_string(),
                s.span_context.span_id().to_string(),
            )
        };
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let line = |needle: &str| {
            let found: Vec<&str> = text.lines().filter(|l| l.contains(needle)).collect();
            assert_eq!(found.len(), 1, "{needle}: {text}");
            found[0].to_owned()
        };
        let outside = line("Before any span");
        assert!(!outside.contains("trace_id"), "{outside}");
        for (needle, span) in [("Inside process", attempt), ("Inside a user span", lookup)] {
            let (trace_id, span_id) = ids(span);
            let inside = line(needle);
            match format {
                LogFormat::Json => {
                    let inside: serde_json::Value = serde_json::from_str(&inside).unwrap();
                    assert_eq!(inside["message"], needle);
                    assert_eq!(inside["level"], "INFO");
                    assert_eq!(inside["trace_id"], trace_id.as_str());
                    assert_eq!(inside["span_id"], span_id.as_str());
                }
                LogFormat::Text => assert!(
                    inside.ends_with(&format!("trace_id={trace_id} span_id={span_id}")),
                    "{inside}"
                ),
            }
        }
        if format == LogFormat::Json {
            let inside: serde_json::Value =
                serde_json::from_str(&line("Inside a user span")).unwrap();
            assert_eq!(inside["fields"]["order"], 7);
            assert_eq!(inside["span"], "lookup");
            let outside: serde_json::Value = serde_json::from_str(&outside).unwrap();
            assert_eq!(outside["fields"]["outside"], true);
        }
    }
}
