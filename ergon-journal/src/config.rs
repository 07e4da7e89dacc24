//! The `[journal]` table.

use std::path::PathBuf;
use std::time::Duration;

use ergon_core::config::{ConfigIssue, check_count, plain_sql_name};
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
///
/// or, shared by runners on many machines:
///
/// ```toml
/// [journal]
/// type = "postgres"
/// url = "postgres://ergon:${PGPASSWORD}@db.internal:5432/ergon"
/// schema = "ergon"          # default: public
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JournalConfig {
    /// The backend: `"sqlite"` (embedded, one machine; the default) or `"postgres"`.
    #[serde(rename = "type")]
    pub kind: JournalKind,
    /// `sqlite`: the file. Default: the file of the config's `local` queues when they all
    /// share one (so the journal and the queue live in one database), else
    /// `ergon-queue.db` beside the config file.
    pub path: Option<PathBuf>,
    /// `postgres`: the database (`postgres://user:password@host:port/database`; put the
    /// password in `${VAR}`: errors and logs never show it).
    pub url: Option<String>,
    /// `postgres`: the schema of the journal's tables, created when missing. Default:
    /// `public`.
    pub schema: Option<String>,
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
            url: None,
            schema: None,
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
    /// An empty path, a key of the other backend, a `postgres` journal without a url or
    /// with a schema that is not a plain SQL name, a `max_output` above 4 MiB.
    pub fn validate(&self) -> Result<(), ConfigIssue> {
        match self.kind {
            JournalKind::Sqlite => {
                if self.path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                    return Err(ConfigIssue::new("path", "must not be empty"));
                }
                for (key, set) in [
                    ("url", self.url.is_some()),
                    ("schema", self.schema.is_some()),
                ] {
                    if set {
                        let message = "is a key of `type = \"postgres\"`; this journal is `sqlite`";
                        return Err(ConfigIssue::new(key, message));
                    }
                }
            }
            JournalKind::Postgres => {
                if self.path.is_some() {
                    let message =
                        "is a key of `type = \"sqlite\"`; this journal is `postgres` (set `url`)";
                    return Err(ConfigIssue::new("path", message));
                }
                if self.url.as_deref().is_none_or(str::is_empty) {
                    return Err(ConfigIssue::new(
                        "url",
                        "is required with `type = \"postgres\"` (postgres://user@host:port/database)",
                    ));
                }
                if !plain_sql_name(self.schema()) {
                    return Err(ConfigIssue::new(
                        "schema",
                        format!(
                            "`{}` is not a plain SQL name: lower-case letters, digits and `_`, \
                             at most 48 characters, not starting with a digit",
                            self.schema()
                        ),
                    ));
                }
            }
        }
        check_count("max_output", self.max_output as u64, 0, MAX_OUTPUT as u64)
    }
}

impl JournalConfig {
    /// The PostgreSQL schema: `schema`, else `public`.
    pub fn schema(&self) -> &str {
        self.schema.as_deref().unwrap_or("public")
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
    /// A PostgreSQL database: runners on many machines share it, and what it hands over
    /// is relayed to the target tasks' input connectors (RabbitMQ, ...).
    Postgres,
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
