//! Services as components of a run: type-checked when the plan is built, built before the
//! workers start and closed after them in reverse order, their health in readiness and
//! their breaker state in the metrics; `validate --connect` through the real binary.
//!
//! `validate --connect` against RabbitMQ needs the local broker
//! (`amqp://guest:guest@127.0.0.1:5672`, or `ERGON_TEST_AMQP_URL`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use ergon_core::config::{ConfigEnv, ConfigIssue, ServiceKind};
use ergon_core::service::{BuildContext, BuildService, ConfiguredService};
use ergon_core::telemetry::names;
use ergon_core::{Consumer, Context, Service, TaskError, Transaction};
use ergon_runner::plan::Plan;
use ergon_runner::telemetry::board::WorkerBoard;
use ergon_runner::telemetry::health::Health;
use ergon_runner::telemetry::metrics::{self, Value};
use ergon_runner::{ConfigError, Registry, TaskManager};
use ergon_services::http::Http;

/// An HTTP server answering every request with `status`, counting them.
async fn server(status: u16) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let counting = count.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let counting = counting.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                counting.fetch_add(1, Ordering::SeqCst);
                let text = format!(
                    "HTTP/1.1 {status} Scripted\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                );
                let _ = socket.write_all(text.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (url, count)
}

/// A service kind recording when its services are built and closed.
#[derive(Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

struct Recorded {
    name: String,
    log: Arc<Mutex<Vec<String>>>,
}

#[async_trait::async_trait]
impl Service for Recorded {
    async fn close(&self) -> Result<(), TaskError> {
        self.log
            .lock()
            .unwrap()
            .push(format!("close {}", self.name));
        Ok(())
    }
}

struct BuildRecorded(Arc<Mutex<Vec<String>>>);

impl BuildService for BuildRecorded {
    type Service = Recorded;

    async fn build(&self, cx: BuildContext) -> Result<Arc<Recorded>, TaskError> {
        assert!(!cx.shutdown().is_cancelled());
        self.0.lock().unwrap().push(format!("build {}", cx.name()));
        Ok(Arc::new(Recorded {
            name: cx.name().to_owned(),
            log: self.0.clone(),
        }))
    }
}

impl ServiceKind for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }

    fn configure(
        &self,
        _table: serde_json::Value,
        _env: &ConfigEnv,
    ) -> Result<ConfiguredService, ConfigIssue> {
        Ok(ConfiguredService::new(BuildRecorded(self.0.clone())))
    }
}

/// Calls the `http` service `api` for every transaction.
struct Enrich {
    api: Arc<Http>,
}

impl Consumer for Enrich {
    type Output = ();

    async fn process_transaction(&self, cx: &Context, _: &Transaction) -> Result<(), TaskError> {
        assert!(cx.service::<Recorded>("trail_a").is_ok());
        self.api.get("/enrich").await.map(drop)
    }
}

fn registry(recorder: Recorder) -> Registry {
    Registry::with_builtins()
        .service_kind(Arc::new(recorder))
        .consumer("enrich", |cx: &Context| {
            Ok(Enrich {
                api: cx.service::<Http>("api")?,
            })
        })
}

fn write(dir: &Path, toml: &str) -> PathBuf {
    let file = dir.join("tasks.toml");
    std::fs::write(&file, toml).unwrap();
    file
}

fn plan(file: &Path, registry: &Registry) -> Result<Plan, ConfigError> {
    Plan::build(&ergon_runner::config::load(file)?, registry)
}

fn enrich_toml(url: &str, api_type: &str) -> String {
    format!(
        r#"
[connectors.orders]
type = "file"
path = "orders.jsonl"

[services.api]
type = "{api_type}"
base_url = "{url}"
stack = {{ circuit_breaker = {{ failures = 2, open_for = "1m" }} }}

[services.trail_a]
type = "recorder"

[services.trail_b]
type = "recorder"

[tasks.enrich]
type = "enrich"
input = "orders"
services = ["trail_b", "api", "trail_a"]

[tasks.enrich.policy]
on_failure = "drop"
loop = {{ streaming = false, concurrency = 1 }}
process = {{ retry = {{ max_attempts = 1 }} }}
"#
    )
}

