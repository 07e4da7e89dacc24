//! Config fuzzing: mutated copies of the example configs (renamed keys, wrong types, huge,
//! negative and non-finite numbers, broken tables, truncation, invalid UTF-8, environment
//! overrides) must each end with a plan or a config error naming the file (and the key
//! when a key is at fault), never a panic, an abort or a hang.
//!
//! Three phases, deterministic for a seed (`ERGON_FUZZ_SEED=<n>` reproduces a failure,
//! which prints its seed, case and input):
//! 1. thousands of cases in-process through `config::load_with` and `Plan::build`, with
//!    the examples' task names registered as stubs of the same roles;
//! 2. a few hundred through the real `ergon-runner validate`;
//! 3. dozens of short `ergon-runner run`s on small inputs, each killed after a deadline
//!    (a run still going then is a hang).

use std::io::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ergon_fuzz::config::{KEYS, Outcome, VALUES, load_and_plan, stub_registry};

const DEFAULT_SEED: u64 = 0x00e1_2605_c0f1_6fa2;
const IN_PROCESS_CASES: usize = 5_000;
const VALIDATE_CASES: usize = 400;
const RUN_CASES: usize = 200;
/// A run of a few lines that is still going after this long is a hang.
const RUN_DEADLINE: Duration = Duration::from_secs(30);
const THREADS: usize = 2;

/// The example configs, by their path under `examples/`.
const EXAMPLES: [&str; 5] = [
    "quickstart/tasks.toml",
    "quickstart/streaming.toml",
    "fingerprint/tasks.toml",
    "split_orders/tasks.toml",
    "split_orders/rabbitmq.toml",
];

/// Values of `ERGON__…` overrides.
const ENV_VALUES: &[&str] = &[
    "nan",
    "inf",
    "-inf",
    "0",
    "-1",
    "4294967296",
    "9223372036854775807",
    "65536",
    "1",
    "3",
    "1000",
    "0.25",
    "1.5",
    "x",
    "true",
    "",
    "65537",
];

/// Override paths below `ERGON__`; `{task}` is a task of the file.
const ENV_KEYS: &[&str] = &[
    "TASKS__{task}__WORKERS",
    "TASKS__{task}__POLICY__LOOP__LIMIT",
    "TASKS__{task}__POLICY__LOOP__CONCURRENCY",
    "TASKS__{task}__POLICY__FETCH__BATCH_SIZE",
    "TASKS__{task}__POLICY__PROCESS__RETRY__MAX_ATTEMPTS",
    "TASKS__{task}__POLICY__PROCESS__RETRY__JITTER",
    "TASKS__{task}__POLICY__LOOP",
    "TELEMETRY__SAMPLING_RATIO",
];

// ---------------------------------------------------------------------------------------
// The cases.

/// One mutated config and the overrides it runs with.
#[derive(Clone)]
struct Case {
    index: usize,
    seed: u64,
    example: &'static str,
    bytes: Vec<u8>,
    env: Vec<(String, String)>,
}

impl Case {
    /// What to print so that a failure can be reproduced and read.
    fn describe(&self, what: &str) -> String {
        let text = String::from_utf8_lossy(&self.bytes);
        format!(
            "{what}\n  reproduce with ERGON_FUZZ_SEED={} (case {}, from examples/{})\n  env: {:?}\n--- config ---\n{text}\n--------------",
            self.seed, self.index, self.example, self.env
        )
    }
}

fn seed() -> u64 {
    std::env::var("ERGON_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED)
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// The example configs; with `forward`, every task becomes the stock binary's `forward`
/// (a consumer: hybrid-only steps become its `success` step) and nothing streams.
fn sources(forward: bool) -> Vec<(&'static str, String)> {
    EXAMPLES
        .iter()
        .map(|name| {
            let text = std::fs::read_to_string(examples_dir().join(name)).unwrap();
            let text = if forward {
                ["order_validation", "fingerprint", "split_order"]
                    .iter()
                    .fold(text, |t, kind| {
                        t.replace(&format!("type = \"{kind}\""), "type = \"forward\"")
                    })
                    .replace(".policy.dispatch.", ".policy.success.")
                    .replace("streaming = true", "streaming = false")
            } else {
                text
            };
            (*name, text)
        })
        .collect()
}

fn pick<'a, T>(rng: &mut fastrand::Rng, items: &'a [T]) -> &'a T {
    &items[rng.usize(..items.len())]
}

