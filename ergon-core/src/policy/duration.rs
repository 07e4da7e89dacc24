//! Serde helpers for durations written as human strings (`"250ms"`, `"2s"`, `"1m 30s"`).
//!
//! Use them in your own settings and connector configs so one duration rule holds
//! everywhere:
//!
//! ```
//! use std::time::Duration;
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct Settings {
//!     #[serde(with = "ergon_core::policy::duration")]
//!     poll: Duration,
//!     #[serde(default, with = "ergon_core::policy::duration::option")]
//!     deadline: Option<Duration>,
//! }
//!
//! let s: Settings = serde_json::from_str(r#"{"poll": "250ms"}"#).unwrap();
//! assert_eq!(s.poll, Duration::from_millis(250));
//! assert_eq!(s.deadline, None);
//! ```

use std::time::Duration;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serializer};

/// Parses a human duration, with an error that shows the accepted form.
pub fn parse(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|err| {
        format!("invalid duration {text:?} ({err}); write it like \"250ms\", \"2s\" or \"1m 30s\"")
    })
}

/// Deserializes a duration from a human string.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse(&text).map_err(D::Error::custom)
}

/// Serializes a duration as a human string.
pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&humantime::format_duration(*value))
}

/// The same for `Option<Duration>`; use with `#[serde(default)]`.
pub mod option {
    use super::*;

    /// Deserializes an optional duration from a human string.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        super::deserialize(deserializer).map(Some)
    }

    /// Serializes an optional duration as a human string (or nothing).
    pub fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => super::serialize(value, serializer),
            None => serializer.serialize_none(),
        }
    }
}
