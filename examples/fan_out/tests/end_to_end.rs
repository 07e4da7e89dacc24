//! The fan_out example end to end through its binary: 1,000 children spawned and
//! squared, the fan-in fired once with every output, the lineage in `trace`.

use std::path::Path;
use std::process::Command;

fn run(config: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_fan_out"))
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
fn a_thousand_children_fan_in_once() {
    let dir = tempfile::tempdir().unwrap();
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in ["tasks.toml", "batches.jsonl"] {
        std::fs::copy(here.join(file), dir.path().join(file)).unwrap();
    }
    let config = dir.path().join("tasks.toml");
    let batches = dir.path().join("batches.jsonl");
    run(
        &config,
        &[
            "queue",
            "enqueue",
            "batches",
            "--file",
            batches.to_str().unwrap(),
        ],
    );
    let summary = run(&config, &[]);
    assert!(
        summary.contains("task square: processed=1000 succeeded=1000"),
        "{summary}"
    );
    assert!(
        summary.contains("task sum: processed=1 succeeded=1"),
        "{summary}"
    );

    let totals = std::fs::read_to_string(dir.path().join("out/totals.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = totals
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{totals}");
    // 1² + 2² + … + 1000² = 1000·1001·2001 / 6
    assert_eq!(
        lines[0],
        serde_json::json!({"batch": "batch-1", "outcome": "satisfied", "items": 1000, "succeeded": 1000, "total": 333_833_500_u64})
    );

    let trace = run(&config, &["trace", "batch-1"]);
    let lines: Vec<&str> = trace.lines().collect();
    assert!(lines[0].starts_with("batch-1 [split] succeeded"), "{trace}");
    assert!(lines[0].ends_with("children=1000"), "{trace}");
    assert_eq!(
        lines[4], "├─ … 997 more: 997 succeeded (list --parent batch-1 [--status failed])",
        "the fan-out folds: {trace}"
    );
    assert!(
        lines[5].starts_with("└─ ⤷ batch-1/split/then/sum [sum] succeeded"),
        "the continuation is in the lineage: {trace}"
    );
}
