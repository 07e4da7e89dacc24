//! The bounded stable run of every fuzz target, for CI: each target replays the inputs
//! kept in `fuzz/regressions/<target>/`, runs its seeds as they are, then a seeded loop
//! of mutated seeds. Deterministic for a seed: a failure prints the seed, the case and
//! the input, and `ERGON_FUZZ_SEED=<seed>` reproduces it; `ERGON_FUZZ_CASES=<n>` sets the
//! number of mutated cases per target (longer runs: cargo-fuzz, see `fuzz/README.md`).
//!
//! A case still running after [`HANG`] is a hang: the input is printed and the process
//! exits. A case that aborts the process (a stack overflow) cannot be caught: each case's
//! input is written to `target/tmp/ergon-fuzz-<target>.current` before it runs, where the
//! last one stays.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ergon_fuzz::{Target, mutate, seeds};

const DEFAULT_SEED: u64 = 0x00e1_2605_f022_0017;
/// A case that takes this long is a hang (the slowest take milliseconds).
const HANG: Duration = Duration::from_secs(60);

fn seed() -> u64 {
    std::env::var("ERGON_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED)
}

fn cases(default: usize) -> usize {
    std::env::var("ERGON_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// How a failing input is shown: its length, then its bytes escaped (`\xNN` outside
/// printable ASCII), at most 4 KiB of them.
fn show(input: &[u8]) -> String {
    let shown: String = input[..input.len().min(4096)]
        .escape_ascii()
        .map(char::from)
        .collect();
    format!("{} bytes: b\"{shown}\"", input.len())
}

/// The case being run, watched for a hang.
#[derive(Default)]
struct Current {
    label: Mutex<String>,
    input: Mutex<Vec<u8>>,
    started: AtomicUsize,
    done: AtomicBool,
}

/// Exits the process when one case runs longer than [`HANG`].
fn watchdog(name: &'static str, current: Arc<Current>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let tick = Duration::from_millis(200);
        let (mut seen, mut still) = (usize::MAX, Duration::ZERO);
        while !current.done.load(Ordering::Relaxed) {
            std::thread::sleep(tick);
            let started = current.started.load(Ordering::Relaxed);
            still = if started == seen {
                still + tick
            } else {
                Duration::ZERO
            };
            seen = started;
            if still >= HANG {
                eprintln!(
                    "fuzz target `{name}` hangs on {} (seed {}), input {}",
                    current.label.lock().unwrap(),
                    seed(),
                    show(&current.input.lock().unwrap())
                );
                std::process::exit(101);
            }
        }
    })
}

/// Runs `target` on the regressions, the seeds and `count` mutated seeds.
fn run(target: Target, count: usize) {
    let seed = seed();
    let seeds = seeds::seeds(target.name);
    let regressions = seeds::regressions(target.name);
    assert!(!seeds.is_empty(), "target `{}` has no seeds", target.name);
    let current = Arc::new(Current::default());
    let watchdog = watchdog(target.name, current.clone());
    let last = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("ergon-fuzz-{}.current", target.name));
    let one = |label: String, input: &[u8]| {
        std::fs::write(&last, input).unwrap();
        *current.label.lock().unwrap() = label.clone();
        *current.input.lock().unwrap() = input.to_vec();
        current.started.fetch_add(1, Ordering::Relaxed);
        if catch_unwind(AssertUnwindSafe(|| (target.run)(input))).is_err() {
            current.done.store(true, Ordering::Relaxed);
            panic!(
                "fuzz target `{}` failed on {label}\n  reproduce with ERGON_FUZZ_SEED={seed}\n  input {}",
                target.name,
                show(input)
            );
        }
    };
    for (path, input) in &regressions {
        one(format!("regression {}", path.display()), input);
    }
    for (index, input) in seeds.iter().enumerate() {
        one(format!("seed {index}"), input);
    }
    let started = std::time::Instant::now();
    let mut rng = fastrand::Rng::with_seed(seed);
    for case in 0..count {
        let base = &seeds[rng.usize(..seeds.len())];
        let input = mutate::mutate(&mut rng, base, &seeds, target.dictionary);
        one(format!("case {case}"), &input);
    }
    current.done.store(true, Ordering::Relaxed);
    watchdog.join().unwrap();
    eprintln!(
        "fuzz {}: {} regressions, {} seeds, {count} mutated cases in {:.1}s, seed {seed}",
        target.name,
        regressions.len(),
        seeds.len(),
        started.elapsed().as_secs_f64()
    );
}

fn target(name: &str) -> Target {
    ergon_fuzz::target(name).unwrap_or_else(|| panic!("no fuzz target `{name}`"))
}

#[test]
fn config_files_plan_or_are_refused_naming_the_place() {
    run(target("config"), cases(2_000));
}

#[test]
fn payloads_decode_or_fail_as_business_errors() {
    run(target("payload"), cases(4_000));
}

#[test]
fn file_lines_come_back_intact_from_the_reader_and_the_dead_letter_file() {
    run(target("file_lines"), cases(500));
}

#[test]
fn plans_are_refused_or_valid_in_dependency_order() {
    run(target("plan"), cases(8_000));
}

#[test]
fn templates_compile_or_are_refused_for_their_node() {
    run(target("template"), cases(4_000));
}
