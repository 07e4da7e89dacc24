//! The fan_in example end to end through its binary: 1,003 tagged items squared, cut
//! into 100 full batches and a last one of 3 without a timer, their sums totalled once
//! (`common::every_item_once_and_one_total`), and the batches in `trace`.

use example_support::Example;

mod common;

#[test]
fn a_thousand_and_three_items_make_a_hundred_and_one_batches_and_one_total() {
    let example = Example::copy(
        env!("CARGO_BIN_EXE_fan_in"),
        env!("CARGO_MANIFEST_DIR"),
        &["batches.jsonl"],
    );
    example.enqueue("batches", "batches.jsonl");
    let summary = example.run(&[]);
    common::one_run_did_it_all(&summary, 1_003);
    common::every_item_once_and_one_total(&example, 1_003, "complete");

    // Batches hang under their group's transaction with the items they hold.
    let trace = example.run(&["trace", "order-1"]);
    let lines: Vec<&str> = trace.lines().collect();
    assert!(
        lines[5].starts_with("├─ ▤ order-1/aggregate/batch/items/0 [aggregate] succeeded"),
        "{trace}"
    );
    // Items arrive in the order they complete (64 at a time): which 10 varies.
    assert!(
        lines[6].starts_with("│    └─ holds 10: order-1/item/") && lines[6].ends_with(", … 7 more"),
        "{trace}"
    );
    assert_eq!(
        lines.last().copied(),
        Some("└─ ▤ … 99 more batches: 99 succeeded (list --parent order-1 [--status failed])"),
        "100 more aggregate batches and total's one, folded: {trace}"
    );
    let last_batch = example.run(&[
        "trace",
        "order-1/aggregate/batch/items/100",
        "--format",
        "json",
    ]);
    let document: serde_json::Value = serde_json::from_str(&last_batch).unwrap();
    let batch = &document["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|child| child["id"] == "order-1/aggregate/batch/items/100")
        .expect("the last batch under its group");
    let items: Vec<&str> = batch["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap())
        .collect();
    assert_eq!(items.len(), 3, "the last batch holds the 3 left over");
    assert!(
        items.iter().all(|id| id.starts_with("order-1/item/")),
        "{items:?}"
    );
}
