//! The split_orders example end to end through its binary: the line items of every good
//! order, none of a bad one, the bad orders dead-lettered with their error, the summary.

use std::path::Path;
use std::process::Command;

fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn splits_the_good_orders_and_dead_letters_the_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in ["tasks.toml", "orders.jsonl"] {
        std::fs::copy(here.join(file), dir.path().join(file)).unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_split_orders"))
        .arg("--config")
        .arg(dir.path().join("tasks.toml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(
            "task split_orders: processed=10 succeeded=8 failed=2 business=2 system=0 timeout=0 \
             retries=0 dispatched=16 dead_lettered=2"
        ),
        "{stdout}"
    );

    let items = json_lines(&dir.path().join("out/line_items.jsonl"));
    let mut lines: Vec<(String, u64)> = items
        .iter()
        .map(|i| {
            (
                i["order_id"].as_str().unwrap().to_owned(),
                i["line"].as_u64().unwrap(),
            )
        })
        .collect();
    lines.sort();
    let expected: Vec<(String, u64)> = [
        ("o-2001", 2),
        ("o-2002", 1),
        ("o-2003", 3),
        ("o-2005", 2),
        ("o-2006", 1),
        ("o-2008", 4),
        ("o-2009", 1),
        ("o-2010", 2),
    ]
    .into_iter()
    .flat_map(|(order, count)| (1..=count).map(move |line| (order.to_owned(), line)))
    .collect();
    assert_eq!(lines, expected);
    let chairs = items.iter().find(|i| i["sku"] == "CHAIR-OAK").unwrap();
    assert_eq!(chairs["line_total_cents"], 35600);
    assert_eq!(chairs["customer"], "c-09");

    // o-2007 has a good first line, but its bad second line sends nothing of it.
    assert!(items.iter().all(|i| i["order_id"] != "o-2007"));
    let rejected = json_lines(&dir.path().join("out/rejected.jsonl"));
    let errors: Vec<&str> = rejected
        .iter()
        .map(|r| r["error"].as_str().unwrap())
        .collect();
    assert_eq!(
        errors,
        [
            "order o-2004 has no items",
            "order o-2007 line 2 (PEN-BLU) has quantity 0"
        ]
    );
    assert!(
        rejected
            .iter()
            .all(|r| r["step"] == "process" && r["category"] == "business")
    );
}
