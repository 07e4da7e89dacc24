//! `[services.NAME]` with `type = "memory_kv"`.

use serde::{Deserialize, Serialize};

use ergon_core::config::{ConfigIssue, check_count};

/// Configuration of a `memory_kv` service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryKvConfig {
    /// Most entries held; inserting a new key beyond it is a system error, so memory
    /// stays bounded. `1..=1000000000` ([`MAX_ENTRIES`](Self::MAX_ENTRIES)).
    /// Default: 1000000.
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
    /// Largest `max_entries`: a billion keys is well past what one process should hold
    /// in memory.
    pub const MAX_ENTRIES: usize = 1_000_000_000;

    /// Checks the values.
    ///
    /// # Errors
    ///
    /// `max_entries` outside `1..=MAX_ENTRIES`.
    pub fn validate(&self) -> Result<(), ConfigIssue> {
        check_count(
            "max_entries",
            self.max_entries as u64,
            1,
            Self::MAX_ENTRIES as u64,
        )
    }
}
