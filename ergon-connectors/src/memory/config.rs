//! The `[connectors.NAME]` table of `type = "memory"`.

use ergon_core::config::ConfigIssue;
use serde::{Deserialize, Serialize};

/// `type = "memory"`: an in-process queue. It has no keys besides `type`.
///
/// Every task and worker naming the same `[connectors.NAME]` shares one queue: dispatch
/// and requeue push to its back, fetch pops from its front, dead letters are kept in
/// memory and acks and drops are counted. Nothing survives the process; use a file or a
/// broker for that.
///
/// ```toml
/// [connectors.handoff]
/// type = "memory"
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryConfig {}

impl MemoryConfig {
    /// Checks the values (there are none yet).
    ///
    /// # Errors
    ///
    /// None today; the signature matches the other configs.
    pub fn validate(&self) -> Result<(), ConfigIssue> {
        Ok(())
    }
}
