//! The file connector as an output and as a settler: dispatch, dead letters, drops, health.
#![cfg(feature = "file")]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ergon_connectors::file::{FileConnector, meta};
use ergon_connectors::jsonl;
use ergon_core::{Category, Connector, Delivery, Failure, Settlement, Transaction};

fn failure(category: Category, attempts: u32, message: &str) -> Failure {
    Failure {
        task: Arc::from("validate_orders"),
        step: "process",
        category,
        message: message.to_owned(),
        attempts,
    }
}

fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[tokio::test]
async fn dispatch_appends_lines_after_existing_content() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    std::fs::write(&path, "{\"kept\":true}\n").unwrap();

    let output = FileConnector::new(&path);
    output
        .dispatch(&[
            Transaction::new("a", "{\"n\":1}"),
            Transaction::new("b", "{\"n\":2}"),
        ])
        .await
        .unwrap();
    output.dispatch(&[]).await.unwrap();
    output
        .dispatch(&[Transaction::new("c", "{\"n\":3}")])
        .await
        .unwrap();
    // Visible before close: every dispatch reached the OS.
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "{\"kept\":true}\n{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n"
    );
    output.close().await.unwrap();

    // Readable back by another connector on the same file.
    let reader = FileConnector::new(&path);
    let back = reader.fetch(10).await.unwrap();
    let payloads: Vec<&[u8]> = back.iter().map(|tx| &tx.payload()[..]).collect();
    assert_eq!(
        payloads,
        [
            &b"{\"kept\":true}"[..],
            b"{\"n\":1}",
            b"{\"n\":2}",
            b"{\"n\":3}"
        ]
    );
}

#[tokio::test]
async fn dispatch_creates_the_file_and_its_directories() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out/nested/accepted.jsonl");
    let output = FileConnector::new(&path);
    output
        .health()
        .await
        .expect("a missing file in a writable place is healthy");
    output
        .dispatch(&[Transaction::new("a", "{}")])
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}\n");
}

#[tokio::test]
async fn payloads_with_line_breaks_are_one_line_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    let output = FileConnector::new(&path);

    let pretty = "{\n  \"b\": 1.50,\n  \"a\": [1,\n    2]\n}\n";
    output
        .dispatch(&[Transaction::new("pretty", pretty)])
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "{  \"b\": 1.50,  \"a\": [1,    2]}\n",
        "the same JSON value, keys and numbers as written, on one line"
    );

    let err = output
        .dispatch(&[
            Transaction::new("fine", "{}"),
            Transaction::new("two-lines", "first\nsecond"),
        ])
        .await
        .unwrap_err();
    assert_eq!(err.category(), Category::Business);
    assert!(err.to_string().contains("two-lines"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap().lines().count(),
        1,
        "a refused dispatch writes nothing"
    );
}

#[tokio::test]
async fn dead_letters_keep_every_field_and_the_original_payload() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orders.jsonl");
    // Key order, spacing and number formats that a JSON round trip would change.
    let json_line = r#"{"z":1, "a":{"y":1.50,"b":1e3}}"#;
    let text_line = r#"{"id":"o-1099","items":[{"sku":"#;
    std::fs::write(&path, format!("{json_line}\n{text_line}\n")).unwrap();

    let input = FileConnector::new(&path);
    assert_eq!(
        input.dead_letter_path(),
        dir.path().join("orders.dead.jsonl")
    );
    let batch = input.fetch(10).await.unwrap();
    let before = SystemTime::now() - Duration::from_secs(1);
    input
        .settle(
            &batch[0],
            &Settlement::DeadLetter(failure(
                Category::Business,
                1,
                "order o-7: total is negative",
            )),
        )
        .await
        .unwrap();
    input
        .settle(
            &batch[1],
            &Settlement::DeadLetter(failure(Category::System, 3, "inventory down: refused")),
        )
        .await
        .unwrap();
    assert_eq!(input.dead_lettered(), 2);

    let raw = std::fs::read_to_string(input.dead_letter_path()).unwrap();
    let lines: Vec<&str> = raw.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0].ends_with(&format!(
            r#""payload":{json_line},"payload_encoding":"json"}}"#
        )),
        "the JSON payload is embedded byte for byte: {}",
        lines[0]
    );

    let letters = json_lines(input.dead_letter_path());
    let first = letters[0].as_object().unwrap();
    let keys: Vec<&str> = first.keys().map(String::as_str).collect();
    let mut expected = [
        "id",
        "task",
        "step",
        "category",
        "error",
        "attempts",
        "failed_at",
        "metadata",
        "payload",
        "payload_encoding",
    ];
    expected.sort_unstable();
    assert_eq!(keys, expected);
    assert_eq!(first["id"], "orders.jsonl:1");
    assert_eq!(first["task"], "validate_orders");
    assert_eq!(first["step"], "process");
    assert_eq!(first["category"], "business");
    assert_eq!(first["error"], "order o-7: total is negative");
    assert_eq!(first["attempts"], 1);
    assert_eq!(first["metadata"][meta::LINE], "1");
    assert_eq!(first["metadata"][meta::PATH], path.display().to_string());
    let failed_at = humantime::parse_rfc3339(first["failed_at"].as_str().unwrap()).unwrap();
    assert!(failed_at >= before && failed_at <= SystemTime::now());
    assert!(first["failed_at"].as_str().unwrap().ends_with('Z'), "UTC");

    let second = &letters[1];
    assert_eq!(second["category"], "system");
    assert_eq!(second["attempts"], 3);
    assert_eq!(second["payload_encoding"], "text");
    assert_eq!(second["payload"], text_line, "not JSON: kept as a string");
}

