//! Config plumbing shared by policies, connectors and services: the [`ConfigIssue`] error,
//! typed decoding of a TOML table, and the kinds the TOML can name with `type = "..."`.

pub mod secret;
mod strict;

use std::fmt;

/// A config value that is missing, of the wrong type or not allowed, with the key path
/// relative to the decoded table (the runner prefixes where that table is in the file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigIssue {
    /// Dotted key path of the offending field, e.g. `process.retry.max_attempts`.
    pub path: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl ConfigIssue {
    /// An invalid value at `path`.
    pub fn new(path: impl Into<String>, message: impl fmt::Display) -> Self {
        Self {
            path: path.into(),
            message: message.to_string(),
        }
    }

    /// The same error seen from a parent struct: `prefix.path`.
    #[must_use]
    pub fn under(mut self, prefix: &str) -> Self {
        self.path = if self.path.is_empty() {
            prefix.to_owned()
        } else {
            format!("{prefix}.{}", self.path)
        };
        self
    }
}

/// Checks a size or count from the config: `min <= value <= max`, else an issue at `key`
/// that names the bound. Every size and count has a documented maximum, so that a value
/// which passes `validate` cannot exhaust memory or threads at run time.
///
/// # Errors
///
/// `value` is outside `min..=max`.
///
/// # Examples
///
/// ```
/// use ergon_core::config::check_count;
///
/// assert!(check_count("batch_size", 100, 1, 65_536).is_ok());
/// let err = check_count("batch_size", 1 << 32, 1, 65_536).unwrap_err();
/// assert_eq!(err.to_string(), "batch_size: must be at most 65536, got 4294967296");
/// ```
pub fn check_count(key: &str, value: u64, min: u64, max: u64) -> Result<(), ConfigIssue> {
    if value < min {
        Err(ConfigIssue::new(key, format!("must be at least {min}")))
    } else if value > max {
        Err(ConfigIssue::new(
            key,
            format!("must be at most {max}, got {value}"),
        ))
    } else {
        Ok(())
    }
}

/// Decodes a TOML table (as JSON) into `T`, naming the exact key on error.
///
/// Declare `T` with `#[serde(deny_unknown_fields)]` so misspelled keys are errors. This is
/// the one decoding path of every config table (the runner's whole file, policies,
/// connectors, services, task settings): it reads a struct only from a table, never from
/// an array of its fields (`loop = [1, 2]` is an error, not `concurrency = 1, limit = 2`).
///
/// # Errors
///
/// The path of the offending key and serde's description (unknown field and the allowed
/// ones, wrong type, bad duration…).
///
/// # Examples
///
/// ```
/// use ergon_core::config::decode;
/// use serde::Deserialize;
///
/// #[derive(Debug, Deserialize)]
/// #[serde(deny_unknown_fields)]
/// struct FileConfig { path: String }
///
/// let err = decode::<FileConfig>(serde_json::json!({ "pth": "a.jsonl" })).unwrap_err();
/// assert_eq!(err.path, "pth");
/// assert!(err.message.contains("expected `path`"), "{}", err.message);
///
/// let err = decode::<FileConfig>(serde_json::json!(["a.jsonl"])).unwrap_err();
/// assert!(err.message.contains("invalid type: array, expected a table"), "{}", err.message);
/// ```
pub fn decode<T: serde::de::DeserializeOwned>(table: serde_json::Value) -> Result<T, ConfigIssue> {
    serde_path_to_error::deserialize(strict::Strict(table)).map_err(|err| {
        let path = err.path().to_string();
        let path = if path == "." { String::new() } else { path };
        ConfigIssue::new(path, err.into_inner())
    })
}

/// Whether `name` can be written into SQL unquoted (a PostgreSQL schema, say): lower-case
/// letters, digits and `_`, not starting with a digit, at most 48 characters (short
/// enough to be part of a notification channel's name too).
///
/// # Examples
///
/// ```
/// use ergon_core::config::plain_sql_name;
///
/// assert!(plain_sql_name("ergon_queue"));
/// assert!(!plain_sql_name("Orders") && !plain_sql_name("1st") && !plain_sql_name("a;drop"));
/// ```
pub fn plain_sql_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 48
}

