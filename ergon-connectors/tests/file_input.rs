//! The file connector as an input: lines, ids, metadata, requeue, shared reading.
#![cfg(feature = "file")]

use std::collections::BTreeSet;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::task::Poll;

use ergon_connectors::file::{FileConfig, FileConnector, FileKind, meta};
use ergon_core::config::{ConfigEnv, ConnectorKind};
use ergon_core::{Category, Connector, Delivery, Settlement, Transaction};

fn env(dir: &Path) -> ConfigEnv {
    ConfigEnv {
        name: "input".into(),
        base_dir: dir.to_path_buf(),
    }
}

async fn fetch_all(connector: &dyn Connector, batch: usize) -> Vec<Delivery> {
    let mut all = Vec::new();
    loop {
        let fetched = connector.fetch(batch).await.unwrap();
        if fetched.is_empty() {
            return all;
        }
        assert!(fetched.len() <= batch);
        all.extend(fetched);
    }
}

#[tokio::test]
async fn lines_become_transactions_with_line_ids_and_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orders.jsonl");
    std::fs::write(&path, "{\"n\":1}\n{\"n\":2}\r\n{\"n\":3}\n").unwrap();

    let input = FileConnector::new(&path);
    let batch = input.fetch(2).await.unwrap();
    assert_eq!(batch.len(), 2, "at most `max` per fetch");
    let rest = input.fetch(10).await.unwrap();
    let all: Vec<&Delivery> = batch.iter().chain(&rest).collect();

    let ids: Vec<&str> = all.iter().map(|tx| tx.id()).collect();
    assert_eq!(ids, ["orders.jsonl:1", "orders.jsonl:2", "orders.jsonl:3"]);
    for (i, tx) in all.iter().enumerate() {
        assert_eq!(
            tx.payload(),
            format!("{{\"n\":{}}}", i + 1).as_bytes(),
            "no line ending"
        );
        assert_eq!(
            tx.meta(meta::PATH),
            Some(path.display().to_string().as_str())
        );
        assert_eq!(tx.meta(meta::LINE), Some((i + 1).to_string().as_str()));
        assert_eq!(tx.json::<serde_json::Value>().unwrap()["n"], i + 1);
    }
    assert!(
        input.fetch(10).await.unwrap().is_empty(),
        "the file is exhausted"
    );
}

#[tokio::test]
async fn blank_lines_are_skipped_but_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.jsonl");
    std::fs::write(&path, "\n{\"a\":1}\n   \n\t\r\n{\"a\":2}\n\n").unwrap();

    let all = fetch_all(&FileConnector::new(&path), 10).await;
    let lines: Vec<&str> = all.iter().map(|tx| tx.meta(meta::LINE).unwrap()).collect();
    assert_eq!(lines, ["2", "5"], "line numbers are the file's");
}

#[tokio::test]
async fn a_line_that_is_not_json_is_delivered_intact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.jsonl");
    let broken = "{\"id\":\"o-1\",\"items\":[{\"sku\":";
    std::fs::write(&path, format!("{{\"ok\":true}}\n{broken}\nplain text\n")).unwrap();

    let all = fetch_all(&FileConnector::new(&path), 10).await;
    assert_eq!(all.len(), 3);
    assert_eq!(all[1].payload(), broken.as_bytes());
    assert_eq!(all[2].payload(), &b"plain text"[..]);
    let err = all[1].json::<serde_json::Value>().unwrap_err();
    assert_eq!(err.category(), Category::Business);
}

#[tokio::test]
async fn the_last_line_needs_no_newline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.jsonl");
    std::fs::write(&path, "{\"a\":1}\n{\"a\":2}").unwrap();

    let all = fetch_all(&FileConnector::new(&path), 10).await;
    let payloads: Vec<&[u8]> = all.iter().map(|tx| &tx.payload()[..]).collect();
    assert_eq!(payloads, [&b"{\"a\":1}"[..], &b"{\"a\":2}"[..]]);
}

