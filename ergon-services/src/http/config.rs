//! `[services.NAME]` with `type = "http"`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use ergon_core::config::ConfigIssue;

use super::client::{Auth, ClientOptions, validate_url};
use crate::stack::StackConfig;

/// Configuration of an `http` service.
///
/// ```toml
/// [services.rates]
/// type = "http"
/// base_url = "https://rates.internal:8443/api"
/// health_path = "/health"
/// headers = { "x-client" = "ergon" }
/// auth = { bearer = "${RATES_TOKEN}" }
///
/// [services.rates.stack]
/// timeout = "2s"
/// retry = { max_attempts = 3 }
/// circuit_breaker = { failures = 5, open_for = "30s" }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Prefix of every request's URL (`http://host:port/path` or `https://…`); request
    /// paths are appended to it. Required. `https://` is verified against the platform's
    /// roots and `ca_file`. No credentials in it: use `auth`.
    pub base_url: String,
    /// Path asked by the health check (`validate --connect`, `/health/ready`); any answer
    /// below 500 is healthy. Default: `"/"`.
    pub health_path: String,
    /// Headers sent with every request (`{ "x-client" = "ergon" }`). Default: none.
    pub headers: BTreeMap<String, String>,
    /// Credentials sent with every request as `Authorization`: `{ bearer = "${TOKEN}" }`
    /// or `{ basic = { user = "…", password = "${PASSWORD}" } }`. Never logged. Default:
    /// none.
    pub auth: Option<Auth>,
    /// A PEM file of CA certificates trusted besides the platform's roots (a private CA),
    /// relative to the config file. Default: none.
    pub ca_file: Option<PathBuf>,
    /// The layers each call runs behind (see [`crate::stack`]).
    pub stack: StackConfig,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            base_url: String::new(),
            health_path: "/".into(),
            headers: BTreeMap::new(),
            auth: None,
            ca_file: None,
            stack: StackConfig::default(),
        }
    }
}

impl HttpConfig {
    /// Checks the values.
    ///
    /// # Errors
    ///
    /// `base_url` missing, not `http://` or `https://`, or with credentials; a bad header,
    /// `auth` or stack value.
    pub fn validate(&self) -> Result<(), ConfigIssue> {
        validate_url("base_url", &self.base_url)?;
        self.client_options().validate()?;
        self.stack.validate().map_err(|issue| issue.under("stack"))
    }

    /// The client's options: `headers`, `auth`, `ca_file`.
    pub fn client_options(&self) -> ClientOptions {
        ClientOptions {
            headers: self.headers.clone(),
            auth: self.auth.clone(),
            ca_file: self.ca_file.clone(),
        }
    }
}