/// What a kind needs to know about where its table came from.
#[derive(Debug, Clone)]
pub struct ConfigEnv {
    /// The entity's name in the file (`[connectors.NAME]`).
    pub name: String,
    /// The directory of the config file: relative paths in the table are resolved from it.
    pub base_dir: std::path::PathBuf,
}

impl ConfigEnv {
    /// Resolves a path from the table against the config file's directory.
    pub fn resolve(&self, path: &std::path::Path) -> std::path::PathBuf {
        resolve(&self.base_dir, path)
    }
}

/// `path` relative to `base_dir`, unless it is absolute: how every path of a config file
/// resolves (connectors' and, through `Context::resolve_path`, tasks' settings).
pub(crate) fn resolve(base_dir: &std::path::Path, path: &std::path::Path) -> std::path::PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base_dir.join(path)
    }
}

/// A kind of connector the TOML can name with `type = "..."` in `[connectors.NAME]`.
///
/// [`configure`](ConnectorKind::configure) runs at load time (and for `validate`): it
/// decodes and checks the table without I/O. The returned [`MakeConnector`] opens one
/// connector per worker at run time; state shared by the workers of one `[connectors.NAME]`
/// (a file reader, a channel) lives in it.
pub trait ConnectorKind: Send + Sync + 'static {
    /// The `type` value that selects this kind.
    fn name(&self) -> &'static str;

    /// Decodes and validates one table (without its `type` key).
    ///
    /// # Errors
    ///
    /// A [`ConfigIssue`] whose path is relative to the table.
    fn configure(
        &self,
        table: serde_json::Value,
        env: &ConfigEnv,
    ) -> Result<std::sync::Arc<dyn MakeConnector>, ConfigIssue>;
}

/// Opens the connector of one worker; see [`ConnectorKind`].
#[async_trait::async_trait]
pub trait MakeConnector: Send + Sync + 'static {
    /// Opens (connects) the connector for worker `worker`.
    async fn connect(
        &self,
        worker: usize,
    ) -> Result<std::sync::Arc<dyn crate::Connector>, crate::TaskError>;

    /// Whether what is dispatched through a connector this opens comes back from its
    /// `fetch` (a queue): then a journal can hand the task that reads it transactions
    /// (spawned children, continuations) by dispatching them there. Default: `false`.
    fn takes_dispatches(&self) -> bool {
        false
    }

    /// The administration of this connector's queue and dead letters (the `queue stats`,
    /// `dead-letters` and `requeue-dead` commands), for a transport that keeps dead
    /// letters; `None` (the default) for one that does not. Opening it consumes nothing.
    ///
    /// # Errors
    ///
    /// The transport cannot be reached.
    async fn admin(
        &self,
    ) -> Result<Option<std::sync::Arc<dyn crate::queue_admin::QueueAdmin>>, crate::TaskError> {
        Ok(None)
    }
}

/// A kind of service the TOML can name with `type = "..."` in `[services.NAME]`.
///
/// [`configure`](ServiceKind::configure) runs at load time (and for `validate`): it decodes
/// and checks the table without I/O, and returns a [`ConfiguredService`] that knows the
/// type of service it builds (the plan checks tasks' lookups against it) and builds it
/// asynchronously at run time. One instance per `[services.NAME]`, shared by every task
/// and worker that lists it.
///
/// [`ConfiguredService`]: crate::service::ConfiguredService
pub trait ServiceKind: Send + Sync + 'static {
    /// The `type` value that selects this kind.
    fn name(&self) -> &'static str;

    /// Decodes and validates one table (without its `type` key).
    ///
    /// # Errors
    ///
    /// A [`ConfigIssue`] whose path is relative to the table.
    fn configure(
        &self,
        table: serde_json::Value,
        env: &ConfigEnv,
    ) -> Result<crate::service::ConfiguredService, ConfigIssue>;
}
