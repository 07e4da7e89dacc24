//! The `[journal]` table.

use std::path::PathBuf;
use std::time::Duration;

use ergon_core::config::{ConfigIssue, check_count};
use serde::{Deserialize, Serialize};

use crate::routes::Routes;

/// `[journal]`: where and what the journal records.
///
/// ```toml
/// [journal]
/// path = "ergon-queue.db"   # the local queue's file by default: relative to the config file
/// record = "workflow"       # workflow | all | off
/// retention = "7d"          # terminal records older than this are purged
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JournalConfig {
    /// The backend. Only `"sqlite"` (embedded, one machine) for now.
    #[serde(rename = "type")]
    pub kind: JournalKind,
    /// The SQLite file. Default: the file of the config's `local` queues when they all
    /// share one (so the journal and the queue live in one database), else
    /// `ergon-queue.db` beside the config file.
    pub path: Option<PathBuf>,
    /// Which completions are recorded. Default: `"workflow"`.
    pub record: Record,
    /// Terminal records older than this are purged, by the running journal (hourly) and
    /// by `ergon-runner journal purge`. `"0s"` keeps them forever. Default: `"7d"`.
    #[serde(with = "ergon_core::policy::duration")]
    pub retention: Duration,
    /// The largest output (JSON bytes) recorded for a continuation or a wait to read;
    /// a larger one is not recorded (logged), so one huge result cannot bloat the file.
    /// At most 4 MiB. Default: 262144 (256 KiB).
    pub max_output: usize,
}

impl Default for JournalConfig {
    fn default() -> Self {
        Self {
            kind: JournalKind::Sqlite,
            path: None,
            record: Record::Workflow,
            retention: Duration::from_secs(7 * 24 * 3600),
            max_output: 256 * 1024,
        }
    }
}

impl JournalConfig {
    /// Checks the values; the error path is relative to `[journal]`.
    ///
    /// # Errors
    ///
    /// An empty path, a `max_output` above 4 MiB.
    pub fn validate(&self) -> Result<(), ConfigIssue> {
        if self.path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            return Err(ConfigIssue::new("path", "must not be empty"));
        }
        check_count("max_output", self.max_output as u64, 0, MAX_OUTPUT as u64)
    }
}

/// The hard cap of `max_output`: 4 MiB.
pub const MAX_OUTPUT: usize = 4 * 1024 * 1024;

/// The journal's backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JournalKind {
    /// An embedded SQLite file: nothing to install, one machine (several processes may
    /// share the file).
    #[default]
    Sqlite,
}

/// Which completions the journal records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Record {
    /// What a workflow needs and what went wrong: transactions that are part of a
    /// lineage (they have a parent or tags, produced children, or their task has an
    /// `on_complete`), and every failure.
    #[default]
    Workflow,
    /// Every terminal transaction (`trace` and `get` see everything; redeliveries of
    /// anything completed are settled without running again).
    All,
    /// Nothing: the journal is not opened.
    Off,
}

impl Record {
    /// Whether a transaction that is part of a lineage (`has_lineage`) ending `failed`
    /// is recorded.
    pub fn records(self, has_lineage: bool, failed: bool) -> bool {
        match self {
            Record::All => true,
            Record::Workflow => has_lineage || failed,
            Record::Off => false,
        }
    }
}

/// What a journal records and where it hands transactions over.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Which completions are recorded.
    pub record: Record,
    /// Terminal records older than this are purged hourly (`Duration::ZERO`: never).
    pub retention: Duration,
    /// The largest output recorded, in bytes.
    pub max_output: usize,
    /// Each task's queue and continuation.
    pub routes: Routes,
    /// The tasks this process runs: a finite loop waits for the journal's pending work
    /// for them ([`Journal::owes`]). Empty: none (finite loops end with their queue).
    pub running: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            record: Record::Workflow,
            retention: Duration::from_secs(7 * 24 * 3600),
            max_output: 256 * 1024,
            routes: Routes::new(),
            running: Vec::new(),
        }
    }
}
