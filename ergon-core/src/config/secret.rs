//! Config values that must never show: tokens, passwords, API keys, and URLs that carry
//! a password. Every connector and service keeps them in these types, so one
//! implementation decides what a log line, an error, a span or a dumped config shows.

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

/// A secret from the config: a bearer token, a password, an API key.
///
/// Written in the TOML as a string, usually `"${VAR}"` (the runner expands variables
/// before decoding). Its `Debug` output and its serialized form are `***`: it never
/// reaches a log, a span, an error message or a dumped config; only
/// [`expose`](Secret::expose) gives it, to put it on the wire.
///
/// # Examples
///
/// ```
/// use ergon_core::config::secret::Secret;
///
/// let key = Secret::new("sk-live-123");
/// assert_eq!(format!("{key:?}"), "Secret(***)");
/// assert_eq!(serde_json::to_string(&key).unwrap(), "\"***\"");
/// assert_eq!(key.expose(), "sk-live-123");
/// ```
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself: only for putting it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether it is empty (an unset variable expanded to nothing, say).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Serialized as `"***"`: a dumped config does not carry the secret.
impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("***")
    }
}

/// A connection URL that may carry a password (`amqp://`, `redis://`, `postgres://`, or
/// libpq's `key=value` form): shown, debugged and serialized with the password as `***`;
/// only [`expose`](SecretUrl::expose) gives it whole, to connect.
///
/// # Examples
///
/// ```
/// use ergon_core::config::secret::SecretUrl;
///
/// let url = SecretUrl::from("amqp://app:s3cr3t@rabbit:5672/%2f");
/// assert_eq!(url.to_string(), "amqp://app:***@rabbit:5672/%2f");
/// assert!(!format!("{url:?}").contains("s3cr3t"));
/// let url = SecretUrl::from("host=db user=app password=s3cr3t dbname=orders");
/// assert_eq!(url.to_string(), "host=db user=app password=*** dbname=orders");
/// assert_eq!(url.expose(), "host=db user=app password=s3cr3t dbname=orders");
/// ```
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// The URL as given, password included: only for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether it is empty (a required URL left out).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for SecretUrl {
    fn from(url: &str) -> Self {
        Self(url.to_owned())
    }
}

impl From<String> for SecretUrl {
    fn from(url: String) -> Self {
        Self(url)
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = &self.0;
        if let Some((scheme, rest)) = url.split_once("://") {
            // scheme://user:password@rest → scheme://user:***@rest
            return match rest.rsplit_once('@') {
                Some((credentials, host)) => match credentials.split_once(':') {
                    Some((user, _)) => write!(f, "{scheme}://{user}:***@{host}"),
                    None => write!(f, "{scheme}://{credentials}@{host}"),
                },
                None => f.write_str(url),
            };
        }
        // key=value settings: every `password=...` masked.
        let masked: Vec<String> = url
            .split_whitespace()
            .map(|setting| match setting.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => setting.to_owned(),
            })
            .collect();
        f.write_str(&masked.join(" "))
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// Serialized as it is shown: a dumped config says where, not the password.
impl Serialize for SecretUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        for (url, shown) in [
            (
                "redis://:pw@127.0.0.1:6379/0",
                "redis://:***@127.0.0.1:6379/0",
            ),
            (
                "postgres://app:pw@db/orders",
                "postgres://app:***@db/orders",
            ),
            ("postgres://app@db/orders", "postgres://app@db/orders"),
            ("amqp://127.0.0.1:5672", "amqp://127.0.0.1:5672"),
            ("amqp://a:b:c@h/v", "amqp://a:***@h/v"),
            ("host=db PASSWORD=pw", "host=db PASSWORD=***"),
        ] {
            let url = SecretUrl::from(url);
            assert_eq!(url.to_string(), shown);
            assert_eq!(serde_json::to_string(&url).unwrap(), format!("\"{shown}\""));
            assert_eq!(format!("{url:?}"), format!("\"{shown}\""));
        }
    }
}
