//! What the fan_out crash tests check once their runs are over, whatever the transport.

use example_support::Example;

/// Children of `batch-1` journaled with `status` (out of `children`).
pub fn journaled(example: &Example, status: &str, children: usize) -> usize {
    example.children("batch-1", "square", status, children * 2)
}

/// Every one of `children` completed once and none is left queued; the fan-in's
/// continuation exists once and succeeded, and wrote one total with every square.
pub fn every_child_once_and_one_fan_in(example: &Example, children: usize) {
    assert_eq!(
        journaled(example, "succeeded", children),
        children,
        "every child completed"
    );
    assert_eq!(
        journaled(example, "queued", children),
        0,
        "nothing left queued"
    );
    let continuation = example.run(&["get", "batch-1/split/then/sum", "--json"]);
    assert_eq!(
        continuation.lines().count(),
        1,
        "the continuation exists once: {continuation}"
    );
    assert!(
        continuation.contains(r#""status":"succeeded""#),
        "{continuation}"
    );
    let expected: u64 = (1..=children as u64).map(|n| n * n).sum();
    let lines = example.json_lines("out/totals.jsonl");
    assert_eq!(lines.len(), 1, "the fan-in fired once: {lines:?}");
    assert_eq!(lines[0]["total"], expected);
    assert_eq!(lines[0]["succeeded"], children);
}
