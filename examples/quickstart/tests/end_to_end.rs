//! The quickstart end to end through its binary: run, summary, accepted and dead-letter
//! files, the `process` debug command, and a settings error.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A copy of the example's `tasks.toml` and `orders.jsonl` in a fresh directory.
fn example_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in ["tasks.toml", "orders.jsonl"] {
        std::fs::copy(here.join(file), dir.path().join(file)).unwrap();
    }
    let config = dir.path().join("tasks.toml");
    (dir, config)
}

fn quickstart(config: &Path, args: &[&str]) -> Output {
    quickstart_with(config, args, &[])
}

/// Runs the quickstart with `env` set.
fn quickstart_with(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quickstart"))
        .arg("--config")
        .arg(config)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// The stdout of a run that must succeed.
fn succeeded(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn validates_the_orders_and_writes_accepted_and_rejected_files() {
    let (dir, config) = example_copy();
    let stdout = succeeded(&quickstart(&config, &[]));
    assert!(
        stdout.contains(
            "task validate_orders: processed=22 succeeded=15 failed=7 business=7 system=0 timeout=0 \
             retries=2 dispatched=15 dead_lettered=7 requeued=0 dropped=0 exception_failed=0 settle_failed=0 settle_stale=0 abandoned_attempts=0 ended=exhausted"
        ),
        "{stdout}"
    );

    let accepted = json_lines(&dir.path().join("out/accepted.jsonl"));
    assert_eq!(accepted.len(), 15);
    let mut ids: Vec<&str> = accepted
        .iter()
        .map(|a| a["order_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 15, "each order accepted once: {ids:?}");
    for flaky in ["o-1004", "o-1011"] {
        assert!(ids.contains(&flaky), "{flaky} succeeds on retry");
    }

    let rejected = json_lines(&dir.path().join("out/rejected.jsonl"));
    assert_eq!(rejected.len(), 7);
    for letter in &rejected {
        assert_eq!(letter["task"], "validate_orders");
        assert_eq!(letter["category"], "business");
        assert_eq!(letter["attempts"], 1, "business errors are never retried");
    }
    let errors: Vec<&str> = rejected
        .iter()
        .map(|r| r["error"].as_str().unwrap())
        .collect();
    for expected in [
        "currency \"JPY\" is not accepted",
        "does not match its lines",
        "has no items",
        "both must be positive",
        "exceeds the limit",
        "is a duplicate of transaction",
        "is not a valid",
    ] {
        assert!(
            errors.iter().any(|e| e.contains(expected)),
            "{expected:?} not in {errors:#?}"
        );
    }
    // The truncated line keeps its original bytes in the dead letter.
    let broken = rejected
        .iter()
        .find(|r| r["error"].as_str().unwrap().contains("is not a valid"))
        .unwrap();
    let original = std::fs::read_to_string(dir.path().join("orders.jsonl")).unwrap();
    let payload = broken["payload"]
        .as_str()
        .expect("a non-JSON payload is kept as a string");
    assert!(original.lines().any(|line| line == payload));
}

#[test]
fn process_prints_every_attempt_of_a_flaky_order() {
    let (_dir, config) = example_copy();
    let flaky = r#"{"id":"o-1004","customer":"c-4","currency":"EUR","items":[{"sku":"SKU-4","quantity":2,"unit_price_cents":1290}],"total_cents":2580}"#;
    let out = quickstart(&config, &["process", "validate_orders", "--payload", flaky]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("process   attempt 1: system error: inventory service unavailable"),
        "{stdout}"
    );
    assert!(stdout.contains("process   attempt 2: ok"), "{stdout}");
    assert!(stdout.contains("success   attempt 1: ok"), "{stdout}");
    assert!(stdout.contains("settlement: ack"), "{stdout}");

    let invalid = r#"{"id":"o-1","customer":"c","currency":"JPY","items":[],"total_cents":0}"#;
    let out = quickstart(
        &config,
        &["process", "validate_orders", "--payload", invalid],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("process   attempt 1: business error: order o-1: currency"),
        "{stdout}"
    );
    assert!(!stdout.contains("attempt 2"), "{stdout}");
    assert!(stdout.contains("exception attempt 1: ok"), "{stdout}");
    assert!(stdout.contains("settlement: dead_letter"), "{stdout}");
}

#[test]
fn a_bad_setting_is_a_config_error_naming_the_key() {
    let (_dir, config) = example_copy();
    let toml = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        toml.replace("max_total_cents = 50000", "max_total_cents = \"lots\""),
    )
    .unwrap();
    let out = quickstart(&config, &["validate"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "tasks.validate_orders.settings.max_total_cents: invalid type: string \"lots\""
        ),
        "{stderr}"
    );
}

#[test]
fn list_shows_the_task_and_the_binarys_pieces() {
    let (_dir, config) = example_copy();
    let out = quickstart(&config, &["list"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("validate_orders      type=order_validation role=hybrid model=async workers=1 input=orders (file) output=accepted (file)"), "{stdout}");
    assert!(
        stdout.contains("order_validation     role=hybrid model=async"),
        "{stdout}"
    );
    // `cargo test -p quickstart` builds ergon-runner with the quickstart's features
    // (file, memory-kv, local for the tests); `cargo test --workspace` unifies them with
    // the stock binary's (every kind).
    let line = |prefix: &str| {
        let line = stdout.lines().find(|l| l.starts_with(prefix));
        line.unwrap_or_else(|| panic!("{stdout}")).to_owned()
    };
    let connectors = line("connector types: ");
    assert!(
        connectors.contains("file") && connectors.contains("local"),
        "{stdout}"
    );
    assert!(line("service types: ").contains("memory_kv"), "{stdout}");
}

#[test]
fn a_piece_the_build_left_out_is_a_config_error_naming_the_feature() {
    let (_dir, config) = example_copy();
    let listing = String::from_utf8_lossy(&quickstart(&config, &["list"]).stdout).into_owned();
    let toml = std::fs::read_to_string(&config).unwrap();

    std::fs::write(
        &config,
        format!("{toml}\n[connectors.broker]\ntype = \"rabbitmq\"\nqueue = \"q\"\n"),
    )
    .unwrap();
    let out = quickstart(&config, &["validate"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if listing.contains("rabbitmq") {
        assert_eq!(out.status.code(), Some(0), "{stderr}"); // unified with the stock build
    } else {
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(
                "connectors.broker.type: unknown connector type `rabbitmq`; available: file, local (`rabbitmq` is built in behind ergon-runner's cargo feature `rabbitmq`, which this binary was built without)"
            ),
            "{stderr}"
        );
    }

    // Without the `otlp` feature an OTLP endpoint is refused, not ignored.
    std::fs::write(
        &config,
        format!("[telemetry]\nendpoint = \"http://127.0.0.1:4318\"\n\n{toml}"),
    )
    .unwrap();
    let out = quickstart(&config, &["validate"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(2) {
        assert!(
            stderr.contains("telemetry.endpoint: \"http://127.0.0.1:4318\" asks for OTLP export, but this binary was built without ergon-runner's `otlp` feature"),
            "{stderr}"
        );
    } else {
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert!(
            listing.contains("rabbitmq"),
            "only the stock build has otlp: {listing}"
        );
    }
    if out.status.code() == Some(2) {
        std::fs::write(&config, &toml).unwrap();
        let endpoint = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")];
        let out = quickstart_with(&config, &[], &endpoint);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("OTEL_EXPORTER_OTLP_ENDPOINT=\"http://127.0.0.1:4318\" asks for OTLP export, but this binary was built without ergon-runner's `otlp` feature"),
            "{stderr}"
        );
    }
}

#[test]
fn streams_the_orders_from_the_embedded_durable_queue() {
    let dir = tempfile::tempdir().unwrap();
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in ["streaming.toml", "orders.jsonl"] {
        std::fs::copy(here.join(file), dir.path().join(file)).unwrap();
    }
    let config = dir.path().join("streaming.toml");
    let orders = dir.path().join("orders.jsonl");
    let out = quickstart(
        &config,
        &[
            "queue",
            "enqueue",
            "orders",
            "--file",
            orders.to_str().unwrap(),
        ],
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("enqueued 22 transaction(s)"),
        "{out:?}"
    );

    // Streaming never ends on its own: the test stops it after the 22 orders.
    let limit = [("ERGON__TASKS__VALIDATE_ORDERS__POLICY__LOOP__LIMIT", "22")];
    let stdout = succeeded(&quickstart_with(&config, &[], &limit));
    assert!(
        stdout.contains("processed=22 succeeded=15 failed=7"),
        "{stdout}"
    );
    assert_eq!(json_lines(&dir.path().join("out/accepted.jsonl")).len(), 15);

    let stats =
        String::from_utf8_lossy(&quickstart(&config, &["queue", "stats"]).stdout).to_string();
    assert!(
        stats.contains("ready=0 in_flight=0 expired=0 dead=7"),
        "{stats}"
    );
    let dead = quickstart(&config, &["queue", "dead-letters", "orders"]);
    let dead: Vec<serde_json::Value> = String::from_utf8_lossy(&dead.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(dead.len(), 7);
    assert!(
        dead.iter().all(|d| d["failure"]["category"] == "business"),
        "{dead:?}"
    );
}