/// The first `[tasks.NAME…]` of the text, upper-cased for an override.
fn task_name(text: &str) -> String {
    text.lines()
        .find_map(|line| line.strip_prefix("[tasks."))
        .and_then(|rest| rest.split(['.', ']']).next())
        .unwrap_or("t")
        .to_uppercase()
}

/// Applies one to three mutations to `text` (at most two, and no month-long durations,
/// for a run); adds an override to half the runs and a quarter of the other cases.
fn mutate(rng: &mut fastrand::Rng, text: &str, run_safe: bool) -> (Vec<u8>, Vec<(String, String)>) {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut truncate_or_corrupt = None;
    let mutations = if run_safe { 1..=2 } else { 1..=3 };
    for _ in 0..rng.usize(mutations) {
        let at = rng
            .usize(..lines.len().max(1))
            .min(lines.len().saturating_sub(1));
        let line = lines.get(at).cloned().unwrap_or_default();
        let assignment = line
            .split_once(" = ")
            .filter(|_| !line.starts_with(['#', '[']));
        match (rng.u8(..10), assignment) {
            (0 | 1, Some((key, value))) => {
                let renamed = match rng.u8(..4) {
                    0 => key.chars().skip(1).collect(),
                    1 => key.to_uppercase(),
                    2 => format!("{key}s"),
                    _ => pick(rng, KEYS).to_string(),
                };
                lines[at] = format!("{renamed} = {value}");
            }
            (2 | 3, Some((key, _))) => {
                lines[at] = format!("{key} = {}", value(rng, run_safe));
            }
            (4 | 5, _) => {
                let inserted = format!("{} = {}", pick(rng, KEYS), value(rng, run_safe));
                lines.insert((at + 1).min(lines.len()), inserted);
            }
            (6, _) if line.starts_with('[') => {
                lines[at] = match rng.u8(..3) {
                    0 => format!("[{line}]"),
                    1 => line.replacen('.', "..", 1),
                    _ => line.replace(']', &format!(".{}]", pick(rng, KEYS))),
                };
            }
            (7, _) if !lines.is_empty() => {
                lines.remove(at);
            }
            (8, _) => lines.insert(at, line.clone()),
            _ if !run_safe => truncate_or_corrupt = Some(rng.bool()),
            _ => {}
        }
    }
    let mut bytes = lines.join("\n").into_bytes();
    bytes.push(b'\n');
    match truncate_or_corrupt {
        Some(true) => bytes.truncate(rng.usize(..bytes.len())),
        Some(false) => {
            let junk = *pick(rng, &[0xff, 0xc3, 0x00, b'"', b'[', b'=', b'\n', b'\\']);
            bytes.insert(rng.usize(..=bytes.len()), junk);
        }
        None => {}
    }
    let mut env = Vec::new();
    // Runs get more: the loop's sizes are reached through them most directly.
    if rng.u8(..4) < if run_safe { 2 } else { 1 } {
        let key = pick(rng, ENV_KEYS).replace("{task}", &task_name(text));
        env.push((format!("ERGON__{key}"), pick(rng, ENV_VALUES).to_string()));
    }
    (bytes, env)
}

/// A value to write; in a run, no duration long enough to look like a hang.
fn value(rng: &mut fastrand::Rng, run_safe: bool) -> &'static str {
    loop {
        let value = pick(rng, VALUES);
        if !(run_safe && value.ends_with("d\"")) {
            return value;
        }
    }
}

fn cases(seed: u64, count: usize, forward: bool, run_safe: bool) -> Vec<Case> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let sources: Vec<_> = sources(forward)
        .into_iter()
        .filter(|(name, _)| !(run_safe && name.contains("rabbitmq")))
        .collect();
    (0..count)
        .map(|index| {
            let (example, text) = pick(&mut rng, &sources);
            let (bytes, env) = mutate(&mut rng, text, run_safe);
            Case {
                index,
                seed,
                example,
                bytes,
                env,
            }
        })
        .collect()
}

/// Whether a case was accepted (planned, exit 0) rather than refused with a config error.
struct Accepted(bool);

