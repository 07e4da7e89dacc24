//! Scale-out on RabbitMQ: three `ergon-runner` processes consuming one queue (competing
//! consumers) share the work, and every message is processed exactly once in a clean run.
//! Needs the local broker (`amqp://guest:guest@127.0.0.1:5672`).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const MESSAGES: u64 = 3000;

async fn channel() -> Channel {
    let connection = Connection::connect(URL, ConnectionProperties::default())
        .await
        .unwrap_or_else(|err| {
            panic!("RabbitMQ is not reachable at {URL} ({err}); this test needs the local broker")
        });
    connection.create_channel().await.unwrap()
}

/// Declares `queue` (durable, as the connector does) and returns its consumer count.
async fn consumers(channel: &Channel, queue: &str) -> u32 {
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(ShortString::from(queue), durable, FieldTable::default())
        .await
        .unwrap()
        .consumer_count()
}

/// Output lines per process: `n` → how many times it was written.
fn forwarded(dir: &Path) -> (Vec<usize>, BTreeMap<u64, usize>) {
    let mut per_process = Vec::new();
    let mut seen = BTreeMap::new();
    for i in 0..3 {
        let text =
            std::fs::read_to_string(dir.join(format!("out/sink-{i}.jsonl"))).unwrap_or_default();
        per_process.push(text.lines().count());
        for line in text.lines() {
            let n = serde_json::from_str::<serde_json::Value>(line).unwrap()["n"]
                .as_u64()
                .unwrap();
            *seen.entry(n).or_default() += 1;
        }
    }
    (per_process, seen)
}

fn runner(config: &Path, sink: usize) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ergon-runner"))
        .arg("--config")
        .arg(config)
        .env("SINK", sink.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_runners_on_one_queue_share_the_work_and_process_everything() {
    let queue = format!("ergon-test-scale-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tasks.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[connectors.orders]
type = "rabbitmq"
url = "{URL}"
queue = "{queue}"
prefetch = 10

[connectors.sink]
type = "file"
path = "out/sink-${{SINK}}.jsonl"

[tasks.bridge]
type = "forward"
input = "orders"
output = "sink"

[tasks.bridge.policy.loop]
streaming = true
concurrency = 8
"#
        ),
    )
    .unwrap();

    let channel = channel().await;
    let mut runners: Vec<Child> = (0..3).map(|i| runner(&config, i)).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while consumers(&channel, &queue).await < 3 {
        for runner in &mut runners {
            assert!(
                runner.try_wait().unwrap().is_none(),
                "a runner exited early"
            );
        }
        assert!(
            Instant::now() < deadline,
            "the three runners did not start consuming"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    for n in 0..MESSAGES {
        let confirm = channel
            .basic_publish(
                ShortString::from(""),
                ShortString::from(queue.as_str()),
                BasicPublishOptions::default(),
                format!("{{\"n\":{n}}}").as_bytes(),
                BasicProperties::default().with_message_id(ShortString::from(format!("m-{n}"))),
            )
            .await
            .unwrap();
        drop(confirm);
    }
    channel.wait_for_confirms().await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(60);
    while forwarded(dir.path()).1.len() < MESSAGES as usize {
        assert!(
            Instant::now() < deadline,
            "not every message was forwarded in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for runner in runners {
        let status = Command::new("kill")
            .args(["-TERM", &runner.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let out = runner.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(143),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let (per_process, seen) = forwarded(dir.path());
    assert_eq!(seen.len(), MESSAGES as usize, "every message processed");
    let duplicates: usize = seen.values().map(|count| count - 1).sum();
    assert_eq!(duplicates, 0, "a clean run processes each message once");
    assert!(
        per_process.iter().all(|&count| count > 0),
        "the work is shared: {per_process:?}"
    );
    let depth = channel
        .queue_declare(
            ShortString::from(queue.as_str()),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap()
        .message_count();
    assert_eq!(depth, 0, "everything acked");
    channel
        .queue_delete(
            ShortString::from(queue.as_str()),
            QueueDeleteOptions::default(),
        )
        .await
        .unwrap();
}
