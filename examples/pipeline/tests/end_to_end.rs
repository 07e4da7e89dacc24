//! The pipeline example end to end through its binary: each good document goes through
//! tokenize → count → report by continuations; the bad one stops at tokenize; `trace`
//! shows the chain.

use std::path::Path;
use std::process::Command;

fn run(config: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_pipeline"))
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
fn documents_flow_through_three_tasks_by_continuations() {
    let dir = tempfile::tempdir().unwrap();
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in ["tasks.toml", "documents.jsonl"] {
        std::fs::copy(here.join(file), dir.path().join(file)).unwrap();
    }
    let config = dir.path().join("tasks.toml");
    let documents = dir.path().join("documents.jsonl");
    run(
        &config,
        &[
            "queue",
            "enqueue",
            "documents",
            "--file",
            documents.to_str().unwrap(),
        ],
    );
    let summary = run(&config, &[]);
    assert!(
        summary.contains("task tokenize: processed=3 succeeded=2 failed=1"),
        "{summary}"
    );
    assert!(
        summary.contains("task count: processed=2 succeeded=2"),
        "{summary}"
    );
    assert!(
        summary.contains("task report: processed=2 succeeded=2"),
        "{summary}"
    );

    let reports = std::fs::read_to_string(dir.path().join("out/reports.jsonl")).unwrap();
    let mut lines: Vec<serde_json::Value> = reports
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    lines.sort_by_key(|line| line["document"].as_str().unwrap_or_default().to_owned());
    assert_eq!(
        lines,
        [
            serde_json::json!({"document": "doc-1", "words": 9, "longest": "jumps"}),
            serde_json::json!({"document": "doc-2", "words": 10, "longest": "continuations"}),
        ]
    );

    let trace = run(&config, &["trace", "doc-1"]);
    let lines: Vec<&str> = trace.lines().collect();
    assert_eq!(lines.len(), 3, "{trace}");
    assert!(
        lines[0].starts_with("doc-1 [tokenize] succeeded"),
        "{trace}"
    );
    assert!(
        lines[1].starts_with("└─ ⤷ doc-1/tokenize/then/count [count] succeeded"),
        "{trace}"
    );
    assert!(
        lines[2].starts_with(
            "     └─ ⤷ doc-1/tokenize/then/count/count/then/report [report] succeeded"
        ),
        "{trace}"
    );
    let failed = run(&config, &["trace", "doc-3"]);
    assert_eq!(
        failed.lines().count(),
        1,
        "no continuation after a failure: {failed}"
    );
    assert!(
        failed.contains("error=process/business: a document needs a `text`"),
        "{failed}"
    );
}