#[test]
fn a_service_of_the_wrong_type_is_a_config_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let toml = enrich_toml("http://127.0.0.1:9", "http").replace(
        "type = \"http\"\nbase_url = \"http://127.0.0.1:9\"\nstack = { circuit_breaker = { failures = 2, open_for = \"1m\" } }",
        "type = \"memory_kv\"",
    );
    assert!(toml.contains("type = \"memory_kv\""));
    let file = write(dir.path(), &toml);
    let err = match plan(&file, &registry(Recorder::default())) {
        Ok(_) => panic!("a memory_kv bound where an http service is used was accepted"),
        Err(err) => err.to_string(),
    };
    assert!(
        err.contains("tasks.enrich.services.1: service `api` is of type `memory_kv`"),
        "{err}"
    );
    assert!(err.contains("ergon_services::http::Http"), "{err}");

    // The right type passes, without building anything.
    let file = write(dir.path(), &enrich_toml("http://127.0.0.1:9", "http"));
    plan(&file, &registry(Recorder::default())).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_are_built_before_and_closed_after_the_workers_and_observed() {
    let (url, requests) = server(500).await;
    let dir = tempfile::tempdir().unwrap();
    let lines: String = (0..3).map(|i| format!("{{\"id\":\"o-{i}\"}}\n")).collect();
    std::fs::write(dir.path().join("orders.jsonl"), lines).unwrap();
    let file = write(dir.path(), &enrich_toml(&url, "http"));
    let recorder = Recorder::default();
    let log = recorder.0.clone();
    let plan = plan(&file, &registry(recorder)).unwrap();

    let board = Arc::new(WorkerBoard::default());
    let report = TaskManager::new(plan.tasks.clone())
        .board(board.clone())
        .quiet()
        .run()
        .await;
    assert_eq!(report.error, None);
    assert_eq!(report.tasks[0].stats.processed, 3);
    assert_eq!(report.tasks[0].stats.failed_system, 3);
    // Two 500s open the breaker; the third call is rejected without a request.
    assert_eq!(requests.load(Ordering::SeqCst), 2);
    assert_eq!(
        *log.lock().unwrap(),
        [
            "build trail_a",
            "build trail_b",
            "close trail_b",
            "close trail_a"
        ],
        "built in name order, closed in reverse"
    );

    let families = metrics::collect(&board);
    let state = families
        .iter()
        .find(|f| f.name == names::CIRCUIT_BREAKER_STATE)
        .expect("the breaker state is exported");
    assert_eq!(state.points.len(), 1);
    assert_eq!(state.points[0].labels, [(names::SERVICE, "api".to_owned())]);
    assert!(matches!(state.points[0].value, Value::Count(1)), "open");
    let text = metrics::prometheus::render(&families);
    assert!(
        text.contains("ergon_service_circuit_breaker_state{ergon_service=\"api\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("ergon_service_circuit_breaker_rejected_total{ergon_service=\"api\"} 1\n"),
        "{text}"
    );

    let health = Health::new(board, Duration::from_secs(60), CancellationToken::new());
    health.sample().await;
    let ready = health.readiness();
    assert!(!ready.ok);
    assert!(
        ready
            .problems
            .iter()
            .any(|p| p.starts_with("service `api`: service `api`: circuit breaker open")),
        "{:?}",
        ready.problems
    );
    assert!(
        health.liveness().ok,
        "a failing service is not a liveness problem"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_cannot_be_built_stops_the_run_before_any_worker() {
    struct Failing;
    impl BuildService for Failing {
        type Service = Recorded;
        async fn build(&self, _: BuildContext) -> Result<Arc<Recorded>, TaskError> {
            Err(TaskError::system("no credentials"))
        }
    }
    struct FailingKind;
    impl ServiceKind for FailingKind {
        fn name(&self) -> &'static str {
            "failing"
        }
        fn configure(
            &self,
            _: serde_json::Value,
            _: &ConfigEnv,
        ) -> Result<ConfiguredService, ConfigIssue> {
            Ok(ConfiguredService::new(Failing))
        }
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("orders.jsonl"), "{\"id\":\"o-1\"}\n").unwrap();
    let toml = enrich_toml("http://127.0.0.1:9", "http").replace(
        "[services.trail_b]\ntype = \"recorder\"",
        "[services.trail_b]\ntype = \"failing\"",
    );
    let file = write(dir.path(), &toml);
    let recorder = Recorder::default();
    let log = recorder.0.clone();
    let registry = registry(recorder).service_kind(Arc::new(FailingKind));
    let plan = plan(&file, &registry).unwrap();
    let report = TaskManager::new(plan.tasks.clone()).quiet().run().await;
    assert_eq!(report.exit_code(), 1);
    assert!(report.tasks.is_empty());
    let error = report.error.unwrap();
    assert!(
        error.contains("cannot build service `trail_b` (failing): no credentials"),
        "{error}"
    );
    assert_eq!(
        *log.lock().unwrap(),
        ["build trail_a", "close trail_a"],
        "what was built is closed"
    );
}

fn amqp_url() -> String {
    std::env::var("ERGON_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn validate_connect(dir: &Path, toml: &str) -> (Option<i32>, String) {
    let file = write(dir, toml);
    let out = Command::new(env!("CARGO_BIN_EXE_ergon-runner"))
        .arg("--config")
        .arg(&file)
        .args(["validate", "--connect"])
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn components(amqp: &str, http: &str) -> String {
    format!(
        r#"
[connectors.rabbit]
type = "rabbitmq"
url = "{amqp}"
queue = "ergon-validate-connect"

[connectors.lines]
type = "file"
path = "in.jsonl"

[services.api]
type = "http"
base_url = "{http}"

[services.seen]
type = "memory_kv"

[tasks.bridge]
type = "forward"
input = "lines"
output = "rabbit"
services = ["api", "seen"]
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_connect_reports_every_component_and_exits_0_1_or_2() {
    let dir = tempfile::tempdir().unwrap();
    let (url, requests) = server(200).await;

    let (code, out) = validate_connect(dir.path(), &components(&amqp_url(), &url));
    assert_eq!(code, Some(0), "{out}");
    for line in [
        "connector lines (file): ok\n",
        "connector rabbit (rabbitmq): ok\n",
        "service api (http): ok\n",
        "service seen (memory_kv): ok\n",
        "ok, 4 component(s) reachable\n",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    assert_eq!(requests.load(Ordering::SeqCst), 1, "one health check");

    let down = format!("http://127.0.0.1:{}", closed_port());
    let broker_down = format!("amqp://guest:guest@127.0.0.1:{}/%2f", closed_port());
    let (code, out) = validate_connect(dir.path(), &components(&broker_down, &down));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("connector lines (file): ok\n"), "{out}");
    assert!(
        out.contains("connector rabbit (rabbitmq): error: "),
        "{out}"
    );
    assert!(out.contains("service api (http): error: GET "), "{out}");
    assert!(out.contains("2 of 4 component(s) unreachable\n"), "{out}");
    assert!(
        !out.contains("guest:guest"),
        "the password is redacted:\n{out}"
    );

    let bad = components(&amqp_url(), &url).replace(
        "base_url = ",
        "stack = { retry = { max_attempts = 0 } }\nbase_url = ",
    );
    let (code, out) = validate_connect(dir.path(), &bad);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("services.api.stack.retry.max_attempts: must be at least 1"),
        "{out}"
    );
}
