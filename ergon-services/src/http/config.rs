//! `[services.NAME]` with `type = "http"`.

use serde::{Deserialize, Serialize};

use ergon_core::config::ConfigIssue;

use crate::stack::StackConfig;

/// Configuration of an `http` service.
///
/// ```toml
/// [services.rates]
/// type = "http"
/// base_url = "http://rates.internal:8080/api"
/// health_path = "/health"
///
/// [services.rates.stack]
/// timeout = "2s"
/// retry = { max_attempts = 3 }
/// circuit_breaker = { failures = 5, open_for = "30s" }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Prefix of every request's URL (`http://host:port/path`); request paths are appended
    /// to it. Required. Plain HTTP: this build has no TLS.
    pub base_url: String,
    /// Path asked by the health check (`validate --connect`, `/health/ready`); any answer
    /// below 500 is healthy. Default: `"/"`.
    pub health_path: String,
    /// The layers each call runs behind (see [`crate::stack`]).
    pub stack: StackConfig,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            base_url: String::new(),
            health_path: "/".into(),
            stack: StackConfig::default(),
        }
    }
}

impl HttpConfig {
    /// Checks the values.
    ///
    /// # Errors
    ///
    /// `base_url` missing or not `http://`, or a bad stack value.
    pub fn validate(&self) -> Result<(), ConfigIssue> {
        if self.base_url.is_empty() {
            return Err(ConfigIssue::new(
                "base_url",
                "is required, e.g. \"http://127.0.0.1:8080\"",
            ));
        }
        let Ok(url) = reqwest::Url::parse(&self.base_url) else {
            return Err(ConfigIssue::new("base_url", "is not a URL"));
        };
        if url.scheme() != "http" {
            return Err(ConfigIssue::new(
                "base_url",
                format!(
                    "scheme `{}` is not supported: this build speaks plain http://",
                    url.scheme()
                ),
            ));
        }
        self.stack.validate().map_err(|issue| issue.under("stack"))
    }
}
