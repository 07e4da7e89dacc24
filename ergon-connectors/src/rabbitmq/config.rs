//! The `[connectors.NAME]` table of `type = "rabbitmq"`.

use std::collections::BTreeMap;
use std::time::Duration;

use ergon_core::config::ConfigIssue;
use ergon_core::config::secret::SecretUrl;
use serde::{Deserialize, Serialize};

/// `type = "rabbitmq"`: one RabbitMQ queue to consume from, and where dispatched
/// transactions are published.
///
/// ```toml
/// [connectors.orders]
/// type = "rabbitmq"
/// url = "amqp://app:${RABBIT_PASSWORD}@rabbit:5672/%2f"
/// queue = "orders"
/// prefetch = 500
///
/// [connectors.orders.declare]          # omit to declare a durable classic queue
/// kind = "quorum"
/// arguments = { "x-dead-letter-exchange" = "", "x-dead-letter-routing-key" = "orders.dead" }
///
/// [connectors.orders.dead_letter]      # omit to reject to the queue's dead-letter exchange
/// queue = "orders.dead"
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RabbitConfig {
    /// The broker, `amqp://user:password@host:port/vhost` or `amqps://…` (TLS, verified
    /// against the system's certificates and `tls.ca_file`). Never printed with its
    /// password. Default: `amqp://guest:guest@127.0.0.1:5672/%2f`.
    pub url: SecretUrl,
    /// TLS settings of an `amqps://` URL.
    pub tls: TlsConfig,
    /// The queue consumed from (as an input), and the default routing key of dispatches
    /// (as an output). Required for an input.
    pub queue: Option<String>,
    /// Deliveries the broker may have outstanding (unacked) on this worker's channel.
    /// Larger keeps the loop busy and lets acknowledgements coalesce; every unacked
    /// delivery counts against the broker's `consumer_timeout` (30 min by default), so a
    /// worker holding many for long risks having its channel closed. `1..=65535` (the
    /// protocol's own bound: AMQP carries it in 16 bits). Default: 256.
    pub prefetch: u16,
    /// How long a fetch waits for a first delivery before returning an empty batch.
    /// Default: `"200ms"`.
    #[serde(with = "ergon_core::policy::duration")]
    pub fetch_wait: Duration,
    /// Acknowledgements are coalesced (one `basic.ack` with `multiple` for a run of
    /// settled deliveries) and flushed at least this often. Default: `"10ms"`.
    #[serde(with = "ergon_core::policy::duration")]
    pub ack_interval: Duration,
    /// How the consumed queue is declared.
    pub declare: DeclareConfig,
    /// An exchange to declare and bind the queue to (optional).
    pub exchange: Option<ExchangeConfig>,
    /// Where dispatched transactions are published.
    pub publish: PublishConfig,
    /// Where dead letters go. Default: none, the delivery is rejected without requeue and
    /// the broker routes it to the queue's dead-letter exchange (if the queue has one).
    pub dead_letter: Option<DeadLetterConfig>,
    /// Reconnection after the connection or channel is lost.
    pub reconnect: ReconnectConfig,
}

impl Default for RabbitConfig {
    fn default() -> Self {
        Self {
            url: SecretUrl::from("amqp://guest:guest@127.0.0.1:5672/%2f"),
            tls: TlsConfig::default(),
            queue: None,
            prefetch: 256,
            fetch_wait: Duration::from_millis(200),
            ack_interval: Duration::from_millis(10),
            declare: DeclareConfig::default(),
            exchange: None,
            publish: PublishConfig::default(),
            dead_letter: None,
            reconnect: ReconnectConfig::default(),
        }
    }
}

/// `[connectors.NAME.tls]`: what an `amqps://` connection trusts.
///
/// ```toml
/// [connectors.orders.tls]
/// ca_file = "certs/rabbit-ca.pem"     # relative to the config file
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// A PEM file of certificate authorities to trust for the broker, in addition to the
    /// system's: a private CA, or the broker's self-signed certificate. Default: none.
    pub ca_file: Option<std::path::PathBuf>,
}

impl TlsConfig {
    /// The PEM text of `ca_file`, if there is one.
    ///
    /// # Errors
    ///
    /// The file cannot be read, or holds no PEM certificate (the message names the file).
    pub fn ca_pem(&self) -> Result<Option<String>, String> {
        let Some(path) = &self.ca_file else {
            return Ok(None);
        };
        let pem = std::fs::read_to_string(path)
            .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
        if !pem.contains("-----BEGIN CERTIFICATE-----") {
            return Err(format!("{} holds no PEM certificate", path.display()));
        }
        Ok(Some(pem))
    }
}

