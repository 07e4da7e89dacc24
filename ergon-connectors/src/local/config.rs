//! The `[connectors.NAME]` table of `type = "local"`.

use std::path::PathBuf;
use std::time::Duration;

use ergon_core::config::{ConfigEnv, ConfigIssue};
use serde::{Deserialize, Serialize};

/// `type = "local"`: a named queue in an embedded SQLite database file.
///
/// ```toml
/// [connectors.orders]
/// type = "local"
/// path = "data/queue.db"     # relative to the config file; created when missing
/// queue = "orders"           # default: the connector's name
/// lease = "30s"              # a fetched transaction is invisible this long
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalConfig {
    /// The database file, shared by every queue, worker and process that names it.
    /// Default: `ergon-queue.db` beside the config file.
    pub path: PathBuf,
    /// The queue's name within the file. Default: the connector's name.
    pub queue: Option<String>,
    /// Visibility timeout: a fetched transaction not settled within this long (its
    /// worker died, or is stuck) is delivered again, with its delivery count raised.
    /// Default: `"30s"`.
    #[serde(with = "ergon_core::policy::duration")]
    pub lease: Duration,
    /// Acknowledgements are coalesced into one write and flushed at least this often
    /// (and at close). Default: `"5ms"`.
    #[serde(with = "ergon_core::policy::duration")]
    pub ack_interval: Duration,
}

impl Default for LocalConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("ergon-queue.db"),
            queue: None,
            lease: Duration::from_secs(30),
            ack_interval: Duration::from_millis(5),
        }
    }
}

impl LocalConfig {
    /// Checks the values; the error path is relative to the connector's table.
    ///
    /// # Errors
    ///
    /// An empty path or queue name, a zero lease or ack interval.
    pub fn validate(&self) -> Result<(), ConfigIssue> {
        if self.path.as_os_str().is_empty() {
            return Err(ConfigIssue::new("path", "must not be empty"));
        }
        if self.queue.as_deref() == Some("") {
            return Err(ConfigIssue::new(
                "queue",
                "must not be empty (leave it out for the connector's name)",
            ));
        }
        if self.lease.is_zero() {
            return Err(ConfigIssue::new("lease", "must be greater than zero"));
        }
        if self.ack_interval.is_zero() {
            return Err(ConfigIssue::new(
                "ack_interval",
                "must be greater than zero",
            ));
        }
        Ok(())
    }

    /// The database file resolved against the config file's directory, and the queue's
    /// name (the connector's own when `queue` is not set).
    pub fn resolved(&self, env: &ConfigEnv) -> (PathBuf, String) {
        let queue = self.queue.clone().unwrap_or_else(|| env.name.clone());
        (env.resolve(&self.path), queue)
    }
}
