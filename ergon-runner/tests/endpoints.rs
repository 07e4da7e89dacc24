//! What operators read: OTLP export received by a receiver started here, the Prometheus
//! endpoint scraped after a known run, and liveness on a stalled fetch and an idle poll.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use prost::Message as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use ergon_core::config::{ConfigEnv, ConfigIssue, ConnectorKind, MakeConnector};
use ergon_core::{Connector, Consumer, Context, TaskError, Transaction};
use ergon_runner::plan::Plan;
use ergon_runner::telemetry::board::WorkerBoard;
use ergon_runner::telemetry::health::Health;
use ergon_runner::telemetry::http;
use ergon_runner::{Registry, TaskManager, config};

/// Fails the transactions whose payload says `"bad": true` as business errors.
struct Check;

impl Consumer for Check {
    type Output = ();
    async fn process_transaction(&self, _: &Context, tx: &Transaction) -> Result<(), TaskError> {
        let value: serde_json::Value = tx.json()?;
        if value["bad"] == true {
            Err(TaskError::business("bad record"))
        } else {
            Ok(())
        }
    }
}

const LINES: &str = "{\"n\":1}\n{\"n\":2}\n{\"n\":3,\"bad\":true}\n{\"n\":4}\n{\"n\":5}\n";

fn plan(dir: &std::path::Path, toml: &str, registry: &Registry) -> Plan {
    std::fs::write(dir.join("input.jsonl"), LINES).unwrap();
    let file = dir.join("tasks.toml");
    std::fs::write(&file, toml).unwrap();
    Plan::build(&config::load(&file).unwrap(), registry).unwrap()
}

const CHECK_TOML: &str = r#"
[connectors.records]
type = "file"
path = "input.jsonl"
dead_letter = "rejected.jsonl"

[tasks.check]
type = "check"
input = "records"

[telemetry]
service_name = "ergon-endpoints-test"
metrics_interval = "1h"
"#;

