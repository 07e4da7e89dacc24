//! The one line a scenario prints: its figures, then `result=ok`, or `result=fail` with
//! the reasons.

use std::fmt;

use super::error::Error;
use super::ids::Tally;

/// A scenario's outcome, printed as one line of `key=value` fields:
///
/// ```text
/// scenario=kill9_local sent=20000 unique=20000 lost=0 duplicated=3 bound=832 kills=2 restarts=3 recovery_ms=850 result=ok
/// ```
///
/// A scenario adds its figures with [`Report::field`] and its checks with
/// [`Report::check`]; any failed check fails the scenario.
#[derive(Clone, Debug)]
pub struct Report {
    scenario: String,
    fields: Vec<(&'static str, String)>,
    failures: Vec<String>,
}

impl Report {
    /// An empty report for `scenario` (no figures, no failure yet).
    pub fn new(scenario: &str) -> Self {
        Self {
            scenario: scenario.to_owned(),
            fields: Vec::new(),
            failures: Vec::new(),
        }
    }

    /// The report of a scenario that could not run to its end: `error` is its reason.
    pub fn aborted(scenario: &str, error: &Error) -> Self {
        let mut report = Self::new(scenario);
        report.failures.push(error.to_string());
        report
    }

    /// Adds the figure `key=value`.
    #[must_use]
    pub fn field(mut self, key: &'static str, value: impl fmt::Display) -> Self {
        self.fields.push((key, value.to_string()));
        self
    }

    /// Adds the id counts of `tally` (`sent unique lost duplicated bound`) and checks them:
    /// nothing lost, at most `bound` duplicates (the at-least-once bound that applies),
    /// nothing at the output that was not sent.
    #[must_use]
    pub fn tally(self, tally: &Tally, bound: usize) -> Self {
        let lost = tally.lost();
        self.field("sent", tally.sent)
            .field("unique", tally.unique)
            .field("lost", lost)
            .field("duplicated", tally.duplicated)
            .field("bound", bound)
            .check(lost == 0, || {
                format!("{lost} lost, e.g. {}", tally.lost_sample.join(","))
            })
            .check(tally.duplicated <= bound, || {
                format!("{} duplicates above the bound {bound}", tally.duplicated)
            })
            .check(tally.unexpected == 0, || {
                format!("{} ids at the output were never sent", tally.unexpected)
            })
    }

    /// Fails the scenario with `reason()` unless `ok`.
    #[must_use]
    pub fn check(mut self, ok: bool, reason: impl FnOnce() -> String) -> Self {
        if !ok {
            self.failures.push(reason());
        }
        self
    }

    /// The scenario's name.
    pub fn scenario(&self) -> &str {
        &self.scenario
    }

    /// Whether every check passed.
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "scenario={}", self.scenario)?;
        for (key, value) in &self.fields {
            write!(f, " {key}={value}")?;
        }
        if self.ok() {
            write!(f, " result=ok")
        } else {
            write!(f, " result=fail reason={:?}", self.failures.join("; "))
        }
    }
}
