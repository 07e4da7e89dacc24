//! The fingerprint example end to end through its binary: every good record fingerprinted
//! (one digest recomputed here independently), bad records dead-lettered, the summary.

use std::path::Path;
use std::process::Command;

use sha2::{Digest as _, Sha256};

fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn fingerprints_every_good_record_and_dead_letters_the_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in ["tasks.toml", "records.jsonl"] {
        std::fs::copy(here.join(file), dir.path().join(file)).unwrap();
    }
    // Fewer rounds than the example's: a debug build hashes slowly.
    let out = Command::new(env!("CARGO_BIN_EXE_fingerprint"))
        .arg("--config")
        .arg(dir.path().join("tasks.toml"))
        .env("ERGON__TASKS__FINGERPRINT_RECORDS__SETTINGS__ROUNDS", "50")
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
        stdout.contains(
            "task fingerprint_records: processed=52 succeeded=50 failed=2 business=2 system=0 \
             timeout=0 retries=0 dispatched=50 dead_lettered=2"
        ),
        "{stdout}"
    );

    let records: Vec<serde_json::Value> = std::fs::read_to_string(here.join("records.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let fingerprints = json_lines(&dir.path().join("out/fingerprints.jsonl"));
    assert_eq!(fingerprints.len(), 50);
    for fingerprint in &fingerprints {
        let record = records
            .iter()
            .find(|r| r["id"] == fingerprint["id"])
            .unwrap_or_else(|| panic!("no record for {fingerprint}"));
        let documents = record["documents"].as_array().unwrap();
        assert_eq!(fingerprint["rounds"], 50);
        assert_eq!(
            fingerprint["digests"].as_array().unwrap().len(),
            documents.len()
        );
    }

    // One digest recomputed independently: SHA-256 applied 50 times.
    let first = fingerprints.iter().find(|f| f["id"] == "r-001").unwrap();
    let document = records[0]["documents"][0].as_str().unwrap();
    let mut digest = Sha256::digest(document.as_bytes());
    for _ in 1..50 {
        digest = Sha256::digest(digest);
    }
    let expected: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(first["digests"][0], expected.as_str());

    let rejected = json_lines(&dir.path().join("out/rejected.jsonl"));
    assert_eq!(rejected.len(), 2);
    assert!(rejected.iter().all(|r| r["category"] == "business"));
    let empty = rejected
        .iter()
        .find(|r| r["payload"]["id"] == "r-empty")
        .expect("the record without documents is dead-lettered");
    assert!(
        empty["error"]
            .as_str()
            .unwrap()
            .contains("has no documents"),
        "{empty}"
    );
}
