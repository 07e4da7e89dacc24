//! The scatter_gather example end to end through its binary: three suppliers asked, the
//! wait decided at its 300 ms timeout with the two answers that arrived, the slow
//! supplier named as missed — and its late answer changes nothing.

use std::path::Path;
use std::process::Command;

fn run(config: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_scatter_gather"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn the_timeout_decides_with_the_quotes_that_arrived() {
    let dir = tempfile::tempdir().unwrap();
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in ["tasks.toml", "requests.jsonl"] {
        std::fs::copy(here.join(file), dir.path().join(file)).unwrap();
    }
    let config = dir.path().join("tasks.toml");
    let requests = dir.path().join("requests.jsonl");
    run(
        &config,
        &[
            "queue",
            "enqueue",
            "requests",
            "--file",
            requests.to_str().unwrap(),
        ],
    );
    let summary = run(&config, &[]);
    assert!(
        summary.contains("task supplier: processed=3 succeeded=3"),
        "{summary}"
    );
    assert!(
        summary.contains("task choose: processed=1 succeeded=1"),
        "{summary}"
    );

    let decisions = std::fs::read_to_string(dir.path().join("out/decisions.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = decisions
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines,
        [serde_json::json!({
            "request": "rfq-1",
            "outcome": "timed_out",
            "quotes": 2,
            "supplier": "globex",
            "price": 98,
            "missed": ["rfq-1/ask/initech"],
        })],
        "initech is cheapest but answered after the deadline"
    );
    let late: serde_json::Value =
        serde_json::from_str(&run(&config, &["get", "rfq-1/ask/initech", "--json"])).unwrap();
    assert_eq!(late["status"], "succeeded", "it did answer, late");
}
