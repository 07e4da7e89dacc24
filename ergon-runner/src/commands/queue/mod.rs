//! `queue`: feed and inspect the queues of the config file's connectors.
//!
//! ```text
//! ergon-runner queue enqueue CONNECTOR [--file FILE] [--strict]
//!                                              lines from FILE or stdin, into a local queue
//! ergon-runner queue stats [CONNECTOR...]      counts per queue (local: ready, in flight,
//!                                              expired, dead)
//! ergon-runner queue dead-letters CONNECTOR [--limit N]
//!                                              the failures, one JSON line each
//! ergon-runner queue requeue-dead CONNECTOR    put the dead letters back
//! ```
//!
//! `stats`, `dead-letters` and `requeue-dead` work on every connector whose kind keeps
//! dead letters ([`MakeConnector::admin`](ergon_core::config::MakeConnector::admin)):
//! `local`, `postgres`, `redis_streams`, and `rabbitmq` with a dead-letter queue of its
//! own. `enqueue` writes into local queues (`type = "local"`).

mod dead_letters;
#[cfg(feature = "local")]
mod enqueue;

pub use dead_letters::{dead_letters, requeue_dead, stats};
#[cfg(feature = "local")]
pub use enqueue::enqueue;

use crate::config::{ConfigError, LoadedConfig};

/// Turns an error of `connector`'s transport into a config error naming the connector.
fn failed<'a, E: std::fmt::Display>(
    loaded: &'a LoadedConfig,
    connector: &'a str,
    what: &'a str,
) -> impl FnOnce(E) -> ConfigError + 'a {
    move |err| {
        ConfigError::new(
            &loaded.file,
            format!("connectors.{connector}"),
            format!("{what}: {err}"),
        )
    }
}
