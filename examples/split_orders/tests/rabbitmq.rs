//! The split_orders example on RabbitMQ (rabbitmq.toml) through its binary, on queues of
//! its own: orders fed into a queue, split into line items on a quorum queue, bad orders
//! dead-lettered with their error. Needs the local broker.

use std::path::Path;
use std::process::Command;

use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{Channel, Connection, ConnectionProperties};

const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

async fn channel() -> Channel {
    let connection = Connection::connect(URL, ConnectionProperties::default())
        .await
        .unwrap_or_else(|err| panic!("RabbitMQ is not reachable at {URL} ({err})"));
    connection.create_channel().await.unwrap()
}

async fn depth(channel: &Channel, queue: &str) -> u32 {
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(ShortString::from(queue), passive, FieldTable::default())
        .await
        .unwrap()
        .message_count()
}

#[tokio::test]
async fn orders_go_through_rabbitmq_as_line_items() {
    let dir = tempfile::tempdir().unwrap();
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in ["rabbitmq.toml", "orders.jsonl"] {
        std::fs::copy(here.join(file), dir.path().join(file)).unwrap();
    }
    let prefix = format!("ergon-test-split-{}", std::process::id());
    let (orders, dead, items) = (
        format!("{prefix}.orders"),
        format!("{prefix}.orders.dead"),
        format!("{prefix}.line_items"),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_split_orders"))
        .arg("--config")
        .arg(dir.path().join("rabbitmq.toml"))
        .env("ERGON__CONNECTORS__ORDERS__QUEUE", &orders)
        .env("ERGON__CONNECTORS__ORDERS__DEAD_LETTER__QUEUE", &dead)
        .env("ERGON__CONNECTORS__LINE_ITEMS__QUEUE", &items)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("task feed: processed=10 succeeded=10"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "task split: processed=10 succeeded=8 failed=2 business=2 system=0 timeout=0 \
             retries=0 dispatched=16 dead_lettered=2"
        ),
        "{stdout}"
    );

    let channel = channel().await;
    assert_eq!(depth(&channel, &orders).await, 0, "every order acked");
    assert_eq!(depth(&channel, &items).await, 16);
    assert_eq!(depth(&channel, &dead).await, 2);
    for queue in [&orders, &dead, &items] {
        channel
            .queue_delete(
                ShortString::from(queue.as_str()),
                QueueDeleteOptions::default(),
            )
            .await
            .unwrap();
    }
}
