//! The `spool` connector through the example's binary: dispatch, a finite run, requeues
//! that come back with their count, dead letters with their failure, config errors.

mod common;

use std::path::Path;

use common::{deliveries_of, field, files, log, run_bounded, succeed};

fn failure(spool: &Path, id: &str) -> serde_json::Value {
    let path = spool.join("dead").join(format!("{id}.failure.json"));
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn a_finite_run_settles_every_file_by_its_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let lines: String = (1..=5)
        .map(|n| format!("{{\"n\":{n}}}\n"))
        .chain([
            "{\"fail_until\":2}\n".to_owned(),
            "{\"fail_until\":99}\n".to_owned(),
        ])
        .collect();
    std::fs::write(root.join("lines.jsonl"), lines).unwrap();
    // A user drops files into a spool's ready/ by hand too.
    let rejects = root.join("rejects");
    std::fs::create_dir_all(rejects.join("ready")).unwrap();
    std::fs::write(
        rejects.join("ready/bad"),
        r#"{"reject":"no such customer"}"#,
    )
    .unwrap();
    std::fs::write(rejects.join("ready/fine"), "{}").unwrap();
    std::fs::write(rejects.join("ready/huge"), vec![b' '; 100]).unwrap();

    let config = root.join("tasks.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[connectors.lines]
type = "file"
path = "lines.jsonl"

[connectors.inbox]
type = "spool"
path = "inbox"

[connectors.rejects]
type = "spool"
path = "rejects"
max_bytes = 64

[tasks.feed]
type = "forward"
input = "lines"
output = "inbox"

[tasks.retrying]
type = "record"
input = "inbox"
settings = {{ log = "{root}/retrying.log" }}
policy.on_failure = "requeue"
policy.transaction.max_deliveries = 3
policy.process.retry.max_attempts = 1
policy.fetch.empty.backoff = "10ms"

[tasks.strict]
type = "record"
input = "rejects"
settings = {{ log = "{root}/strict.log" }}
"#,
            root = root.display()
        ),
    )
    .unwrap();

    // Dispatch: the file connector's lines become ready files of the spool.
    let stdout = succeed(&config, &["run", "feed"]);
    assert_eq!(field(&stdout, "feed", "succeeded"), 7, "{stdout}");
    let inbox = root.join("inbox");
    assert_eq!(
        files(&inbox.join("ready")),
        (1..=7)
            .map(|n| format!("lines.jsonl:{n}@0"))
            .collect::<Vec<_>>()
    );

    let stdout = succeed(&config, &["run", "retrying", "strict"]);

    // Five good files once; one requeued once and then fine; one failing until it was
    // delivered more than max_deliveries = 3 times.
    let retrying = log(&root.join("retrying.log"));
    for n in 1..=5 {
        assert_eq!(deliveries_of(&retrying, &format!("lines.jsonl:{n}")), [1]);
    }
    assert_eq!(deliveries_of(&retrying, "lines.jsonl:6"), [1, 2]);
    assert_eq!(deliveries_of(&retrying, "lines.jsonl:7"), [1, 2, 3]);
    assert_eq!(field(&stdout, "retrying", "requeued"), 4, "{stdout}");
    assert_eq!(field(&stdout, "retrying", "dead_lettered"), 1, "{stdout}");
    assert_eq!(field(&stdout, "retrying", "settle_stale"), 0, "{stdout}");
    assert!(files(&inbox.join("ready")).is_empty());
    assert!(files(&inbox.join("processing")).is_empty());
    assert_eq!(
        files(&inbox.join("dead")),
        ["lines.jsonl:7", "lines.jsonl:7.failure.json"]
    );
    let dead = failure(&inbox, "lines.jsonl:7");
    assert_eq!(dead["deliveries"], 4);
    assert_eq!(dead["step"], "fetch");
    assert_eq!(dead["attempts"], 0);
    assert!(
        dead["error"]
            .as_str()
            .unwrap()
            .contains("delivered 4 times, more than transaction.max_deliveries = 3"),
        "{dead}"
    );
    assert_eq!(
        std::fs::read_to_string(inbox.join("dead/lines.jsonl:7")).unwrap(),
        "{\"fail_until\":99}",
        "the payload is kept as it was"
    );

    // Dead-lettered by the task with its error; a file too large is dead-lettered by the
    // connector at fetch, never delivered.
    let strict = log(&root.join("strict.log"));
    assert_eq!(deliveries_of(&strict, "bad"), [1]);
    assert_eq!(deliveries_of(&strict, "fine"), [1]);
    assert!(deliveries_of(&strict, "huge").is_empty());
    assert_eq!(field(&stdout, "strict", "dead_lettered"), 1, "{stdout}");
    assert_eq!(field(&stdout, "strict", "succeeded"), 1, "{stdout}");
    let rejected = failure(&rejects, "bad");
    assert_eq!(rejected["category"], "business");
    assert_eq!(rejected["step"], "process");
    assert_eq!(rejected["task"], "strict");
    assert_eq!(rejected["deliveries"], 1);
    assert_eq!(rejected["attempts"], 1);
    assert!(
        rejected["error"]
            .as_str()
            .unwrap()
            .contains("no such customer")
    );
    let huge = failure(&rejects, "huge");
    assert!(
        huge["error"]
            .as_str()
            .unwrap()
            .contains("100 bytes, more than max_bytes = 64"),
        "{huge}"
    );
    assert_eq!(files(&rejects.join("dead")).len(), 4);
}

#[test]
fn config_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tasks.toml");
    for (table, key) in [
        ("path = \"in\"\nmax_bytes = 0", "connectors.inbox.max_bytes"),
        ("path = \"in\"\npth = \"x\"", "connectors.inbox.pth"),
        ("max_bytes = 10", "connectors.inbox.path"),
    ] {
        std::fs::write(
            &config,
            format!(
                "[connectors.inbox]\ntype = \"spool\"\n{table}\n\n\
                 [tasks.t]\ntype = \"record\"\ninput = \"inbox\"\nsettings = {{ log = \"l\" }}\n"
            ),
        )
        .unwrap();
        let out = run_bounded(&config, &["validate"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{table}: {stderr}");
        assert!(stderr.contains(key), "{table}: {stderr}");
    }
}

#[test]
fn validate_connect_checks_the_spool_directories() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tasks.toml");
    std::fs::write(
        &config,
        "[connectors.inbox]\ntype = \"spool\"\npath = \"in\"\n\n\
         [tasks.t]\ntype = \"record\"\ninput = \"inbox\"\nsettings = { log = \"l\" }\n",
    )
    .unwrap();
    succeed(&config, &["validate", "--connect"]);
    assert_eq!(
        files(&dir.path().join("in")),
        ["dead", "processing", "ready", "tmp"]
    );
}