#[tokio::test]
async fn bytes_that_are_not_utf8_are_dead_lettered_in_base64() {
    let dir = tempfile::tempdir().unwrap();
    let input = FileConnector::new(dir.path().join("in.jsonl"));
    let tx = Delivery::new(Transaction::new("bin", vec![0xff, 0xfe, b'a']), ());
    input
        .settle(
            &tx,
            &Settlement::DeadLetter(failure(Category::Business, 1, "bad")),
        )
        .await
        .unwrap();
    let letters = json_lines(input.dead_letter_path());
    assert_eq!(letters[0]["payload_encoding"], "base64");
    assert_eq!(letters[0]["payload"], "//5h");
}

#[tokio::test]
async fn dead_letters_give_back_the_exact_bytes_of_every_line_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.jsonl");
    let lines: [&[u8]; 8] = [
        b"12\r34",
        b"a\0b",
        b"\xEF\xBB\xBF{\"n\":1}",
        b"\xff\xfe{}",
        b" {\"n\": 2} ",
        b"{\"n\":\r3}",
        b"\"\\u0041\"",
        b"{\"b\":1.50,\"a\":2}",
    ];
    let mut content = Vec::new();
    for line in lines {
        content.extend_from_slice(line);
        content.push(b'\n');
    }
    std::fs::write(&path, content).unwrap();

    let input = FileConnector::new(&path);
    let batch = input.fetch(100).await.unwrap();
    assert_eq!(batch.len(), lines.len());
    for tx in &batch {
        let dead = Settlement::DeadLetter(failure(Category::Business, 1, "refused"));
        input.settle(tx, &dead).await.unwrap();
    }
    let written = std::fs::read_to_string(input.dead_letter_path()).unwrap();
    assert_eq!(written.lines().count(), lines.len(), "one line each");
    for (letter, original) in written.lines().zip(lines) {
        assert_eq!(jsonl::payload_of(letter).unwrap(), original, "{letter}");
    }
}

#[tokio::test]
async fn acks_and_drops_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.jsonl");
    std::fs::write(&path, "{}\n{}\n").unwrap();
    let input = FileConnector::new(&path);
    let batch = input.fetch(10).await.unwrap();
    input.settle(&batch[0], &Settlement::Ack).await.unwrap();
    input
        .settle(
            &batch[1],
            &Settlement::Drop(failure(Category::Business, 1, "no")),
        )
        .await
        .unwrap();
    assert_eq!(
        (input.acked(), input.dropped(), input.dead_lettered()),
        (1, 1, 0)
    );
    assert!(!input.dead_letter_path().exists());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}\n{}\n");
}

#[tokio::test]
async fn health_checks_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.jsonl");
    std::fs::write(&path, "{}\n").unwrap();
    FileConnector::new(&path).health().await.unwrap();

    let err = FileConnector::new(dir.path()).health().await.unwrap_err();
    assert!(err.to_string().contains("is a directory"), "{err}");

    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, "").unwrap();
    let err = FileConnector::new(blocker.join("out.jsonl"))
        .health()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is not a directory"), "{err}");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .filter(|name| name.to_string_lossy().starts_with(".ergon-health"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
