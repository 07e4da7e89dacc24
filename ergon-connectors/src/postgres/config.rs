//! The `[connectors.NAME]` table of `type = "postgres"`.

use std::time::Duration;

use ergon_core::config::secret::SecretUrl;
use ergon_core::config::{ConfigIssue, check_count, plain_sql_name};
use ergon_services::postgres::connect;
use serde::{Deserialize, Serialize};

/// `type = "postgres"`: a named queue in a PostgreSQL table.
///
/// ```toml
/// [connectors.orders]
/// type = "postgres"
/// url = "postgres://app:${PG_PASSWORD}@db:5432/app"
/// schema = "ergon"          # created on first use
/// queue = "orders"          # default: the connector's name
/// lease = "30s"
/// on_ack = "delete"         # or "mark_done"
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresConfig {
    /// The database, `postgres://user:password@host:port/database` (or the key=value
    /// form). Never printed with its password. Required.
    pub url: SecretUrl,
    /// The schema holding the queue table `ergon_queue` and the dead-letter table
    /// `ergon_dead_letter`; created with them on first use. A plain SQL name (lower-case
    /// letters, digits and `_`, not starting with a digit, at most 48 characters).
    /// Default: `"ergon"`.
    pub schema: String,
    /// The queue's name: the tables hold any number of queues, told apart by this name.
    /// Default: the connector's name.
    pub queue: Option<String>,
    /// A claimed row is invisible to other consumers this long; one not settled by then
    /// (its runner was killed, or hangs) is claimed again, with its delivery count
    /// raised. Default: `"30s"`.
    #[serde(with = "ergon_core::policy::duration")]
    pub lease: Duration,
    /// What an acknowledgement does to the row. Default: `"delete"`.
    pub on_ack: OnAck,
    /// Acknowledgements are coalesced into one statement, written when 256 are waiting
    /// or this long after the last write (and at close). Each write is a commit (a WAL
    /// flush); acks lost in a crash only mean redeliveries. Default: `"25ms"`.
    #[serde(with = "ergon_core::policy::duration")]
    pub ack_interval: Duration,
    /// How long a fetch that found nothing waits for a notification of new rows before it
    /// looks once more and returns (empty if still nothing). Default: `"200ms"`.
    #[serde(with = "ergon_core::policy::duration")]
    pub fetch_wait: Duration,
    /// Connections each worker keeps for claims, settlements and dispatches (the
    /// LISTEN connection is apart). `1..=64`. Default: 4.
    pub pool_size: usize,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            url: SecretUrl::default(),
            schema: "ergon".to_owned(),
            queue: None,
            lease: Duration::from_secs(30),
            on_ack: OnAck::Delete,
            ack_interval: Duration::from_millis(25),
            fetch_wait: Duration::from_millis(200),
            pool_size: 4,
        }
    }
}

/// What acknowledging a row does (`on_ack`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnAck {
    /// Delete the row.
    #[default]
    Delete,
    /// Keep the row, stamped with `done_at`, out of every later claim (an audit trail;
    /// purge it yourself).
    MarkDone,
}

impl PostgresConfig {
    /// Checks the values; the error path is relative to the connector's table.
    ///
    /// # Errors
    ///
    /// A missing or malformed `url`, a schema that is not a plain SQL name, an empty
    /// queue name, a zero duration, a pool size out of bounds.
    pub fn validate(&self) -> Result<(), ConfigIssue> {
        if self.url.is_empty() {
            return Err(ConfigIssue::new(
                "url",
                "is required, e.g. \"postgres://app@127.0.0.1:5432/app\"",
            ));
        }
        connect::settings(self.url.expose(), "")
            .map_err(|message| ConfigIssue::new("url", message))?;
        if !plain_sql_name(&self.schema) {
            return Err(ConfigIssue::new(
                "schema",
                format!(
                    "`{}` is not a plain SQL name (lower-case letters, digits and `_`, at most \
                     48 characters, not starting with a digit)",
                    self.schema
                ),
            ));
        }
        if self.queue.as_deref() == Some("") {
            return Err(ConfigIssue::new(
                "queue",
                "must not be empty (leave it out for the connector's name)",
            ));
        }
        for (key, value) in [
            ("lease", self.lease),
            ("ack_interval", self.ack_interval),
            ("fetch_wait", self.fetch_wait),
        ] {
            if value.is_zero() {
                return Err(ConfigIssue::new(key, "must be greater than zero"));
            }
        }
        check_count("pool_size", self.pool_size as u64, 1, 64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_key() {
        let mut c = PostgresConfig {
            url: "postgres://postgres@127.0.0.1/test".into(),
            ..PostgresConfig::default()
        };
        c.validate().unwrap();
        c.schema = "Ergon".into();
        assert_eq!(c.validate().unwrap_err().path, "schema");
        c.schema = "ergon".into();
        c.lease = Duration::ZERO;
        assert_eq!(c.validate().unwrap_err().path, "lease");
        c.lease = Duration::from_secs(1);
        c.pool_size = 0;
        assert_eq!(c.validate().unwrap_err().path, "pool_size");
        c.pool_size = 1;
        c.url = "http://x y".into();
        assert_eq!(c.validate().unwrap_err().path, "url");
        c.url = "".into();
        assert_eq!(c.validate().unwrap_err().path, "url");
    }
}
