//! The `[connectors.NAME]` table of `type = "http"`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ergon_core::config::{ConfigEnv, ConfigIssue};
use ergon_services::http::client::{Auth, ClientOptions, validate_url};
use serde::{Deserialize, Serialize};

/// `type = "http"`: an HTTP endpoint that dispatched transactions are sent to, and that
/// an input polls for new ones.
///
/// ```toml
/// [connectors.partner]
/// type = "http"
/// url = "https://partner.example.com/v1/orders"
/// method = "POST"                       # or "PUT"
/// batch = false                         # true: one JSON array per dispatch
/// idempotency_header = "Idempotency-Key"
/// auth = { bearer = "${PARTNER_TOKEN}" }
/// headers = { "x-client" = "ergon" }
///
/// # as an input: GET url?after=<cursor>, a JSON array (or { "items": [...], ... })
/// id_field = "id"
/// cursor = { param = "after", from = "last_id" }
/// cursor_file = "state/partner.cursor"
/// dead_letter = "out/partner.dead.jsonl"
/// ```
///
/// Relative paths are resolved from the directory of the config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConnectorConfig {
    /// The endpoint: dispatches are sent to it, an input polls it with `GET`. `http://`
    /// or `https://` (verified against the platform's roots and `ca_file`), no
    /// credentials in it (use `auth`). Required.
    pub url: String,
    /// The method of dispatches: `"POST"` or `"PUT"`. Default: `"POST"`.
    pub method: DispatchMethod,
    /// `false`: one request per dispatched transaction, its payload as the body. `true`:
    /// one request per dispatch call, a JSON array of its transactions' payloads (each must
    /// be JSON). Default: `false`.
    pub batch: bool,
    /// The header carrying the idempotency key of a dispatch: the transaction's id, or for
    /// a batch the SHA-256 (hex) of its ids joined by `\n` (the same batch retried sends
    /// the same key). Default: `"Idempotency-Key"`.
    pub idempotency_header: String,
    /// Headers sent with every request. Default: none.
    pub headers: BTreeMap<String, String>,
    /// Credentials sent with every request as `Authorization`: `{ bearer = "${TOKEN}" }`
    /// or `{ basic = { user = "…", password = "${PASSWORD}" } }`. Never logged. Default:
    /// none.
    pub auth: Option<Auth>,
    /// A PEM file of CA certificates trusted besides the platform's roots. Default: none.
    pub ca_file: Option<PathBuf>,
    /// Input: the field of each polled element that is its transaction's id (a string, or
    /// an integer written out). An element without it is still delivered, with id
    /// `<polled URL>#<page>.<index>` (page counted from 0 in each run), so that the task
    /// can reject it. Default: `"id"`.
    pub id_field: String,
    /// Input: when a poll answers an object rather than an array, the JSON pointer of the
    /// array in it. Default: `"/items"`.
    pub items: String,
    /// Input: how the poll's position advances. Default: none, every poll asks the same
    /// URL and the endpoint alone decides what it returns.
    pub cursor: Option<CursorConfig>,
    /// Input: the cursor of the first poll when `cursor_file` holds none. Default: none
    /// (the first poll sends no cursor parameter).
    pub start_cursor: Option<String>,
    /// Input: where the cursor is kept across restarts, rewritten (atomically) each time a
    /// page is settled. Default: none, the cursor lives in memory and every run starts at
    /// `start_cursor`.
    pub cursor_file: Option<PathBuf>,
    /// Input: a query parameter carrying the fetch's batch size (`limit=256`). Default:
    /// none (the endpoint's page size).
    pub limit_param: Option<String>,
    /// Input: where dead letters go, one JSON object line each, as the `file` connector
    /// writes them (see [`FileConfig::dead_letter`](crate::file::FileConfig::dead_letter)).
    /// Default: `<NAME>.dead.jsonl` beside the config file.
    pub dead_letter: Option<PathBuf>,
    /// The URL the health check asks with `GET` (any answer below 500 is healthy).
    /// Default: `url`.
    pub health_url: Option<String>,
}

impl Default for HttpConnectorConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            method: DispatchMethod::Post,
            batch: false,
            idempotency_header: "Idempotency-Key".into(),
            headers: BTreeMap::new(),
            auth: None,
            ca_file: None,
            id_field: "id".into(),
            items: "/items".into(),
            cursor: None,
            start_cursor: None,
            cursor_file: None,
            limit_param: None,
            dead_letter: None,
            health_url: None,
        }
    }
}

/// `method`: how dispatches are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DispatchMethod {
    /// `POST`.
    #[serde(rename = "POST")]
    Post,
    /// `PUT`.
    #[serde(rename = "PUT")]
    Put,
}

/// `cursor`: where the next poll starts.
///
/// Each poll sends the cursor as the query parameter `param` (none before the first
/// cursor is known). The next cursor is read from the answer, as `from` says:
///
/// * `"last_id"`: the id of the page's last element;
/// * `"header:<name>"`: that header of the answer (`"header:x-next-cursor"`);
/// * a JSON pointer (`"/next"`): that string or number in the answer's object (an answer
///   `{ "items": [...], "next": "c2" }`).
///
/// A page that gives no next cursor (no header, `"next": null`) is the last one: once it
/// is settled the input is exhausted and later fetches return nothing. An empty page
/// leaves the cursor where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CursorConfig {
    /// The query parameter. Default: `"after"`.
    pub param: String,
    /// Where the next cursor comes from. Default: `"last_id"`.
    pub from: String,
}

