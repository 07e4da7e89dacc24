//! Secrets never show: passwords in connector URLs, bearer tokens and API keys in service
//! configs do not appear in anything the real binary writes — `validate`,
//! `validate --connect`, a run that fails against the endpoint and dead-letters, `queue`
//! commands — with logs at `trace`, nor in the dead letters it leaves, nor in the traces
//! and metrics it exports.
//!
//! Needs the local RabbitMQ, PostgreSQL and Redis (a password the servers do not expect
//! makes their connections fail, which is what puts the URLs in error paths).

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// Every secret of the config: none may appear in any output.
const SECRETS: [&str; 7] = [
    "amqp-pw-7f3a",
    "pg-pw-91c2",
    "redis-pw-5d0e",
    "bearer-tok-2b8c",
    "basic-pw-66e1",
    "llm-key-c4d9",
    "pgsvc-pw-0a7f",
];

/// Every OTLP export a [`server`] received: its head and body, as bytes.
type Received = Arc<Mutex<Vec<u8>>>;

/// An HTTP server that keeps and answers OTLP exports (`/v1/traces`, `/v1/metrics`) with
/// 200, and answers everything else with `status` and a body that says nothing.
async fn server(status: u16) -> (String, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let received = Received::default();
    let kept = received.clone();
    tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            tokio::spawn(serve(socket, status, kept.clone()));
        }
    });
    (url, received)
}

/// Answers the requests of one connection (kept alive) until the client closes it.
async fn serve(mut socket: tokio::net::TcpStream, status: u16, received: Received) {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => data.extend_from_slice(&buf[..n]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        let total = end + 4 + length;
        while data.len() < total {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => data.extend_from_slice(&buf[..n]),
            }
        }
        // The endpoint's own requests carry the credentials, by design: only exports are kept.
        let otlp = head.starts_with("post /v1/traces") || head.starts_with("post /v1/metrics");
        if otlp {
            received.lock().unwrap().extend_from_slice(&data[..total]);
        }
        let reply = if otlp {
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".to_owned()
        } else {
            format!("HTTP/1.1 {status} Nope\r\ncontent-length: 7\r\n\r\nrefused")
        };
        if socket.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
        data.drain(..total);
    }
}

fn config(http: &str) -> String {
    let [amqp, pg, redis, bearer, basic, llm, pg_service] = SECRETS;
    format!(
        r#"
[connectors.orders]
type = "file"
path = "orders.jsonl"
dead_letter = "dead.jsonl"

[connectors.partner]
type = "http"
url = "{http}/orders"
auth = {{ bearer = "{bearer}" }}

[connectors.rabbit]
type = "rabbitmq"
url = "amqp://guest:{amqp}@127.0.0.1:5672/%2f"
queue = "ergon-secrets"

[connectors.table]
type = "postgres"
url = "postgres://nobody:{pg}@127.0.0.1:5432/test"

[connectors.stream]
type = "redis_streams"
url = "redis://:{redis}@127.0.0.1:6379"
stream = "ergon-secrets"

[services.api]
type = "http"
base_url = "{http}"
auth = {{ basic = {{ user = "app", password = "{basic}" }} }}

[services.model]
type = "llm"
base_url = "{http}/v1"
model = "m"
api_key = "{llm}"

[services.db]
type = "postgres"
url = "postgres://nobody:{pg_service}@127.0.0.1:5432/test"

[tasks.send]
type = "forward"
input = "orders"
output = "partner"
services = ["api", "model", "db"]

[telemetry]
endpoint = "{http}"
sampling_ratio = 1.0
metrics_interval = "100ms"
"#
    )
}

/// Runs the binary with logs at `trace`; returns its exit code and everything it wrote.
fn runner(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ergon-runner"))
        .arg("--config")
        .arg(dir.join("tasks.toml"))
        .args(args)
        .env("RUST_LOG", "trace")
        .current_dir(dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "{what} shows the secret {secret}:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_any_output() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (http, received) = server(401).await;
    std::fs::write(root.join("tasks.toml"), config(&http)).unwrap();
    std::fs::write(
        root.join("orders.jsonl"),
        "{\"id\":\"o-1\"}\n{\"id\":\"o-2\"}\n",
    )
    .unwrap();

    let (code, out) = runner(root, &["validate"]);
    assert_eq!(code, Some(0), "{out}");
    assert_no_secret("validate", &out);

    // Every server refuses these credentials: each component's error is printed.
    let (code, out) = runner(root, &["validate", "--connect"]);
    assert_eq!(code, Some(1), "{out}");
    for line in [
        "connector rabbit (rabbitmq): error",
        "connector table (postgres): error",
        "connector stream (redis_streams): error",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    assert_no_secret("validate --connect", &out);

    // The endpoint refuses (401, a business error): both orders are dead-lettered (the
    // run itself succeeds: what failed is set aside).
    let (code, out) = runner(root, &["run"]);
    assert_no_secret("run", &out);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("dead_lettered=2"), "{out}");
    let dead = std::fs::read_to_string(root.join("dead.jsonl")).unwrap();
    assert_eq!(dead.lines().count(), 2, "{dead}");
    assert!(dead.contains("HTTP 401"), "{dead}");
    assert_no_secret("the dead letters", &dead);
    // What the run exported (traces and metrics over OTLP) and sent to the endpoint,
    // uncompressed protobuf: its strings are plain bytes.
    let sent = String::from_utf8_lossy(&received.lock().unwrap()).into_owned();
    for export in ["POST /v1/traces", "POST /v1/metrics"] {
        assert!(sent.contains(export), "no {export} was received");
    }
    // The spans of the failed transactions, with their error and settlement.
    for recorded in ["error.type", "dead_letter", "orders.jsonl:1"] {
        assert!(sent.contains(recorded), "the exports lack {recorded:?}");
    }
    assert_no_secret("the OTLP exports", &sent);

    for connector in ["table", "stream", "rabbit"] {
        let (_, out) = runner(root, &["queue", "stats", connector]);
        assert_no_secret("queue stats", &out);
        assert!(out.contains(connector), "{out}");
    }
}
