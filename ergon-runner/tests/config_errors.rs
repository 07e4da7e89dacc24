//! Every kind of config error exits with code 2 and names the file, the key path and what
//! is allowed. Runs the real `ergon-runner` binary on files in a temporary directory.

use std::path::PathBuf;
use std::process::{Command, Output};

const VALID: &str = r#"
[connectors.orders]
type = "memory"

[connectors.out]
type = "memory"

[tasks.bridge]
type = "forward"
input = "orders"
output = "out"
"#;

struct Case {
    dir: tempfile::TempDir,
    file: PathBuf,
}

fn write(toml: &str) -> Case {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tasks.toml");
    std::fs::write(&file, toml).unwrap();
    Case { dir, file }
}

fn runner(case: &Case, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ergon-runner"));
    command.arg("--config").arg(&case.file).args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    command.current_dir(case.dir.path()).output().unwrap()
}

/// Asserts exit code 2 and that stderr names the file and contains every `expected` part.
fn assert_config_error(toml: &str, env: &[(&str, &str)], expected: &[&str]) {
    let case = write(toml);
    let out = runner(&case, &["validate"], env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains(&format!("{}:", case.file.display())),
        "file not named: {stderr}"
    );
    for part in expected {
        assert!(stderr.contains(part), "missing {part:?} in: {stderr}");
    }
}

#[test]
fn a_valid_file_validates() {
    let case = write(VALID);
    let out = runner(&case, &["validate"], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("ok (1 task(s), 2 connector(s), 0 service(s))"),
        "{stdout}"
    );
}

#[test]
fn toml_syntax_error() {
    assert_config_error(
        "[tasks.bridge\ntype = 1",
        &[],
        &["TOML parse error", "line 1"],
    );
}

#[test]
fn missing_file() {
    let case = write("");
    let out = Command::new(env!("CARGO_BIN_EXE_ergon-runner"))
        .args(["--config", "does-not-exist.toml", "validate"])
        .current_dir(case.dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("does-not-exist.toml: cannot read the config file"),
        "{stderr}"
    );
}

#[test]
fn unknown_top_level_and_task_keys() {
    assert_config_error(
        &format!("{VALID}\n[runner]\nx = 1\n"),
        &[],
        &[
            "unknown field `runner`",
            "expected one of `tasks`, `connectors`, `services`, `journal`, `workflows`, `telemetry`",
        ],
    );
    assert_config_error(
        &format!("{VALID}workerz = 2\n"),
        &[],
        &["tasks.bridge.workerz: unknown field `workerz`", "`workers`"],
    );
}

#[test]
fn unknown_policy_key_has_the_full_path() {
    assert_config_error(
        &format!("{VALID}\n[tasks.bridge.policy.process.retry]\nmax_attempt = 3\n"),
        &[],
        &[
            "tasks.bridge.policy.process.retry.max_attempt: unknown field `max_attempt`",
            "`max_attempts`",
        ],
    );
}

#[test]
fn wrong_type() {
    assert_config_error(
        &format!("{VALID}workers = \"two\"\n"),
        &[],
        &["tasks.bridge.workers: invalid type: string \"two\", expected usize"],
    );
}

#[test]
fn bad_duration() {
    assert_config_error(
        &format!("{VALID}\n[tasks.bridge.policy.process.retry]\ntimeout = \"5 parsecs\"\n"),
        &[],
        &[
            "tasks.bridge.policy.process.retry.timeout",
            "invalid duration \"5 parsecs\"",
            "\"250ms\"",
        ],
    );
}

#[test]
fn impossible_policy_value() {
    assert_config_error(
        &format!("{VALID}\n[tasks.bridge.policy.process.retry]\nbackoff_multiplier = 0.5\n"),
        &[],
        &["tasks.bridge.policy.process.retry.backoff_multiplier: must be a number >= 1.0, got 0.5"],
    );
}

#[test]
fn unknown_connector_type() {
    assert_config_error(
        &VALID.replace(
            "type = \"memory\"\n\n[connectors.out]",
            "type = \"kafka\"\n\n[connectors.out]",
        ),
        &[],
        &[
            "connectors.orders.type: unknown connector type `kafka`; available:",
            "memory",
        ],
    );
}

#[test]
fn connector_without_type() {
    assert_config_error(
        &VALID.replace(
            "[connectors.out]\ntype = \"memory\"",
            "[connectors.out]\npath = \"x\"",
        ),
        &[],
        &["connectors.out: missing `type`; available connector types:"],
    );
}

#[test]
fn unknown_task_implementation() {
    assert_config_error(
        &VALID.replace("type = \"forward\"", "type = \"forwrd\""),
        &[],
        &[
            "tasks.bridge.type: unknown task implementation `forwrd`; available in this binary: forward",
        ],
    );
}

