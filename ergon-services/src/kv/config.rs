//! `[services.NAME]` with `type = "memory_kv"`.

use serde::{Deserialize, Serialize};

use ergon_core::config::ConfigIssue;

/// Configuration of a `memory_kv` service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryKvConfig {
    /// Most entries held; inserting a new key beyond it is a system error, so memory
    /// stays bounded. Default: 1000000.
    pub max_entries: usize,
}

impl Default for MemoryKvConfig {
    fn default() -> Self {
        Self {
            max_entries: 1_000_000,
        }
    }
}

impl MemoryKvConfig {
    /// Checks the values.
    ///
    /// # Errors
    ///
    /// `max_entries` is zero.
    pub fn validate(&self) -> Result<(), ConfigIssue> {
        if self.max_entries == 0 {
            return Err(ConfigIssue::new("max_entries", "must be at least 1"));
        }
        Ok(())
    }
}
