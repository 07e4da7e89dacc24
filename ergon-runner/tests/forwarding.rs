//! Forwarding across transports carries no transport state: a transaction forwarded from
//! a local queue to RabbitMQ and on to another local queue arrives with its own metadata
//! (lineage, trace context, where it came from) and nothing of the deliveries on the way
//! (`local.*` receipts, AMQP delivery tags, redelivery flags, delivery counts). Needs the
//! local broker (`amqp://guest:guest@127.0.0.1:5672`).

use std::time::Duration;

use ergon_connectors::local::Store;
use lapin::options::{BasicGetOptions, BasicNackOptions, QueueDeleteOptions};
use lapin::types::ShortString;
use lapin::{Connection, ConnectionProperties};

mod common;

use common::run_ok;

const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// Whether `key` names the state of one delivery rather than the message.
fn delivery_state(key: &str) -> bool {
    key.starts_with("local.")
        || key.contains("deliver")
        || key.contains("redelivered")
        || key == "amqp.delivery"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_to_rabbitmq_to_local_carries_no_delivery_state() {
    let dir = tempfile::tempdir().unwrap();
    let queue = format!("ergon-test-forwarding-{}", std::process::id());
    let config = dir.path().join("tasks.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[connectors.inbox]
type = "local"
path = "in.db"

[connectors.mid]
type = "rabbitmq"
url = "{URL}"
queue = "{queue}"

[connectors.outbox]
type = "local"
path = "out.db"

[tasks.to_rabbit]
type = "forward"
input = "inbox"
output = "mid"

[tasks.from_rabbit]
type = "forward"
input = "mid"
output = "outbox"
"#
        ),
    )
    .unwrap();
    let lines: String = (0..20)
        .map(|n| format!("{{\"id\":\"o-{n}\",\"n\":{n}}}\n"))
        .collect();
    std::fs::write(dir.path().join("orders.jsonl"), lines).unwrap();
    let orders = dir.path().join("orders.jsonl");
    run_ok(
        &config,
        &[
            "queue",
            "enqueue",
            "inbox",
            "--file",
            orders.to_str().unwrap(),
        ],
    );

    // First hop: the messages on the broker carry no header of the local queue's.
    run_ok(&config, &["run", "to_rabbit"]);
    let connection = Connection::connect(URL, ConnectionProperties::default())
        .await
        .unwrap_or_else(|err| panic!("RabbitMQ at {URL}: {err}"));
    let channel = connection.create_channel().await.unwrap();
    let message = channel
        .basic_get(
            ShortString::from(queue.as_str()),
            BasicGetOptions::default(),
        )
        .await
        .unwrap()
        .expect("a forwarded message");
    let headers = message
        .delivery
        .properties
        .headers()
        .clone()
        .unwrap_or_default();
    let keys: Vec<String> = headers.inner().keys().map(|k| k.to_string()).collect();
    assert!(!keys.iter().any(|k| delivery_state(k)), "headers {keys:?}");
    let options = BasicNackOptions {
        multiple: false,
        requeue: true,
    };
    channel
        .basic_nack(message.delivery.delivery_tag, options)
        .await
        .unwrap();
    channel.close(200, ShortString::from("done")).await.unwrap();

    // Second hop: the rows of the other local queue carry none of RabbitMQ's either.
    run_ok(&config, &["run", "from_rabbit"]);
    let mut store = Store::open(&dir.path().join("out.db")).unwrap();
    let rows = store
        .lease("outbox", 100, Duration::from_secs(30), 1)
        .unwrap();
    assert_eq!(rows.len(), 20, "every order forwarded twice over");
    for row in &rows {
        let metadata: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&row.metadata).unwrap();
        let keys: Vec<&String> = metadata.keys().collect();
        assert!(
            !keys.iter().any(|k| delivery_state(k)),
            "{}: metadata {keys:?}",
            row.id
        );
        assert_eq!(row.deliveries, 1, "a first delivery downstream");
    }

    let channel = connection.create_channel().await.unwrap();
    channel
        .queue_delete(
            ShortString::from(queue.as_str()),
            QueueDeleteOptions::default(),
        )
        .await
        .unwrap();
}