#[tokio::test]
async fn requeued_transactions_come_back_before_new_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.jsonl");
    std::fs::write(&path, "1\n2\n3\n4\n").unwrap();

    let input = FileConnector::new(&path);
    let first = input.fetch(2).await.unwrap();
    input.settle(&first[0], &Settlement::Ack).await.unwrap();
    input.settle(&first[1], &Settlement::Requeue).await.unwrap();
    assert_eq!(input.requeued(), 1);

    let next = input.fetch(2).await.unwrap();
    let ids: Vec<&str> = next.iter().map(|tx| tx.id()).collect();
    assert_eq!(ids, ["in.jsonl:2", "in.jsonl:3"]);
    assert_eq!(next[0].payload(), first[1].payload());
    assert_eq!(next[0].meta(meta::LINE), Some("2"));

    // Requeued after the end of the file: still delivered.
    input.settle(&next[1], &Settlement::Requeue).await.unwrap();
    let ids: Vec<String> = fetch_all(&input, 10)
        .await
        .iter()
        .map(|tx| tx.id().to_owned())
        .collect();
    assert_eq!(ids, ["in.jsonl:3", "in.jsonl:4"]);
    assert_eq!(input.acked(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_of_one_connector_read_every_line_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.jsonl");
    let lines = 5_000;
    let content: String = (1..=lines).map(|n| format!("{{\"n\":{n}}}\n")).collect();
    std::fs::write(&path, content).unwrap();

    let make = FileKind
        .configure(
            serde_json::json!({ "path": "many.jsonl" }),
            &env(dir.path()),
        )
        .unwrap();
    let workers: Vec<Arc<dyn Connector>> = vec![
        make.connect(0).await.unwrap(),
        make.connect(1).await.unwrap(),
        make.connect(2).await.unwrap(),
    ];
    let handles: Vec<_> = workers
        .into_iter()
        .enumerate()
        .map(|(i, worker)| tokio::spawn(async move { fetch_all(&*worker, 7 + i * 10).await }))
        .collect();
    let mut seen = BTreeSet::new();
    let mut total = 0;
    for handle in handles {
        for tx in handle.await.unwrap() {
            let n: u64 = tx.meta(meta::LINE).unwrap().parse().unwrap();
            assert_eq!(tx.json::<serde_json::Value>().unwrap()["n"], n);
            seen.insert(n);
            total += 1;
        }
    }
    assert_eq!(total, lines, "no line read twice");
    assert_eq!(seen, (1..=lines).collect(), "every line read");
}

#[tokio::test]
async fn a_missing_input_file_is_a_final_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nowhere.jsonl");

    let make = FileKind
        .configure(
            serde_json::json!({ "path": "nowhere.jsonl" }),
            &env(dir.path()),
        )
        .unwrap();
    let input = make
        .connect(0)
        .await
        .expect("connect does not open the input");
    let err = input.fetch(10).await.unwrap_err();
    assert_eq!(err.category(), Category::System);
    assert!(!err.is_retryable());
    let shown = err.chain().to_string();
    assert!(shown.contains(&path.display().to_string()), "{shown}");
    assert!(shown.contains("does not exist"), "{shown}");

    // Once it appears, the next fetch reads it.
    std::fs::write(&path, "{}\n").unwrap();
    assert_eq!(input.fetch(10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn ids_can_come_from_a_json_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orders.jsonl");
    std::fs::write(
        &path,
        "{\"id\":\"o-1\",\"total\":3}\n{\"total\":4}\n{\"id\":7}\nnot json\n",
    )
    .unwrap();
    let config = FileConfig {
        id_field: Some("id".into()),
        ..FileConfig::new("orders.jsonl")
    };
    let input = FileConnector::from_config(&config, &env(dir.path())).unwrap();

    let ids: Vec<String> = fetch_all(&input, 10)
        .await
        .iter()
        .map(|tx| tx.id().to_owned())
        .collect();
    assert_eq!(ids, ["o-1", "orders.jsonl:2", "7", "orders.jsonl:4"]);
}

#[tokio::test]
async fn lines_appended_after_the_end_are_read_by_later_fetches() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stream.jsonl");
    std::fs::write(&path, "{\"n\":1}\n").unwrap();

    let connector = FileConnector::new(&path);
    assert_eq!(connector.fetch(10).await.unwrap().len(), 1);
    assert!(connector.fetch(10).await.unwrap().is_empty());

    // One task dispatches into the file another task reads (streaming mode).
    connector
        .dispatch(&[
            Transaction::new("x", "{\"n\":2}"),
            Transaction::new("y", "{\"n\":3}"),
        ])
        .await
        .unwrap();
    let more = connector.fetch(10).await.unwrap();
    let lines: Vec<&str> = more.iter().map(|tx| tx.meta(meta::LINE).unwrap()).collect();
    assert_eq!(lines, ["2", "3"]);
}

#[tokio::test]
async fn a_fetch_cut_off_by_its_timeout_loses_no_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.jsonl");
    let content: String = (1..=50).map(|n| format!("{{\"n\":{n}}}\n")).collect();
    std::fs::write(&path, content).unwrap();

    let input = FileConnector::new(&path);
    // The attempt is polled once (starting the read) and then given up, as a timeout
    // does; the read still finishes on the blocking pool, and what it read is handed out
    // by the next fetches.
    let mut cut = Box::pin(input.fetch(20));
    let first = std::future::poll_fn(|cx| Poll::Ready(cut.as_mut().poll(cx))).await;
    drop(cut);
    let mut all = match first {
        Poll::Ready(batch) => batch.unwrap(),
        Poll::Pending => Vec::new(),
    };
    all.extend(fetch_all(&input, 20).await);
    let lines: Vec<u64> = all
        .iter()
        .map(|tx| tx.meta(meta::LINE).unwrap().parse().unwrap())
        .collect();
    assert_eq!(lines, (1..=50).collect::<Vec<_>>());
}
