//! # ergon-fuzz
//!
//! Fuzz targets for the parts of ergon that read what others wrote: config files, payloads,
//! JSON lines files and DAG plans (which an LLM may write). Each target is a plain
//! `fn(&[u8])` that must never panic, abort, hang or allocate without bound on any input:
//! refusing the input with an error is fine, and each target also checks what it can of
//! the answer (a config error names the file, a dead letter gives the original bytes
//! back, a valid plan is in dependency order, ...), panicking when that check fails.
//!
//! ```text
//! bytes ──▶ config      ──▶ config::load_with ▶ Plan::build (example task names as stubs)
//!       ──▶ payload     ──▶ Transaction::json::<T>() for typed, loose and raw T
//!       ──▶ file_lines  ──▶ file connector: fetch every line ▶ dead-letter it ▶ read it back
//!       ──▶ plan        ──▶ JSON ▶ RunPlan ▶ ergon_journal::run::check (RunPlan::validate)
//!       ──▶ template    ──▶ a node input / expansion template ▶ ergon_journal::run::check
//! ```
//!
//! Two drivers run the same [`TARGETS`] (see `fuzz/README.md`):
//!
//! * cargo-fuzz (libFuzzer, nightly) under `fuzz/`, for long runs;
//! * `tests/bounded.rs` on stable, for CI: a seeded mutation loop ([`mutate`]) over the
//!   [`seeds`] of each target, and a replay of every input kept in
//!   `fuzz/regressions/<target>/`.
//!
//! # Examples
//!
//! ```
//! let target = ergon_fuzz::target("payload").unwrap();
//! (target.run)(br#"{"id":"o-1","items":[]}"#);
//! (target.run)(b"\xff not json");
//! ```

pub mod config;
pub mod file_lines;
pub mod mutate;
pub mod payload;
pub mod plan;
pub mod seeds;
pub mod template;

/// A fuzz target: its name (the cargo-fuzz target and the `fuzz/regressions/` folder) and
/// the function that takes one input.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The target's name.
    pub name: &'static str,
    /// Runs one input; panics only on a finding.
    pub run: fn(&[u8]),
    /// Tokens the mutators splice in, in groups: the words the input's format is made of.
    pub dictionary: &'static [&'static [&'static str]],
}

/// Every target, in the order the drivers run them.
pub const TARGETS: [Target; 5] = [
    Target {
        name: "config",
        run: config::target,
        dictionary: config::DICTIONARY,
    },
    Target {
        name: "payload",
        run: payload::target,
        dictionary: payload::DICTIONARY,
    },
    Target {
        name: "file_lines",
        run: file_lines::target,
        dictionary: file_lines::DICTIONARY,
    },
    Target {
        name: "plan",
        run: plan::target,
        dictionary: plan::DICTIONARY,
    },
    Target {
        name: "template",
        run: template::target,
        dictionary: template::DICTIONARY,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.into_iter().find(|target| target.name == name)
}
