//! The `[connectors.NAME]` table of `type = "redis_streams"`.

use std::time::Duration;

use ergon_core::config::secret::SecretUrl;
use ergon_core::config::{ConfigIssue, check_count};
use serde::{Deserialize, Serialize};

/// `type = "redis_streams"`: one Redis stream, read through a consumer group, and where
/// dispatched transactions are added.
///
/// ```toml
/// [connectors.orders]
/// type = "redis_streams"
/// url = "redis://:${REDIS_PASSWORD}@127.0.0.1:6379/0"
/// stream = "orders"
/// group = "billing"                  # default: the connector's name
/// block = "100ms"
/// claim_idle = "30s"
/// dead_letter_stream = "orders:dead" # the default: `<stream>:dead`
/// maxlen = 1000000                   # optional: XADD … MAXLEN ~ 1000000
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisStreamsConfig {
    /// The server, `redis://[user][:password@]host[:port][/db]`. Never printed with its
    /// password. Default: `redis://127.0.0.1:6379`.
    pub url: SecretUrl,
    /// The stream read from (as an input) and added to (as an output). Required.
    pub stream: String,
    /// The consumer group reading the stream, created on first use at the start of the
    /// stream (`XGROUP CREATE <stream> <group> 0 MKSTREAM`): a new group sees every entry
    /// the stream already holds, as a work queue should. Default: the connector's name
    /// (`[connectors.NAME]`).
    pub group: Option<String>,
    /// This process's consumer name in the group; each worker adds `-<worker>` to it, so
    /// that every worker is a consumer of its own. Default: `<hostname>-<pid>`, unique per
    /// process (a restarted process is a new consumer; the entries of the old one are
    /// reclaimed after `claim_idle`).
    pub consumer: Option<String>,
    /// How long a read waits for new entries when none is waiting (`XREADGROUP … BLOCK`)
    /// before the fetch returns an empty batch. `1ms..=10s`. Default: `"100ms"`.
    #[serde(with = "ergon_core::policy::duration")]
    pub block: Duration,
    /// An entry delivered to a consumer and neither acknowledged nor settled for this
    /// long is taken over by another consumer of the group (`XAUTOCLAIM`) and delivered
    /// again, its delivery count one higher: how the entries of a crashed worker come
    /// back. Longer than the slowest transaction, or a slow one is delivered twice. Every
    /// consumer looks for such entries every `claim_idle / 2`. Default: `"30s"`.
    #[serde(with = "ergon_core::policy::duration")]
    pub claim_idle: Duration,
    /// Where dead letters are added. Default: `<stream>:dead`.
    pub dead_letter_stream: Option<String>,
    /// Caps the stream at about this many entries (`XADD … MAXLEN ~ n`) when adding to it
    /// (dispatches, requeues), and the dead-letter stream likewise. Redis trims the oldest
    /// entries, delivered or not: set it only when losing the oldest entries is acceptable.
    /// `1..=2^53`. Default: none (no trimming).
    pub maxlen: Option<u64>,
    /// Deletes an entry from the stream (`XDEL`) when it is acknowledged, so that the
    /// stream does not grow forever; `false` keeps acknowledged entries (trim them with
    /// `maxlen`, or let another group read them too). Default: `true`.
    pub delete_on_ack: bool,
    /// Acknowledgements are coalesced (one `XACK` with many ids) and sent at least this
    /// often, at once when 256 are waiting, and at close. Default: `"10ms"`.
    #[serde(with = "ergon_core::policy::duration")]
    pub ack_interval: Duration,
    /// How long a command may wait for its answer before it fails (a read waits `block`
    /// more). Default: `"5s"`.
    #[serde(with = "ergon_core::policy::duration")]
    pub command_timeout: Duration,
}

impl Default for RedisStreamsConfig {
    fn default() -> Self {
        Self {
            url: SecretUrl::from("redis://127.0.0.1:6379"),
            stream: String::new(),
            group: None,
            consumer: None,
            block: Duration::from_millis(100),
            claim_idle: Duration::from_secs(30),
            dead_letter_stream: None,
            maxlen: None,
            delete_on_ack: true,
            ack_interval: Duration::from_millis(10),
            command_timeout: Duration::from_secs(5),
        }
    }
}

/// The longest `block`: a fetch should come back often enough for a loop to stop.
const MAX_BLOCK: Duration = Duration::from_secs(10);

impl RedisStreamsConfig {
    /// Checks the values; the error path is relative to the connector's table.
    ///
    /// # Errors
    ///
    /// A URL that is not `redis://`, an empty stream, group or consumer, a dead-letter
    /// stream equal to `stream`, a `block` outside `1ms..=10s`, a zero `claim_idle`,
    /// `ack_interval` or `command_timeout`, a `maxlen` of 0.
    pub fn validate(&self) -> Result<(), ConfigIssue> {
        if !self.url.expose().starts_with("redis://") {
            return Err(ConfigIssue::new(
                "url",
                format!("must start with redis://, got {}", self.url),
            ));
        }
        if let Err(err) = redis::Client::open(self.url.expose()) {
            // redis-rs names the problem, never the URL.
            return Err(ConfigIssue::new("url", format!("{}: {err}", self.url)));
        }
        if self.stream.is_empty() {
            return Err(ConfigIssue::new("stream", "required: the stream to use"));
        }
        for (key, value) in [
            ("group", &self.group),
            ("consumer", &self.consumer),
            ("dead_letter_stream", &self.dead_letter_stream),
        ] {
            if value.as_deref() == Some("") {
                return Err(ConfigIssue::new(key, "must not be empty"));
            }
        }
        if self.dead_letter_stream() == self.stream {
            return Err(ConfigIssue::new(
                "dead_letter_stream",
                "must name a stream other than `stream`",
            ));
        }
        if self.block.is_zero() || self.block > MAX_BLOCK {
            return Err(ConfigIssue::new(
                "block",
                format!("must be between 1ms and 10s, got {:?}", self.block),
            ));
        }
        for (key, value) in [
            ("claim_idle", self.claim_idle),
            ("ack_interval", self.ack_interval),
            ("command_timeout", self.command_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigIssue::new(key, "must be greater than zero"));
            }
        }
        if let Some(maxlen) = self.maxlen {
            check_count("maxlen", maxlen, 1, 1 << 53)?;
        }
        Ok(())
    }

    /// The dead-letter stream: `dead_letter_stream`, else `<stream>:dead`.
    pub fn dead_letter_stream(&self) -> String {
        self.dead_letter_stream
            .clone()
            .unwrap_or_else(|| format!("{}:dead", self.stream))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_key() {
        let mut c = RedisStreamsConfig {
            stream: "orders".into(),
            ..RedisStreamsConfig::default()
        };
        c.validate().unwrap();
        assert_eq!(c.dead_letter_stream(), "orders:dead");
        c.dead_letter_stream = Some("orders".into());
        assert_eq!(c.validate().unwrap_err().path, "dead_letter_stream");
        c.dead_letter_stream = None;
        c.block = Duration::ZERO;
        assert_eq!(c.validate().unwrap_err().path, "block");
        c.block = Duration::from_millis(100);
        c.url = SecretUrl::from("amqp://x");
        assert_eq!(c.validate().unwrap_err().path, "url");
    }
}
