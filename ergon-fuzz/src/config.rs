//! Target `config`: a config file loaded with `config::load_with` and checked with
//! `Plan::build` against a registry that knows the examples' task names, as the runner
//! does before any worker starts. A config must end with a plan or a [`ConfigError`]
//! naming the file (and the key, unless the whole file is at fault).
//!
//! `ergon-runner`'s `config_fuzz` test shares [`stub_registry`], [`load_and_plan`],
//! [`KEYS`] and [`VALUES`]: it mutates the example configs line by line and also runs the
//! real binary; this target takes any bytes.

use std::path::Path;
use std::sync::LazyLock;

use ergon_core::{BlockingHybrid, Consumer, Context, Hybrid, TaskError, Transaction};
use ergon_runner::Registry;
use ergon_runner::config::{ConfigError, load_with};
use ergon_runner::plan::Plan;

/// Keys a mutation writes: the config's own among typos.
pub const KEYS: &[&str] = &[
    "concurrency",
    "limit",
    "timeout",
    "streaming",
    "drain_timeout",
    "batch_size",
    "max_attempts",
    "backoff",
    "backoff_multiplier",
    "backoff_cap",
    "jitter",
    "workers",
    "prefetch",
    "lease",
    "ack_interval",
    "fetch_wait",
    "max_entries",
    "path",
    "dead_letter",
    "type",
    "input",
    "output",
    "services",
    "loop",
    "fetch",
    "retry",
    "empty",
    "process",
    "on_failure",
    "sampling_ratio",
    "metrics_interval",
    "settings",
    "policy",
    "rounds",
    "queue",
    "id_field",
    "url",
];

/// Values a mutation writes: edges of every type the config has.
pub const VALUES: &[&str] = &[
    "0",
    "-1",
    "1",
    "2",
    "1024",
    "1025",
    "65536",
    "65537",
    "4294967296",
    "9223372036854775807",
    "-9223372036854775808",
    "1e300",
    "-0.0",
    "0.5",
    "nan",
    "+nan",
    "inf",
    "-inf",
    "true",
    "false",
    "\"\"",
    "\"x\"",
    "\"1ms\"",
    "\"30d\"",
    "\"31d\"",
    "\"99999999999999999999999s\"",
    "\"-1s\"",
    "\"${ERGON_FUZZ_UNSET}\"",
    "\"$${x}\"",
    "\"requeue\"",
    "\"drop\"",
    "\"memory\"",
    "\"file\"",
    "\"local\"",
    "\"forward\"",
    "[]",
    "[1, 2]",
    "[\"a\"]",
    "{}",
    "{ x = 1 }",
    "1979-05-27T07:32:00Z",
];

/// TOML's own punctuation and the config's tables.
const SYNTAX: &[&str] = &[
    "[tasks.t]",
    "[connectors.c]",
    "[services.s]",
    "[workflows.w]",
    "[journal]",
    "[telemetry]",
    "[[x]]",
    " = ",
    "\n",
    "\"",
    "'''",
    "\"\"\"",
    "#",
    ".",
    "\\u0000",
];

/// The mutators' tokens.
pub const DICTIONARY: &[&[&str]] = &[KEYS, VALUES, SYNTAX];

/// A task of any role that does nothing; the factories read settings like the examples'.
struct Stub;

impl Consumer for Stub {
    type Output = ();

    async fn process_transaction(&self, _: &Context, _: &Transaction) -> Result<(), TaskError> {
        Ok(())
    }
}

impl Hybrid for Stub {
    async fn process_transaction(
        &self,
        _: &Context,
        _: &Transaction,
    ) -> Result<Vec<Transaction>, TaskError> {
        Ok(Vec::new())
    }
}

impl BlockingHybrid for Stub {
    fn process_transaction(
        &self,
        _: &Context,
        _: &Transaction,
    ) -> Result<Vec<Transaction>, TaskError> {
        Ok(Vec::new())
    }
}

/// The settings of the quickstart's `order_validation`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderSettings {
    max_total_cents: u64,
    #[serde(default)]
    flaky_orders: Vec<String>,
    seen_orders_service: String,
}

/// The settings of the `fingerprint` example.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FingerprintSettings {
    rounds: u32,
}

/// The built-ins and the examples' task names (`order_validation`, `fingerprint`,
/// `split_order`) as stubs of the same roles, whose factories check their settings as
/// the examples do: what the example configs plan against.
pub fn stub_registry() -> Registry {
    Registry::with_builtins()
        .consumer("order_validation", |cx| {
            let OrderSettings {
                max_total_cents,
                flaky_orders,
                seen_orders_service,
            } = cx.settings()?;
            drop((max_total_cents, flaky_orders));
            cx.service::<ergon_services::kv::MemoryKv>(&seen_orders_service)
                .map(|_| Stub)
        })
        .blocking_hybrid("fingerprint", |cx| {
            let FingerprintSettings { rounds } = cx.settings()?;
            match rounds {
                0 => Err(TaskError::system("rounds must be at least 1").non_retryable()),
                _ => Ok(Stub),
            }
        })
        .hybrid("split_order", |_| Ok(Stub))
}

/// What became of a config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It planned: a run could start.
    Planned,
    /// It was refused with an error naming the file (and the key).
    Refused,
}

/// Loads `file` with the overrides `env` (no `${VAR}` is set) and plans it against
/// `registry`.
///
/// # Errors
///
/// A description of the finding when the config error does not name the file, or names
/// no key although the file as a whole is not at fault. Panics are left to the caller.
pub fn load_and_plan(
    file: &Path,
    env: &[(String, String)],
    registry: &Registry,
) -> Result<Outcome, String> {
    let lookup = |_: &str| None;
    match load_with(file, env.iter().cloned(), &lookup)
        .and_then(|loaded| Plan::build(&loaded, registry).map(drop))
    {
        Ok(()) => Ok(Outcome::Planned),
        Err(err) => names_the_place(file, &err).map(|()| Outcome::Refused),
    }
}

/// A config error names the file, and a key unless the whole file is at fault.
fn names_the_place(file: &Path, err: &ConfigError) -> Result<(), String> {
    let shown = err.to_string();
    if err.file != file || !shown.starts_with(&format!("{}: ", file.display())) {
        return Err(format!("the error does not name the file: {shown}"));
    }
    let whole_file = ["TOML parse error", "cannot read the config file"];
    if err.path.is_empty() && !whole_file.iter().any(|m| err.message.contains(m)) {
        return Err(format!("the error names no key: {shown}"));
    }
    Ok(())
}

/// Built once per process: the registry holds only factories.
static REGISTRY: LazyLock<Registry> = LazyLock::new(stub_registry);

/// The target: `data` is the config file, in a fresh directory (relative paths in it
/// resolve there), with no overrides.
///
/// # Panics
///
/// On a finding: loading or planning panicked, or its error does not name the place.
pub fn target(data: &[u8]) {
    let dir = tempfile::tempdir().expect("a temporary directory for the config");
    let file = dir.path().join("tasks.toml");
    std::fs::write(&file, data).expect("the config written to the temporary directory");
    if let Err(finding) = load_and_plan(&file, &[], &REGISTRY) {
        panic!("{finding}");
    }
}
