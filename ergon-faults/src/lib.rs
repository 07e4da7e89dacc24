//! ergon's own fault suite: the faults an operator fears, each run against the real
//! `ergon-runner` CLI on loopback, each counting ids end to end.
//!
//! A scenario deploys the suite's runner binary (`ergon-faults-runner`: ergon's whole CLI
//! with the suite's tasks registered) on a generated `tasks.toml` in a temporary directory,
//! feeds numbered ids into an input connector, injects its fault (kill -9, a signal, a
//! broker restart, a cut link, poison), lets the run drain, and counts the ids at the
//! output. It prints one [`Report`](harness::Report) line:
//!
//! ```text
//! scenario=kill9_local sent=20000 unique=20000 lost=0 duplicated=3 bound=832 kills=2 restarts=3 recovery_ms=850 result=ok
//! ```
//!
//! and fails on any loss, on duplicates above the at-least-once bound that applies, on a
//! wrong exit code or on a hang.
//!
//! * [`harness`]: runner process control (spawn on a generated config, kill -9, SIGTERM /
//!   SIGINT, wait with a deadline), the input connectors the suite feeds, id counting, the
//!   report line.
//! * [`proxy`]: a TCP proxy on loopback the network scenarios control.
//! * [`scenarios`]: the registry of scenarios and the profile each belongs to.
//!
//! CI runs the short profile through `tests/short.rs` (`cargo test -p ergon-faults`). By
//! hand, build both binaries, then run the suite (`cargo run --bin ergon-faults` alone
//! would leave a stale runner beside it):
//!
//! ```text
//! cargo build --release -p ergon-faults && target/release/ergon-faults --profile full
//! ```

pub mod harness;
pub mod proxy;
pub mod scenarios;

/// How much a run of the suite does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// Small volumes, a short soak: every scenario of the profile in a few minutes, for CI.
    Short,
    /// Release checks: large volumes (about 100,000 ids per connector) and the long soak.
    Full,
}

impl Profile {
    /// `short` in the short profile, `full` in the full one: a scenario's volumes.
    pub fn pick<T>(self, short: T, full: T) -> T {
        match self {
            Self::Short => short,
            Self::Full => full,
        }
    }

    /// The profile's name on the command line (`short`, `full`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Short => "short",
            Self::Full => "full",
        }
    }
}

impl std::str::FromStr for Profile {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        match name {
            "short" => Ok(Self::Short),
            "full" => Ok(Self::Full),
            other => Err(format!(
                "unknown profile `{other}` (expected short or full)"
            )),
        }
    }
}
