//! The dead letters of a queue as `queue dead-letters` lists them, with their payloads
//! decoded back to the exact bytes that were enqueued.

use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::deployment::Deployment;
use super::error::{Error, Result};

/// One dead letter.
#[derive(Clone, Debug)]
pub struct DeadLetter {
    /// The transaction id.
    pub id: String,
    /// How often it was delivered before it was dead-lettered.
    pub deliveries: u32,
    /// The failure as the transport stored it (task, step, category, error, attempts), or
    /// null.
    pub failure: serde_json::Value,
    /// The payload, byte for byte.
    pub payload: Vec<u8>,
}

impl DeadLetter {
    /// The failure's `attempts` (0 when the transport kept none).
    pub fn attempts(&self) -> u64 {
        self.failure["attempts"].as_u64().unwrap_or(0)
    }

    /// The failure's error message (empty when the transport kept none).
    pub fn error(&self) -> &str {
        self.failure["error"].as_str().unwrap_or_default()
    }
}

/// A line of `queue dead-letters`.
#[derive(Deserialize)]
struct Listed {
    id: String,
    deliveries: u32,
    failure: serde_json::Value,
    payload: Box<RawValue>,
    payload_encoding: String,
}

/// The dead letters of `connector` in `deployment`, oldest first (up to `limit`).
///
/// # Errors
///
/// The command failed, or printed a line that is not a dead letter.
pub fn list(deployment: &Deployment, connector: &str, limit: usize) -> Result<Vec<DeadLetter>> {
    let limit = limit.to_string();
    let out = deployment.run(
        &["queue", "dead-letters", connector, "--limit", &limit],
        Duration::from_secs(120),
    )?;
    out.lines()
        .map(|line| {
            let listed: Listed = serde_json::from_str(line)
                .map_err(|err| Error::Output(format!("dead letter {line:?}: {err}")))?;
            let payload =
                ergon_connectors::jsonl::decode(&listed.payload, &listed.payload_encoding)
                    .map_err(|err| Error::Output(format!("dead letter {}: {err}", listed.id)))?;
            Ok(DeadLetter {
                id: listed.id,
                deliveries: listed.deliveries,
                failure: listed.failure,
                payload,
            })
        })
        .collect()
}
