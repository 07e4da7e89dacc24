//! `[services.NAME]` with `type = "postgres"`.

use serde::{Deserialize, Serialize};

use ergon_core::config::{ConfigIssue, check_count};

use crate::stack::StackConfig;
use ergon_core::config::secret::SecretUrl;

/// Configuration of a `postgres` service.
///
/// ```toml
/// [services.customers]
/// type = "postgres"
/// url = "postgres://app:${PG_PASSWORD}@db:5432/app"
/// pool_size = 8
///
/// [services.customers.stack]
/// timeout = "2s"
/// circuit_breaker = { failures = 5, open_for = "30s" }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresConfig {
    /// The database, `postgres://user:password@host:port/database` (or the key=value
    /// form). A secret: never logged, dumped or put in an error. Required.
    pub url: SecretUrl,
    /// Connections the pool keeps open at most, shared by every task and worker using the
    /// service (a call waits for a free one). `1..=256`. Default: 8.
    pub pool_size: usize,
    /// The layers each call runs behind (see [`crate::stack`]); its `timeout` bounds each
    /// try, waiting for a pooled connection included.
    pub stack: StackConfig,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            url: SecretUrl::default(),
            pool_size: 8,
            stack: StackConfig::default(),
        }
    }
}

impl PostgresConfig {
    /// Checks the values.
    ///
    /// # Errors
    ///
    /// `url` missing or not a PostgreSQL URL, `pool_size` out of bounds, a bad stack
    /// value.
    pub fn validate(&self) -> Result<(), ConfigIssue> {
        if self.url.is_empty() {
            return Err(ConfigIssue::new(
                "url",
                "is required, e.g. \"postgres://app@127.0.0.1:5432/app\"",
            ));
        }
        super::connect::settings(self.url.expose(), "")
            .map_err(|message| ConfigIssue::new("url", message))?;
        check_count("pool_size", self.pool_size as u64, 1, 256)?;
        self.stack.validate().map_err(|issue| issue.under("stack"))
    }
}
