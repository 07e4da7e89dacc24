//! What the RabbitMQ test binaries share: the local broker's URL, a raw channel, unique
//! queue names, queue depths, clean-up and killing connections with `rabbitmqctl`.
#![allow(dead_code, reason = "each test binary uses a different part")]

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{Channel, Connection, ConnectionProperties};

/// The local broker.
pub const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// A raw channel for setting up and inspecting; fails the test clearly without a broker.
pub async fn raw() -> Channel {
    let connection = Connection::connect(URL, ConnectionProperties::default())
        .await
        .unwrap_or_else(|err| {
            panic!(
                "RabbitMQ is not reachable at {URL} ({err}); these tests need the local broker \
                 (Debian: `systemctl start rabbitmq-server`)"
            )
        });
    connection.create_channel().await.unwrap()
}

/// A queue name no other test (or run) uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "ergon-test-{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Relaxed)
    )
}

/// Messages ready in `queue`.
pub async fn depth(channel: &Channel, queue: &str) -> u32 {
    channel
        .queue_declare(
            ShortString::from(queue),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap()
        .message_count()
}

/// Deletes `queues`, those that exist.
pub async fn delete(channel: &Channel, queues: &[&str]) {
    for queue in queues {
        let _ = channel
            .queue_delete(ShortString::from(*queue), QueueDeleteOptions::default())
            .await;
    }
}

/// Closes the broker connections whose name contains `name` (rabbitmqctl).
pub fn kill_connections(name: &str) -> usize {
    let listing = std::process::Command::new("rabbitmqctl")
        .args(["list_connections", "-q", "pid", "client_properties"])
        .output()
        .expect("rabbitmqctl (from the rabbitmq-server package) is needed for this test");
    let text = String::from_utf8_lossy(&listing.stdout);
    let mut killed = 0;
    for line in text.lines().filter(|l| l.contains(name)) {
        let pid = line.split_whitespace().next().unwrap();
        let status = std::process::Command::new("rabbitmqctl")
            .args(["close_connection", pid, "killed by the test"])
            .status()
            .unwrap();
        assert!(status.success());
        killed += 1;
    }
    killed
}