#[test]
fn reference_to_an_undefined_connector_or_service() {
    assert_config_error(
        &VALID.replace("input = \"orders\"", "input = \"order\""),
        &[],
        &["tasks.bridge.input: no connector named `order`; defined: orders, out"],
    );
    assert_config_error(
        &format!("{VALID}services = [\"rates\"]\n"),
        &[],
        &["tasks.bridge.services.0: no service named `rates`; defined: (none)"],
    );
}

#[test]
fn a_consumer_without_input() {
    assert_config_error(
        &VALID.replace("input = \"orders\"\n", ""),
        &[],
        &["tasks.bridge.input: a consumer task needs an input connector"],
    );
}

#[test]
fn environment_overrides_reach_nested_snake_case_keys() {
    assert_config_error(
        VALID,
        &[(
            "ERGON__TASKS__BRIDGE__POLICY__PROCESS__RETRY__MAX_ATTEMPTS",
            "0",
        )],
        &["tasks.bridge.policy.process.retry.max_attempts: must be at least 1"],
    );
    assert_config_error(
        VALID,
        &[("ERGON__TASKS__BRIDGE__WORKERS", "0")],
        &["tasks.bridge.workers: must be at least 1"],
    );
}

#[test]
fn unset_variable_without_default() {
    let toml = VALID.replace(
        "[connectors.out]\ntype = \"memory\"",
        "[connectors.out]\ntype = \"${OUT_TYPE}\"",
    );
    assert_config_error(
        &toml,
        &[],
        &["connectors.out.type: environment variable OUT_TYPE is not set"],
    );
    // With the variable set, or a default, the same file is valid.
    let case = write(&toml);
    let out = runner(&case, &["validate"], &[("OUT_TYPE", "memory")]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let case = write(&VALID.replace("type = \"forward\"", "type = \"${TASK_TYPE:-forward}\""));
    assert_eq!(runner(&case, &["validate"], &[]).status.code(), Some(0));
}

#[test]
fn running_an_unknown_task_name() {
    let case = write(VALID);
    let out = runner(&case, &["run", "nope"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no task named `nope`; defined: bridge"),
        "{stderr}"
    );
}

#[test]
fn telemetry_table_errors_name_the_key() {
    assert_config_error(
        &format!("{VALID}\n[telemetry]\nprotocol = \"grpc\"\n"),
        &[],
        &[
            "telemetry.protocol",
            "unsupported OTLP protocol \"grpc\"",
            "http/protobuf",
        ],
    );
    assert_config_error(
        &format!("{VALID}\n[telemetry]\nsampling_ratio = 1.5\n"),
        &[],
        &["telemetry.sampling_ratio", "outside 0.0..=1.0"],
    );
    assert_config_error(
        &format!("{VALID}\n[telemetry]\nendpoint = \"127.0.0.1:4318\"\n"),
        &[],
        &["telemetry.endpoint", "not an http:// or https:// URL"],
    );
    assert_config_error(
        &format!("{VALID}\n[telemetry.http]\nport = 9464\nstall_afterr = \"1s\"\n"),
        &[],
        &[
            "telemetry.http.stall_afterr: unknown field",
            "`stall_after`",
        ],
    );
    assert_config_error(
        &format!("{VALID}\n[telemetry.logs]\nformat = \"xml\"\n"),
        &[],
        &["telemetry.logs.format", "unknown variant `xml`", "`json`"],
    );
}

#[test]
fn a_bad_otel_variable_stops_the_run_with_its_name() {
    let case = write(&format!("{VALID}\n[tasks.bridge.policy.loop]\nlimit = 1\n"));
    let out = runner(&case, &["run"], &[("OTEL_TRACES_SAMPLER_ARG", "lots")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("OTEL_TRACES_SAMPLER_ARG=\"lots\" is not a ratio"),
        "{stderr}"
    );
}

/// Appends `key = value` to the table `[tasks.bridge.policy.TABLE]`.
fn policy(table: &str, key: &str, value: &str) -> String {
    format!("{VALID}\n[tasks.bridge.policy.{table}]\n{key} = {value}\n")
}

#[test]
fn every_size_and_count_has_a_maximum() {
    // These passed `validate`, then aborted or panicked `run` (allocation failure, capacity
    // overflow). Each is refused with its key and its limit.
    for (table, key, value, limit) in [
        ("loop", "concurrency", "4294967296", "at most 65536"),
        (
            "loop",
            "concurrency",
            "9223372036854775807",
            "at most 65536",
        ),
        ("fetch", "batch_size", "4294967296", "at most 65536"),
        (
            "fetch",
            "batch_size",
            "9223372036854775807",
            "at most 65536",
        ),
        (
            "loop",
            "limit",
            "9223372036854775807",
            "at most 1000000000000000",
        ),
        (
            "process.retry",
            "max_attempts",
            "4294967295",
            "at most 1000000",
        ),
        ("fetch.retry", "max_attempts", "1000001", "at most 1000000"),
    ] {
        assert_config_error(
            &policy(table, key, value),
            &[],
            &[&format!(
                "tasks.bridge.policy.{table}.{key}: must be {limit}, got {value}"
            )],
        );
    }
    assert_config_error(
        &format!("{VALID}workers = 4294967296\n"),
        &[],
        &["tasks.bridge.workers: must be at most 1024, got 4294967296"],
    );
    assert_config_error(
        &format!(
            "{VALID}\n[services.seen]\ntype = \"memory_kv\"\nmax_entries = 9223372036854775807\n"
        ),
        &[],
        &["services.seen.max_entries: must be at most 1000000000"],
    );
    assert_config_error(
        &format!(
            "{VALID}\n[connectors.broker]\ntype = \"rabbitmq\"\nqueue = \"q\"\nprefetch = 65536\n"
        ),
        &[],
        &["connectors.broker.prefetch", "expected u16"],
    );
    // The same bound holds for a value from the environment.
    assert_config_error(
        VALID,
        &[(
            "ERGON__TASKS__BRIDGE__POLICY__LOOP__CONCURRENCY",
            "4294967296",
        )],
        &["tasks.bridge.policy.loop.concurrency: must be at most 65536"],
    );
    // At the limit is fine.
    let case = write(&policy("loop", "concurrency", "65536"));
    let out = runner(&case, &["validate"], &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn durations_are_at_most_thirty_days() {
    for (table, key) in [
        ("loop", "timeout"),
        ("loop", "drain_timeout"),
        ("process.retry", "timeout"),
        ("fetch.empty", "backoff_cap"),
    ] {
        assert_config_error(
            &policy(table, key, "\"31d\""),
            &[],
            &[&format!(
                "tasks.bridge.policy.{table}.{key}: duration \"31d\" is too long: at most 30days"
            )],
        );
    }
    assert_config_error(
        &format!("{VALID}\n[connectors.queue]\ntype = \"local\"\nlease = \"100000000000s\"\n"),
        &[],
        &["connectors.queue.lease: duration \"100000000000s\" is too long"],
    );
    let case = write(&policy("loop", "timeout", "\"30d\""));
    assert_eq!(runner(&case, &["validate"], &[]).status.code(), Some(0));
}

#[test]
fn a_table_written_as_an_array_is_refused() {
    // `loop = [1, 2]` was read as concurrency 1, limit 2.
    assert_config_error(
        &format!("{VALID}policy = {{ loop = [1, 2] }}\n"),
        &[],
        &[
            "tasks.bridge.policy.loop: invalid type: array, expected a table with the keys",
            "`concurrency`, `limit`",
        ],
    );
    assert_config_error(
        &format!("{VALID}\n[tasks.bridge.policy.process]\nretry = [3, \"1s\"]\n"),
        &[],
        &["tasks.bridge.policy.process.retry: invalid type: array, expected a table"],
    );
    assert_config_error(
        &format!("{VALID}\n[telemetry]\nhttp = [9464]\n"),
        &[],
        &["telemetry.http: invalid type: array, expected a table with the keys `port`"],
    );
}

#[test]
fn nan_and_infinities_are_refused_with_their_key() {
    // They were taken as unset (JSON has no NaN: they became `null`).
    for value in ["nan", "inf", "-inf", "+nan"] {
        assert_config_error(
            &policy("loop", "limit", value),
            &[],
            &[
                "tasks.bridge.policy.loop.limit: ",
                "must be finite (no nan or inf)",
            ],
        );
        assert_config_error(
            VALID,
            &[("ERGON__TASKS__BRIDGE__POLICY__LOOP__LIMIT", value)],
            &[
                "tasks.bridge.policy.loop.limit: ",
                "must be finite",
                "set by an ERGON__ environment override",
            ],
        );
    }
    assert_config_error(
        &format!("{VALID}\n[telemetry]\nsampling_ratio = nan\n"),
        &[],
        &["telemetry.sampling_ratio: NaN is not allowed"],
    );
    assert_config_error(
        &policy("process.retry", "jitter", "inf"),
        &[],
        &["tasks.bridge.policy.process.retry.jitter: inf is not allowed"],
    );
    // A required key set to nan was "invalid type: null".
    assert_config_error(
        &VALID.replace("type = \"forward\"", "type = nan"),
        &[],
        &["tasks.bridge.type: NaN is not allowed"],
    );
}
