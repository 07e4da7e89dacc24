//! The scatter_gather example end to end through its binary: three suppliers asked, the
//! wait decided at its 300 ms timeout with the two answers that arrived, the slow
//! supplier named as missed — and its late answer changes nothing.

use example_support::Example;

#[test]
fn the_timeout_decides_with_the_quotes_that_arrived() {
    let example = Example::copy(
        env!("CARGO_BIN_EXE_scatter_gather"),
        env!("CARGO_MANIFEST_DIR"),
        &["requests.jsonl"],
    );
    example.enqueue("requests", "requests.jsonl");
    let summary = example.run(&[]);
    assert!(
        summary.contains("task supplier: processed=3 succeeded=3"),
        "{summary}"
    );
    assert!(
        summary.contains("task choose: processed=1 succeeded=1"),
        "{summary}"
    );

    assert_eq!(
        example.json_lines("out/decisions.jsonl"),
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
        serde_json::from_str(&example.run(&["get", "rfq-1/ask/initech", "--json"])).unwrap();
    assert_eq!(late["status"], "succeeded", "it did answer, late");
}
