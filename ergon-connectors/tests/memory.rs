//! The memory kind: one queue per `[connectors.NAME]`, shared by every connect().
#![cfg(feature = "memory")]

use std::path::PathBuf;

use ergon_connectors::memory::MemoryKind;
use ergon_core::config::{ConfigEnv, ConnectorKind};
use ergon_core::{Settlement, Transaction};

fn env(name: &str) -> ConfigEnv {
    ConfigEnv {
        name: name.into(),
        base_dir: PathBuf::from("."),
    }
}

#[tokio::test]
async fn every_connect_shares_the_queue_of_its_connector() {
    let make = MemoryKind
        .configure(serde_json::json!({}), &env("handoff"))
        .unwrap();
    let producer = make.connect(0).await.unwrap();
    let consumer_a = make.connect(0).await.unwrap();
    let consumer_b = make.connect(1).await.unwrap();

    producer
        .dispatch(&[
            Transaction::new("a", "1"),
            Transaction::new("b", "2"),
            Transaction::new("c", "3"),
        ])
        .await
        .unwrap();
    let first = consumer_a.fetch(2).await.unwrap();
    let second = consumer_b.fetch(2).await.unwrap();
    let ids: Vec<&str> = first.iter().chain(&second).map(|tx| tx.id()).collect();
    assert_eq!(
        ids,
        ["a", "b", "c"],
        "each transaction once, across workers"
    );

    consumer_a
        .settle(&first[0], &Settlement::Requeue)
        .await
        .unwrap();
    let again = consumer_b.fetch(10).await.unwrap();
    assert_eq!((again[0].id(), again[0].deliveries()), ("a", 2));

    // Another [connectors.NAME] is another queue.
    let other = MemoryKind
        .configure(serde_json::json!({}), &env("other"))
        .unwrap();
    assert!(
        other
            .connect(0)
            .await
            .unwrap()
            .fetch(10)
            .await
            .unwrap()
            .is_empty()
    );
}
