//! The saga example end to end through its binary: a good order runs charge → reserve →
//! ship; a reservation failure is compensated by a refund; a shipment failure by a
//! release, then a refund — each step a journaled node of the order's lineage.

use example_support::Example;

/// `(task, status)` of every node of `order`'s lineage, in the order they finished.
fn saga(example: &Example, order: &str) -> Vec<(String, String)> {
    example
        .run(&["list", "--root", order, "--json"])
        .lines()
        .map(|line| {
            let node: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                node["task"].as_str().unwrap().to_owned(),
                node["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn steps(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(t, s)| ((*t).to_owned(), (*s).to_owned()))
        .collect()
}

#[test]
fn failures_are_compensated_by_continuations() {
    let example = Example::copy(
        env!("CARGO_BIN_EXE_saga"),
        env!("CARGO_MANIFEST_DIR"),
        &["orders.jsonl"],
    );
    example.enqueue("orders", "orders.jsonl");
    example.run(&[]);

    let ok = [
        ("charge", "succeeded"),
        ("reserve", "succeeded"),
        ("ship", "succeeded"),
    ];
    assert_eq!(saga(&example, "o-1"), steps(&ok));
    let sold_out = [
        ("charge", "succeeded"),
        ("reserve", "failed"),
        ("refund", "succeeded"),
    ];
    assert_eq!(saga(&example, "o-2"), steps(&sold_out));
    let no_address = [
        ("charge", "succeeded"),
        ("reserve", "succeeded"),
        ("ship", "failed"),
        ("release", "succeeded"),
        ("refund", "succeeded"),
    ];
    assert_eq!(saga(&example, "o-3"), steps(&no_address));

    // The refund knows what was charged and what was released.
    let refund = "o-3/charge/then/reserve/reserve/then/ship/ship/then/release/release/then/refund";
    let node: serde_json::Value =
        serde_json::from_str(&example.run(&["get", refund, "--json"])).unwrap();
    assert_eq!(node["output"]["charged"], 45);
    assert_eq!(node["output"]["released"], 45);
    assert_eq!(node["output"]["refunded"], 45);
    assert!(node["output"].get("shipped").is_none());
}
