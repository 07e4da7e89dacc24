//! The fan_out example end to end through its binary: 1,000 children spawned and
//! squared, the fan-in fired once with every output, the lineage in `trace`.

use example_support::Example;

#[test]
fn a_thousand_children_fan_in_once() {
    let example = Example::copy(
        env!("CARGO_BIN_EXE_fan_out"),
        env!("CARGO_MANIFEST_DIR"),
        &["batches.jsonl"],
    );
    example.enqueue("batches", "batches.jsonl");
    let summary = example.run(&[]);
    assert!(
        summary.contains("task square: processed=1000 succeeded=1000"),
        "{summary}"
    );
    assert!(
        summary.contains("task sum: processed=1 succeeded=1"),
        "{summary}"
    );

    // 1² + 2² + … + 1000² = 1000·1001·2001 / 6
    assert_eq!(
        example.json_lines("out/totals.jsonl"),
        [
            serde_json::json!({"batch": "batch-1", "outcome": "satisfied", "items": 1000, "succeeded": 1000, "total": 333_833_500_u64})
        ]
    );

    let trace = example.run(&["trace", "batch-1"]);
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