/// An OTLP/HTTP receiver: records `(path, body)` of every POST and answers 200.
async fn receiver() -> (String, Arc<Mutex<Vec<(String, Vec<u8>)>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = received.clone();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let sink = sink.clone();
            tokio::spawn(async move {
                while let Some(request) = read_request(&mut stream).await {
                    sink.lock().unwrap().push(request);
                    let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                    if stream.write_all(ok).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, received)
}

/// Reads one request (head and `content-length` body) from `stream`; `None` at its end.
async fn read_request(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await.ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let path = head.split_whitespace().nth(1)?.to_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.ok().filter(|&n| n > 0)?;
        body.extend_from_slice(&chunk[..n]);
    }
    Some((path, body))
}

/// `GET path` on `address`: the status code and the body.
async fn get(address: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nhost: test\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = response.split_once("\r\n\r\n").unwrap().1.to_owned();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_exports_its_traces_and_metrics_by_otlp() {
    let (url, received) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::with_builtins().consumer("check", |_| Ok(Check));
    let plan = plan(dir.path(), CHECK_TOML, &registry);
    let env = move |name: &str| (name == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| url.clone());
    let code = ergon_runner::commands::run::run(&plan, &[], &env)
        .await
        .unwrap();
    assert_eq!(code, 0);

    let received = received.lock().unwrap().clone();
    let traces: Vec<ExportTraceServiceRequest> = received
        .iter()
        .filter(|(path, _)| path == "/v1/traces")
        .map(|(_, body)| ExportTraceServiceRequest::decode(body.as_slice()).unwrap())
        .collect();
    let spans: Vec<_> = traces
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .collect();
    let transactions = spans.iter().filter(|s| s.name == "transaction").count();
    assert_eq!(
        transactions,
        5,
        "{:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    let service = traces[0].resource_spans[0]
        .resource
        .as_ref()
        .unwrap()
        .attributes
        .iter()
        .find(|kv| kv.key == "service.name")
        .unwrap();
    assert_eq!(
        service.value.as_ref().unwrap().value,
        Some(any_value::Value::StringValue("ergon-endpoints-test".into()))
    );

    let metrics: Vec<ExportMetricsServiceRequest> = received
        .iter()
        .filter(|(path, _)| path == "/v1/metrics")
        .map(|(_, body)| ExportMetricsServiceRequest::decode(body.as_slice()).unwrap())
        .collect();
    let last = metrics
        .last()
        .expect("a final metrics export at the end of the run");
    let value_of = |name: &str| {
        let metric = last.resource_metrics[0].scope_metrics[0]
            .metrics
            .iter()
            .find(|m| m.name == name)
            .unwrap();
        let Some(metric::Data::Sum(sum)) = &metric.data else {
            panic!("{name} is not a sum")
        };
        match sum.data_points[0].value {
            Some(number_data_point::Value::AsInt(v)) => v,
            ref other => panic!("{other:?}"),
        }
    };
    assert_eq!(value_of("ergon.transactions.succeeded"), 4);
    assert_eq!(value_of("ergon.transactions.dead_lettered"), 1);
    assert_eq!(value_of("messaging.client.consumed.messages"), 5);
}

#[tokio::test]
async fn the_metrics_endpoint_counts_a_known_run() {
    ergon_core::telemetry::timing::set_enabled(true);
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::with_builtins().consumer("check", |_| Ok(Check));
    let plan = plan(dir.path(), CHECK_TOML, &registry);
    let board = Arc::new(WorkerBoard::default());
    let report = TaskManager::new(plan.tasks.clone())
        .quiet()
        .board(board.clone())
        .run()
        .await;
    assert_eq!(report.exit_code(), 0);

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let health = Arc::new(Health::new(
        board.clone(),
        Duration::from_secs(60),
        CancellationToken::new(),
    ));
    tokio::spawn(http::serve(listener, health, board, stop.clone()));
    let (status, text) = get(address, "/metrics").await;
    assert_eq!(status, 200);
    let labels =
        "ergon_task=\"check\",messaging_system=\"file\",messaging_destination_name=\"records\"";
    for line in [
        format!("ergon_transactions_processed_total{{{labels}}} 5"),
        format!("ergon_transactions_succeeded_total{{{labels}}} 4"),
        format!("ergon_transactions_dead_lettered_total{{{labels}}} 1"),
        format!("ergon_transactions_failed_total{{{labels},error_type=\"business\"}} 1"),
        format!("ergon_transactions_failed_total{{{labels},error_type=\"system\"}} 0"),
        format!("messaging_client_consumed_messages_total{{{labels}}} 5"),
        format!("ergon_step_attempts_total{{{labels},ergon_step=\"process\"}} 5"),
        format!("ergon_step_attempts_total{{{labels},ergon_step=\"success\"}} 4"),
        format!("ergon_step_attempts_total{{{labels},ergon_step=\"exception\"}} 1"),
        format!("ergon_step_attempts_total{{{labels},ergon_step=\"settle\"}} 5"),
        format!("messaging_process_duration_seconds_count{{{labels}}} 5"),
        format!("ergon_transactions_in_flight{{{labels}}} 0"),
        "# TYPE messaging_process_duration_seconds histogram".to_owned(),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    assert!(text.contains("ergon_step_duration_seconds_bucket{") && text.contains("le=\"+Inf\""));
    assert_eq!(get(address, "/nope").await.0, 404);
    stop.cancel();
}

/// `type = "stuck"`: a connector whose fetch never returns.
struct Stuck;

struct StuckConnector;

#[async_trait::async_trait]
impl Connector for StuckConnector {
    async fn fetch(&self, _max: usize) -> Result<Vec<ergon_core::Delivery>, TaskError> {
        std::future::pending().await
    }
    async fn settle(
        &self,
        _: &ergon_core::Delivery,
        _: &ergon_core::Settlement,
    ) -> Result<ergon_core::SettleOutcome, TaskError> {
        Ok(ergon_core::SettleOutcome::Performed)
    }
}

#[async_trait::async_trait]
impl MakeConnector for Stuck {
    async fn connect(&self, _worker: usize) -> Result<Arc<dyn Connector>, TaskError> {
        Ok(Arc::new(StuckConnector))
    }
}

impl ConnectorKind for Stuck {
    fn name(&self) -> &'static str {
        "stuck"
    }
    fn configure(
        &self,
        _: serde_json::Value,
        _: &ConfigEnv,
    ) -> Result<Arc<dyn MakeConnector>, ConfigIssue> {
        Ok(Arc::new(Stuck))
    }
}

/// Starts the tasks of `toml` with a health endpoint (`stall_after` as given); returns its
/// address and the health, sampled by its watcher.
async fn watched(
    toml: &str,
    stall_after: Duration,
) -> (std::net::SocketAddr, Arc<Health>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::with_builtins()
        .connector_kind(Arc::new(Stuck))
        .consumer("check", |_| Ok(Check));
    let plan = plan(dir.path(), toml, &registry);
    let board = Arc::new(WorkerBoard::default());
    let manager = TaskManager::new(plan.tasks.clone())
        .quiet()
        .board(board.clone());
    let health = Arc::new(Health::new(
        board.clone(),
        stall_after,
        manager.shutdown_token(),
    ));
    tokio::spawn(manager.run());
    let watcher = health.clone();
    tokio::spawn(async move { watcher.watch(CancellationToken::new()).await });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(http::serve(
        listener,
        health.clone(),
        board,
        CancellationToken::new(),
    ));
    (address, health, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn liveness_fails_when_a_fetch_stalls() {
    let toml = "[connectors.jam]\ntype = \"stuck\"\n[tasks.check]\ntype = \"check\"\ninput = \"jam\"\n[tasks.check.policy.loop]\nstreaming = true\n";
    // A long enough window that the first check cannot be late on a loaded host.
    let (address, _health, _dir) = watched(toml, Duration::from_millis(500)).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(get(address, "/health/live").await.0, 200, "not stalled yet");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let (status, body) = get(address, "/health/live").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("task check worker 0: a fetch has been running for"),
        "{body}"
    );
    assert_eq!(get(address, "/health/ready").await.0, 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_polling_worker_stays_live_and_ready() {
    let toml = "[connectors.queue]\ntype = \"memory\"\n[tasks.check]\ntype = \"check\"\ninput = \"queue\"\n[tasks.check.policy.loop]\nstreaming = true\n[tasks.check.policy.fetch.empty]\nbackoff = \"20ms\"\nbackoff_cap = \"50ms\"\n";
    let (address, health, _dir) = watched(toml, Duration::from_millis(200)).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (status, body) = get(address, "/health/live").await;
    assert_eq!(status, 200, "{body}");
    assert!(health.readiness().ok, "{:?}", health.readiness());
    assert_eq!(get(address, "/health/ready").await.0, 200);
}

/// A TCP proxy to the local RabbitMQ that can be cut: `cut()` closes the listener and
/// every connection through it, so the broker looks gone for good.
struct BrokerProxy {
    port: u16,
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl BrokerProxy {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tasks = Arc::new(Mutex::new(Vec::new()));
        let spawned = tasks.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let relay = tokio::spawn(async move {
                    let mut broker = TcpStream::connect("127.0.0.1:5672").await.expect(
                        "RabbitMQ is not reachable at 127.0.0.1:5672; this test needs the local broker",
                    );
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut broker).await;
                });
                spawned.lock().unwrap().push(relay);
            }
        });
        tasks.lock().unwrap().push(accept);
        Self { port, tasks }
    }

    fn cut(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn liveness_fails_when_a_connector_cannot_reconnect() {
    let proxy = BrokerProxy::start().await;
    let queue = format!("ergon-test-health-{}", std::process::id());
    let toml = format!(
        "[connectors.rabbit]\ntype = \"rabbitmq\"\nurl = \"amqp://guest:guest@127.0.0.1:{}/%2f\"\nqueue = \"{queue}\"\n\
         [connectors.rabbit.declare]\narguments = {{ \"x-expires\" = 60000 }}\n\
         [tasks.check]\ntype = \"check\"\ninput = \"rabbit\"\n[tasks.check.policy.loop]\nstreaming = true\n",
        proxy.port
    );
    let (address, health, _dir) = watched(&toml, Duration::from_millis(200)).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (status, body) = get(address, "/health/ready").await;
    assert_eq!(status, 200, "connected and polling: {body}");

    proxy.cut();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let (status, body) = get(address, "/health/live").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("connector `rabbit`"), "{body}");
    assert!(!health.liveness().ok);
}
