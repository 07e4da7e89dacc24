//! Secrets never show: passwords in connector URLs, bearer tokens and API keys in service
//! configs do not appear in anything the real binary writes — `validate`,
//! `validate --connect`, a run that fails against the endpoint and dead-letters, `queue`
//! commands — with logs at `trace`, nor in the dead letters it leaves.
//!
//! Needs the local RabbitMQ, PostgreSQL and Redis (a password the servers do not expect
//! makes their connections fail, which is what puts the URLs in error paths).

use std::path::Path;
use std::process::Command;

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

/// An HTTP server answering every request with `status` and a body that says nothing.
async fn server(status: u16) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = format!(
                    "HTTP/1.1 {status} Nope\r\ncontent-length: 7\r\nconnection: close\r\n\r\nrefused"
                );
                let _ = socket.write_all(text.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    url
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
    let http = server(401).await;
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

    for connector in ["table", "stream", "rabbit"] {
        let (_, out) = runner(root, &["queue", "stats", connector]);
        assert_no_secret("queue stats", &out);
        assert!(out.contains(connector), "{out}");
    }
}
