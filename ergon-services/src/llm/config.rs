//! `[services.NAME]` with `type = "llm"`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use ergon_core::config::ConfigIssue;

use crate::http::client::{Auth, ClientOptions, validate_url};
use crate::stack::StackConfig;
use ergon_core::config::secret::Secret;

/// Configuration of an `llm` service: an OpenAI-compatible chat-completions endpoint.
///
/// ```toml
/// [services.planner]
/// type = "llm"
/// base_url = "https://api.openai.com/v1"
/// model = "gpt-4o-mini"
/// api_key = "${OPENAI_API_KEY}"
/// temperature = 0.2
/// max_tokens = 512
/// stack = { timeout = "60s", retry = { max_attempts = 3, backoff_cap = "20s" } }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmConfig {
    /// The API's root: requests go to `{base_url}/chat/completions`. Default:
    /// `"https://api.openai.com/v1"`.
    pub base_url: String,
    /// The model asked (`model` of every request). Required.
    pub model: String,
    /// Sent as `Authorization: Bearer <key>`; write `"${OPENAI_API_KEY}"`. Never logged.
    /// Default: none (a local server without authentication).
    pub api_key: Option<Secret>,
    /// Sampling temperature, `0.0..=2.0`. Default: the server's.
    pub temperature: Option<f64>,
    /// Most tokens an answer may have (`max_tokens`). Default: the server's.
    pub max_tokens: Option<u32>,
    /// Headers sent with every request (`{ "OpenAI-Organization" = "org-…" }`). Default:
    /// none.
    pub headers: BTreeMap<String, String>,
    /// A PEM file of CA certificates trusted besides the platform's roots, relative to the
    /// config file. Default: none.
    pub ca_file: Option<PathBuf>,
    /// Path asked by the health check (with the key): healthy unless the answer is 401,
    /// 403 or 5xx, or none comes. Default: `"/models"`.
    pub health_path: String,
    /// The layers each call runs behind (see [`crate::stack`]). Models are slow: raise
    /// `timeout` from its 10 s default for long answers.
    pub stack: StackConfig,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            base_url: "https://api.openai.com/v1".into(),
            model: String::new(),
            api_key: None,
            temperature: None,
            max_tokens: None,
            headers: BTreeMap::new(),
            ca_file: None,
            health_path: "/models".into(),
            stack: StackConfig::default(),
        }
    }
}

impl LlmConfig {
    /// Checks the values.
    ///
    /// # Errors
    ///
    /// The first offending key: `base_url`, `model`, `api_key` (empty), `temperature`,
    /// `max_tokens`, a header, or a stack value.
    pub fn validate(&self) -> Result<(), ConfigIssue> {
        validate_url("base_url", &self.base_url)?;
        if self.model.is_empty() {
            return Err(ConfigIssue::new(
                "model",
                "is required, e.g. \"gpt-4o-mini\"",
            ));
        }
        if self.api_key.as_ref().is_some_and(Secret::is_empty) {
            return Err(ConfigIssue::new(
                "api_key",
                "is empty (an unset variable?); leave it out for a server without keys",
            ));
        }
        if let Some(t) = self.temperature {
            if !(0.0..=2.0).contains(&t) {
                return Err(ConfigIssue::new(
                    "temperature",
                    format!("must be within 0.0..=2.0, got {t}"),
                ));
            }
        }
        if self.max_tokens == Some(0) {
            return Err(ConfigIssue::new("max_tokens", "must be at least 1"));
        }
        self.client_options().validate()?;
        self.stack.validate().map_err(|issue| issue.under("stack"))
    }

    /// The client's options: `headers`, the key as a bearer token, `ca_file`.
    pub fn client_options(&self) -> ClientOptions {
        ClientOptions {
            headers: self.headers.clone(),
            auth: self.api_key.clone().map(Auth::Bearer),
            ca_file: self.ca_file.clone(),
        }
    }
}
