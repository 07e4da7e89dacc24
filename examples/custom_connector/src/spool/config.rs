//! The `[connectors.NAME]` table of `type = "spool"`.

use std::path::PathBuf;

use ergon_core::config::{ConfigEnv, ConfigIssue, check_count};
use serde::{Deserialize, Serialize};

/// `type = "spool"`: a directory of files, one transaction per file.
///
/// ```toml
/// [connectors.inbox]
/// type = "spool"
/// path = "spool/inbox"   # relative to the config file; created when missing
/// max_bytes = 1048576    # a larger file is dead-lettered at fetch
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpoolConfig {
    /// The spool directory; `ready/`, `processing/`, `dead/` and `tmp/` are created in
    /// it. One process per directory (its workers share it). Required.
    pub path: PathBuf,
    /// Largest file delivered, `1..=67108864` (64 MiB): a larger one is moved to `dead/`
    /// when fetched, without running any step. Default: 1048576 (1 MiB).
    pub max_bytes: u64,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::new(),
            max_bytes: 1 << 20,
        }
    }
}

impl SpoolConfig {
    /// Largest `max_bytes`: a file is read into memory whole.
    pub const MAX_BYTES: u64 = 64 << 20;

    /// Checks the values; the error path is relative to the connector's table.
    ///
    /// # Errors
    ///
    /// A missing `path`, a `max_bytes` out of bounds.
    pub fn validate(&self) -> Result<(), ConfigIssue> {
        if self.path.as_os_str().is_empty() {
            return Err(ConfigIssue::new(
                "path",
                "is required (the spool directory)",
            ));
        }
        check_count("max_bytes", self.max_bytes, 1, Self::MAX_BYTES)
    }

    /// The spool directory resolved against the config file's directory.
    pub fn resolved(&self, env: &ConfigEnv) -> PathBuf {
        env.resolve(&self.path)
    }
}