impl RabbitConfig {
    /// Checks the values; the error path is relative to the connector's table.
    ///
    /// # Errors
    ///
    /// A URL that is not `amqp://` or `amqps://`, a zero prefetch, an empty name.
    pub fn validate(&self) -> Result<(), ConfigIssue> {
        if !(self.url.expose().starts_with("amqp://") || self.url.expose().starts_with("amqps://"))
        {
            return Err(ConfigIssue::new(
                "url",
                format!("must start with amqp:// or amqps://, got {}", self.url),
            ));
        }
        if self.prefetch == 0 {
            return Err(ConfigIssue::new("prefetch", "must be at least 1"));
        }
        self.tls
            .ca_pem()
            .map_err(|message| ConfigIssue::new("tls.ca_file", message))?;
        if self.queue.as_deref() == Some("") {
            return Err(ConfigIssue::new("queue", "must not be empty"));
        }
        if self.ack_interval.is_zero() {
            return Err(ConfigIssue::new(
                "ack_interval",
                "must be greater than zero",
            ));
        }
        if let Some(dead) = &self.dead_letter
            && (dead.queue.is_empty() || Some(&dead.queue) == self.queue.as_ref())
        {
            return Err(ConfigIssue::new(
                "dead_letter.queue",
                "must name a queue other than `queue`",
            ));
        }
        if self.reconnect.backoff.is_zero() || self.reconnect.backoff_cap < self.reconnect.backoff {
            return Err(ConfigIssue::new(
                "reconnect.backoff_cap",
                "backoff must be > 0 and backoff_cap >= backoff",
            ));
        }
        Ok(())
    }

    /// The routing key dispatches use: `publish.routing_key`, else the queue.
    pub(crate) fn routing_key(&self) -> Option<&str> {
        self.publish
            .routing_key
            .as_deref()
            .or(self.queue.as_deref())
    }
}

/// How a queue is declared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeclareConfig {
    /// Use the queue as it exists (declare passively: an error if it is missing) instead of
    /// declaring it. Default: false.
    pub passive: bool,
    /// Survives a broker restart. Default: true.
    pub durable: bool,
    /// `"classic"` or `"quorum"` (replicated; always durable). Default: `"classic"`.
    pub kind: QueueKind,
    /// Queue arguments, such as `x-dead-letter-exchange`, `x-message-ttl`,
    /// `x-max-length`. Strings, integers, floats and booleans.
    pub arguments: BTreeMap<String, serde_json::Value>,
}

impl Default for DeclareConfig {
    fn default() -> Self {
        Self {
            passive: false,
            durable: true,
            kind: QueueKind::Classic,
            arguments: BTreeMap::new(),
        }
    }
}

/// The type of a queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueKind {
    /// A classic queue.
    #[default]
    Classic,
    /// A quorum queue (`x-queue-type = quorum`).
    Quorum,
}

/// An exchange the queue is bound to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeConfig {
    /// Its name. Required.
    pub name: String,
    /// `"direct"`, `"fanout"`, `"topic"` or `"headers"`. Default: `"direct"`.
    #[serde(default = "direct")]
    pub kind: String,
    /// Survives a broker restart. Default: true.
    #[serde(default = "yes")]
    pub durable: bool,
    /// Use it as it exists instead of declaring it. Default: false.
    #[serde(default)]
    pub passive: bool,
    /// Routing keys binding the queue to it. Default: the queue's name.
    #[serde(default)]
    pub bindings: Vec<String>,
}

fn direct() -> String {
    "direct".to_owned()
}

fn yes() -> bool {
    true
}

/// Where dispatches are published.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PublishConfig {
    /// The exchange. Default: the `exchange` table's, else the default exchange (`""`).
    pub exchange: Option<String>,
    /// The routing key. Default: `queue`.
    pub routing_key: Option<String>,
}

/// Dead letters published to a queue of their own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterConfig {
    /// The queue (declared durable, like `queue`, unless `declare.passive`). Each dead
    /// letter is the original message with headers `x-ergon-error-category`,
    /// `x-ergon-error-message`, `x-ergon-attempts`, `x-ergon-task` and `x-ergon-step`; it is
    /// published with confirms, and only then is the original delivery acked.
    pub queue: String,
}

/// Reconnection: `backoff * 2^(n-1)` after the n-th failed attempt in a row, capped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReconnectConfig {
    /// First wait. Default: `"200ms"`.
    #[serde(with = "ergon_core::policy::duration")]
    pub backoff: Duration,
    /// Longest wait. Default: `"10s"`.
    #[serde(with = "ergon_core::policy::duration")]
    pub backoff_cap: Duration,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        Self {
            backoff: Duration::from_millis(200),
            backoff_cap: Duration::from_secs(10),
        }
    }
}

impl ReconnectConfig {
    /// The wait after the `n`-th failed attempt in a row (`n >= 1`).
    pub(crate) fn delay_after(&self, n: u32) -> Duration {
        let factor = 2u32.saturating_pow(n.saturating_sub(1).min(30));
        self.backoff.saturating_mul(factor).min(self.backoff_cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_backoff_doubles_up_to_its_cap() {
        let r = ReconnectConfig::default();
        let waits: Vec<u128> = (1..=8).map(|n| r.delay_after(n).as_millis()).collect();
        assert_eq!(waits, [200, 400, 800, 1600, 3200, 6400, 10000, 10000]);
    }

    #[test]
    fn validation_names_the_key() {
        let mut c = RabbitConfig {
            queue: Some("orders".into()),
            ..RabbitConfig::default()
        };
        c.validate().unwrap();
        c.url = SecretUrl::from("http://x");
        assert_eq!(c.validate().unwrap_err().path, "url");
        c.url = SecretUrl::from("amqp://x");
        c.dead_letter = Some(DeadLetterConfig {
            queue: "orders".into(),
        });
        assert_eq!(c.validate().unwrap_err().path, "dead_letter.queue");
    }
}