/// Runs `check` on every case over [`THREADS`] threads, reports how many were accepted
/// and asserts that none failed.
fn each(
    phase: &str,
    cases: &[Case],
    check: impl Fn(&Case, &Path) -> Result<Accepted, String> + Sync,
) {
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let accepted = AtomicUsize::new(0);
    let failures: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|_| {
                scope.spawn(|| {
                    let mut failures = Vec::new();
                    while let Some(case) = cases.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let dir = tempfile::tempdir().unwrap();
                        match check(case, dir.path()) {
                            Ok(Accepted(true)) => _ = accepted.fetch_add(1, Ordering::Relaxed),
                            Ok(Accepted(false)) => {}
                            Err(failure) => failures.push(case.describe(&failure)),
                        }
                    }
                    failures
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    eprintln!(
        "config_fuzz {phase}: {} cases ({} accepted, the rest refused) in {:.1}s, seed {}",
        cases.len(),
        accepted.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
        seed()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed; the first:\n{}",
        failures.len(),
        cases.len(),
        failures[0]
    );
}

// ---------------------------------------------------------------------------------------
// Phase 1: in-process, with the examples' task names registered as stubs (shared with the
// `config` fuzz target of `ergon-fuzz`, like the keys and values the mutations write).

#[test]
fn mutated_example_configs_plan_or_fail_with_the_file_and_key_in_process() {
    let cases = cases(seed(), IN_PROCESS_CASES, false, false);
    let registry = stub_registry();
    each("in-process", &cases, |case, dir| {
        let file = dir.join("tasks.toml");
        std::fs::write(&file, &case.bytes).unwrap();
        match catch_unwind(AssertUnwindSafe(|| {
            load_and_plan(&file, &case.env, &registry)
        })) {
            Err(_) => Err("loading or planning panicked".into()),
            Ok(outcome) => outcome.map(|outcome| Accepted(outcome == Outcome::Planned)),
        }
    });
}

// ---------------------------------------------------------------------------------------
// Phases 2 and 3: the real binary.

/// What the binary did: exit code (none when killed by a signal or the deadline), stderr.
struct Exit {
    code: Option<i32>,
    stderr: String,
    timed_out: bool,
}

/// Runs `ergon-runner --config FILE <args>` in `dir`, killing it after `deadline`.
fn runner(case: &Case, dir: &Path, args: &[&str], deadline: Duration) -> Exit {
    let file = dir.join("tasks.toml");
    std::fs::write(&file, &case.bytes).unwrap();
    let stderr_path = dir.join("stderr.txt");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ergon-runner"))
        .arg("--config")
        .arg(&file)
        .args(args)
        .envs(case.env.iter().cloned())
        .env_remove("RUST_LOG")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let (status, timed_out) = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break (Some(status), false);
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break (None, true);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Exit {
        code: status.and_then(|s| s.code()),
        stderr: String::from_utf8_lossy(&std::fs::read(&stderr_path).unwrap()).into_owned(),
        timed_out,
    }
}

/// Exit 0, or exit 2 with the file named; no panic, no signal, no hang.
fn check_exit(exit: &Exit, dir: &Path) -> Result<Accepted, String> {
    let file = dir.join("tasks.toml");
    let stderr = &exit.stderr;
    if exit.timed_out {
        return Err(format!(
            "still running after the deadline (a hang): {stderr}"
        ));
    }
    if stderr.contains("panicked") {
        return Err(format!("a panic: {stderr}"));
    }
    match exit.code {
        Some(0) => Ok(Accepted(true)),
        Some(2) if stderr.contains(&format!("{}: ", file.display())) => Ok(Accepted(false)),
        Some(2) => Err(format!("exit 2 without naming the file: {stderr}")),
        code => Err(format!("exit {code:?}: {stderr}")),
    }
}

#[test]
fn mutated_example_configs_validate_or_exit_2_through_the_binary() {
    let cases = cases(seed() ^ 1, VALIDATE_CASES, true, false);
    each("validate", &cases, |case, dir| {
        check_exit(&runner(case, dir, &["validate"], RUN_DEADLINE), dir)
    });
}

/// A few lines of each example's inputs, where the configs expect them.
fn inputs(dir: &Path) {
    for name in ["quickstart/orders.jsonl", "fingerprint/records.jsonl"] {
        let text = std::fs::read_to_string(examples_dir().join(name)).unwrap();
        let target = dir.join(Path::new(name).file_name().unwrap());
        let mut file = std::fs::File::create(target).unwrap();
        for line in text.lines().take(5) {
            writeln!(file, "{line}").unwrap();
        }
    }
}

#[test]
fn mutated_example_configs_run_to_the_end_or_exit_2_through_the_binary() {
    let cases = cases(seed() ^ 2, RUN_CASES, true, true);
    each("run", &cases, |case, dir| {
        inputs(dir);
        check_exit(&runner(case, dir, &["run"], RUN_DEADLINE), dir)
    });
}
