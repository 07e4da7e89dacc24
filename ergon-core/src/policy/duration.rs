//! Serde helpers for durations written as human strings (`"250ms"`, `"2s"`, `"1m 30s"`).
//!
//! Use them in your own settings and connector configs so one duration rule holds
//! everywhere (a human string of at most [`MAX`], 30 days):
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

/// The longest duration a config may hold: 30 days. Every duration ends up added to an
/// instant or given to a timer; bounding them keeps that arithmetic far from overflow,
/// and no timeout, backoff, lease or interval of a transaction framework needs more.
pub const MAX: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// Parses a human duration of at most [`MAX`], with an error that shows the accepted form.
///
/// # Errors
///
/// Text that is not a duration, or one longer than [`MAX`].
///
/// ```
/// use ergon_core::policy::duration::parse;
///
/// assert_eq!(parse("1m 30s").unwrap().as_secs(), 90);
/// assert!(parse("30d").is_ok());
/// assert!(parse("31d").unwrap_err().contains("at most 30days"));
/// ```
pub fn parse(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text.trim()).map_err(|err| {
        format!("invalid duration {text:?} ({err}); write it like \"250ms\", \"2s\" or \"1m 30s\"")
    })?;
    if duration > MAX {
        return Err(format!(
            "duration {text:?} is too long: at most {}",
            humantime::format_duration(MAX)
        ));
    }
    Ok(duration)
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