impl Default for CursorConfig {
    fn default() -> Self {
        Self {
            param: "after".into(),
            from: "last_id".into(),
        }
    }
}

/// [`CursorConfig::from`], parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum CursorFrom {
    LastId,
    Header(reqwest::header::HeaderName),
    Pointer(String),
}

impl CursorConfig {
    pub(super) fn parse_from(&self) -> Result<CursorFrom, ConfigIssue> {
        if self.from == "last_id" {
            Ok(CursorFrom::LastId)
        } else if let Some(name) = self.from.strip_prefix("header:") {
            reqwest::header::HeaderName::from_bytes(name.trim().as_bytes())
                .map(CursorFrom::Header)
                .map_err(|_| ConfigIssue::new("from", format!("`{name}` is not a header name")))
        } else if self.from.starts_with('/') {
            Ok(CursorFrom::Pointer(self.from.clone()))
        } else {
            Err(ConfigIssue::new(
                "from",
                format!(
                    "`{}` is not \"last_id\", \"header:<name>\" or a JSON pointer (\"/next\")",
                    self.from
                ),
            ))
        }
    }
}

impl HttpConnectorConfig {
    /// A config for `url` with the other keys at their defaults.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }

    /// Checks the values; the error path is relative to the connector's table.
    ///
    /// # Errors
    ///
    /// The first offending key.
    pub fn validate(&self) -> Result<(), ConfigIssue> {
        validate_url("url", &self.url)?;
        if let Some(health) = &self.health_url {
            validate_url("health_url", health)?;
        }
        if reqwest::header::HeaderName::from_bytes(self.idempotency_header.as_bytes()).is_err() {
            return Err(ConfigIssue::new(
                "idempotency_header",
                "is not a valid header name",
            ));
        }
        let not_empty = |key: &str, value: Option<&str>| match value {
            Some("") => Err(ConfigIssue::new(key, "must not be empty")),
            _ => Ok(()),
        };
        not_empty("id_field", Some(&self.id_field))?;
        not_empty("limit_param", self.limit_param.as_deref())?;
        if !self.items.starts_with('/') {
            return Err(ConfigIssue::new(
                "items",
                "must be a JSON pointer such as \"/items\"",
            ));
        }
        if let Some(cursor) = &self.cursor {
            not_empty("cursor.param", Some(&cursor.param))?;
            cursor.parse_from().map_err(|issue| issue.under("cursor"))?;
        }
        for (key, path) in [
            ("cursor_file", &self.cursor_file),
            ("dead_letter", &self.dead_letter),
        ] {
            if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                return Err(ConfigIssue::new(key, "must not be empty"));
            }
        }
        self.client_options().validate()
    }

    /// The client's options: `headers`, `auth`, `ca_file`.
    pub fn client_options(&self) -> ClientOptions {
        ClientOptions {
            headers: self.headers.clone(),
            auth: self.auth.clone(),
            ca_file: self.ca_file.clone(),
        }
    }

    /// The paths resolved against the config file's directory, and the dead-letter file's
    /// default (`<NAME>.dead.jsonl` there) filled in.
    pub fn resolved(mut self, env: &ConfigEnv) -> Self {
        let resolve = |path: Option<PathBuf>| path.map(|p| env.resolve(&p));
        self.ca_file = resolve(self.ca_file);
        self.cursor_file = resolve(self.cursor_file);
        self.dead_letter = Some(
            env.resolve(
                &self
                    .dead_letter
                    .unwrap_or_else(|| format!("{}.dead.jsonl", env.name).into()),
            ),
        );
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_names_the_key() {
        let issue = |config: HttpConnectorConfig| config.validate().unwrap_err().path;
        assert_eq!(issue(HttpConnectorConfig::default()), "url");
        let ok = HttpConnectorConfig::new("https://x/orders");
        assert!(ok.validate().is_ok());
        let bad_from = HttpConnectorConfig {
            cursor: Some(CursorConfig {
                from: "next".into(),
                ..CursorConfig::default()
            }),
            ..ok.clone()
        };
        assert_eq!(issue(bad_from), "cursor.from");
        let bad_items = HttpConnectorConfig {
            items: "items".into(),
            ..ok.clone()
        };
        assert_eq!(issue(bad_items), "items");
        let bad_header = HttpConnectorConfig {
            idempotency_header: "no spaces".into(),
            ..ok.clone()
        };
        assert_eq!(issue(bad_header), "idempotency_header");
        for (from, parsed) in [
            ("last_id", CursorFrom::LastId),
            ("/next", CursorFrom::Pointer("/next".into())),
            (
                "header:x-next",
                CursorFrom::Header(reqwest::header::HeaderName::from_static("x-next")),
            ),
        ] {
            let cursor = CursorConfig {
                from: from.into(),
                ..CursorConfig::default()
            };
            assert_eq!(cursor.parse_from().unwrap(), parsed);
        }
    }
}
