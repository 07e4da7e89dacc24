//! The pipeline example end to end through its binary: each good document goes through
//! tokenize → count → report by continuations; the bad one stops at tokenize; `trace`
//! shows the chain.

use example_support::Example;

#[test]
fn documents_flow_through_three_tasks_by_continuations() {
    let example = Example::copy(
        env!("CARGO_BIN_EXE_pipeline"),
        env!("CARGO_MANIFEST_DIR"),
        &["documents.jsonl"],
    );
    example.enqueue("documents", "documents.jsonl");
    let summary = example.run(&[]);
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

    let mut lines = example.json_lines("out/reports.jsonl");
    lines.sort_by_key(|line| line["document"].as_str().unwrap_or_default().to_owned());
    assert_eq!(
        lines,
        [
            serde_json::json!({"document": "doc-1", "words": 9, "longest": "jumps"}),
            serde_json::json!({"document": "doc-2", "words": 10, "longest": "continuations"}),
        ]
    );

    let trace = example.run(&["trace", "doc-1"]);
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
    let failed = example.run(&["trace", "doc-3"]);
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
