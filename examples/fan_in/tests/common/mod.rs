//! What the fan_in tests check once their runs are over, whatever the transport: the
//! run's summary, the journal read through the example's own commands (`list`, `get`),
//! and the totals file.
#![allow(dead_code, reason = "each test binary uses a different part")]

use std::collections::{BTreeMap, BTreeSet};

use example_support::Example;
use serde_json::Value;

/// The order every test splits.
pub const ORDER: &str = "order-1";

/// `aggregate`'s `batch_size` in both config files.
pub const BATCH_SIZE: u64 = 10;

/// A batches file of one order of `items` items, written into the copy.
pub fn write_order(example: &Example, items: u64) {
    let line = format!("{{\"id\":\"{ORDER}\",\"items\":{items}}}\n");
    std::fs::write(example.path("batches.jsonl"), line).unwrap();
}

/// Items of the order journaled with `status` by `work` (out of `items`).
pub fn items_journaled(example: &Example, status: &str, items: u64) -> usize {
    example.children(ORDER, "work", status, limit(items))
}

/// How many journal records `list` is asked for: every item, batch and total, with room
/// to spare so that a duplicate would show.
fn limit(items: u64) -> usize {
    usize::try_from(items * 2 + 100).unwrap()
}

/// The summary of one run that did the whole order of `items` items, `BATCH_SIZE` at a
/// time, in one total.
pub fn one_run_did_it_all(summary: &str, items: u64) {
    let batches = items.div_ceil(BATCH_SIZE);
    for line in [
        "task split: processed=1 succeeded=1".to_owned(),
        format!("task work: processed={items} succeeded={items}"),
        format!("task aggregate: processed={batches} succeeded={batches}"),
        "task total: processed=1 succeeded=1".to_owned(),
    ] {
        assert!(summary.contains(&line), "{line}: {summary}");
    }
}

/// 1² + 2² + … + items².
pub fn sum_of_squares(items: u64) -> u64 {
    (1..=items).map(|n| n * n).sum()
}

/// The id of `aggregate`'s batch `seq` of the order.
pub fn batch_id(seq: u64) -> String {
    format!("{ORDER}/aggregate/batch/items/{seq}")
}

/// The children of the order in the journal (`list --parent order-1 --json`), by task.
fn journaled_by_task(example: &Example, items: u64) -> BTreeMap<String, Vec<Value>> {
    let limit = limit(items).to_string();
    let listed = example.run(&["list", "--parent", ORDER, "--json", "--limit", &limit]);
    let mut by_task: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for line in listed.lines() {
        let record: Value = serde_json::from_str(line).expect("a JSON line");
        let task = record["task"].as_str().unwrap_or_default().to_owned();
        by_task.entry(task).or_default().push(record);
    }
    by_task
}

/// The ids of `records`, checked to be distinct.
fn distinct_ids(task: &str, records: &[Value]) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let mut twice = Vec::new();
    for record in records {
        let id = record["id"].as_str().unwrap_or_default().to_owned();
        if !ids.insert(id.clone()) {
            twice.push(id);
        }
    }
    assert!(twice.is_empty(), "{task}: journaled twice: {twice:?}");
    ids
}

/// The run of an order of `items` is over and nothing was lost or done twice: the split
/// counted every item; every item is journaled once and succeeded; `aggregate`'s batches
/// are exactly `0..ceil(items / 10)`, each once and succeeded, their sums adding up to
/// every square once; `total` received one batch and wrote one line with every batch sum
/// (cut for `reason`), and nothing of the order is left queued or failed.
pub fn every_item_once_and_one_total(example: &Example, items: u64, reason: &str) {
    let batches = items.div_ceil(BATCH_SIZE);
    let expected = sum_of_squares(items);

    let split = example.run(&["get", ORDER, "--json"]);
    assert_eq!(split.lines().count(), 1, "the order once: {split}");
    let split: Value = serde_json::from_str(split.trim()).unwrap();
    assert_eq!(split["status"], "succeeded", "{split}");
    assert_eq!(
        split["children"], items,
        "split counted every item: {split}"
    );

    let by_task = journaled_by_task(example, items);
    let not_succeeded: Vec<String> = by_task
        .values()
        .flatten()
        .filter(|record| record["status"] != "succeeded")
        .map(|record| format!("{} [{}] {}", record["id"], record["task"], record["status"]))
        .collect();
    assert!(
        not_succeeded.is_empty(),
        "every child of the order succeeded, none is left queued: {} are not: {:?}",
        not_succeeded.len(),
        &not_succeeded[..not_succeeded.len().min(20)]
    );
    let tasks: Vec<(&String, usize)> = by_task.iter().map(|(t, r)| (t, r.len())).collect();
    assert!(
        tasks
            .iter()
            .all(|(t, _)| ["aggregate", "total", "work"].contains(&t.as_str())),
        "the order's children by task: {tasks:?}"
    );
    let of = |task: &str| by_task.get(task).map_or(&[][..], Vec::as_slice);

    let work = distinct_ids("work", of("work"));
    let missing: Vec<u64> = (1..=items)
        .filter(|n| !work.contains(&format!("{ORDER}/item/{n}")))
        .collect();
    assert!(missing.is_empty(), "items never journaled: {missing:?}");
    assert_eq!(work.len() as u64, items, "every item once, no other");

    let aggregate = of("aggregate");
    let ids = distinct_ids("aggregate", aggregate);
    let wanted: BTreeSet<String> = (0..batches).map(batch_id).collect();
    assert_eq!(
        ids.difference(&wanted).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "batches cut beyond the order's {batches}"
    );
    assert_eq!(
        wanted.difference(&ids).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "batches never journaled"
    );
    let sums: u64 = aggregate
        .iter()
        .map(|record| record["output"].as_u64().expect("a batch sum"))
        .sum();
    assert_eq!(sums, expected, "the batches hold every square once");
    let last = example.run(&["get", &batch_id(batches - 1), "--json"]);
    assert_eq!(last.lines().count(), 1, "the last batch once: {last}");
    assert!(last.contains(r#""status":"succeeded""#), "{last}");
    let beyond = example
        .command(&["get", &batch_id(batches)])
        .output()
        .unwrap();
    assert_eq!(beyond.status.code(), Some(1), "no batch {batches}");

    let totals = distinct_ids("total", of("total"));
    let total_batch = format!("{ORDER}/total/batch/items/0");
    assert_eq!(
        totals.iter().collect::<Vec<_>>(),
        [&total_batch],
        "total received one batch, of the {batches} batch sums (all {batches} succeeded, \
         adding up to {sums}): the journal never cut it, or cut it twice"
    );

    let path = example.path("out/totals.jsonl");
    assert!(
        path.exists(),
        "total never wrote its line ({total_batch} succeeded: {})",
        example.run(&["get", &total_batch, "--json"])
    );
    assert_eq!(
        example.json_lines("out/totals.jsonl"),
        [
            serde_json::json!({"order": ORDER, "batches": batches, "reason": reason, "total": expected})
        ],
        "one total, of every batch"
    );
}
