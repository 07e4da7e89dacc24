//! The `[connectors.NAME]` table of `type = "file"`.

use std::path::{Path, PathBuf};

use ergon_core::config::{ConfigEnv, ConfigIssue};
use serde::{Deserialize, Serialize};

/// `type = "file"`: a JSON lines file, as an input, an output or both.
///
/// ```toml
/// [connectors.orders]
/// type = "file"
/// path = "orders.jsonl"
/// dead_letter = "out/rejected.jsonl"
/// ```
///
/// Relative paths are resolved from the directory of the config file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    /// The JSON lines file. Required.
    ///
    /// As an input it is read line by line from the start on every run (a finite,
    /// replayable source: there is no checkpoint); blank lines are skipped and every other
    /// line is one transaction with id `FILE:LINE` (the file name and the 1-based line
    /// number) and metadata `file.path` and `file.line`. A line that is not JSON is
    /// delivered too: the task rejects it and it is dead-lettered intact. A missing file
    /// is an error at the first fetch.
    ///
    /// As an output each dispatched transaction's payload is appended as one line; the
    /// file and its directories are created when missing.
    pub path: PathBuf,
    /// Where failed transactions go (`on_failure = "dead_letter"`), one JSON object per
    /// line: `id`, `task`, `step`, `category`, `error`, `attempts`, `failed_at` (RFC 3339,
    /// UTC), `metadata`, `payload` (the exact bytes of the line read: embedded as written
    /// when it is one-line JSON with nothing around it, else as a string, else — not
    /// UTF-8 — in base64) and `payload_encoding` (`"json"`, `"text"` or `"base64"`);
    /// [`jsonl::decode`](crate::jsonl::decode) gives the bytes back. Default:
    /// `<stem>.dead.jsonl` beside `path`.
    pub dead_letter: Option<PathBuf>,
    /// Take each input transaction's id from this top-level field of its JSON line (a
    /// string, or an integer written out) instead of `FILE:LINE`. Lines that are not a
    /// JSON object with that field keep the `FILE:LINE` id. Default: none.
    pub id_field: Option<String>,
    /// Carry the W3C trace context through the file in this top-level field of JSON
    /// object lines: an input line's string value becomes the transaction's `traceparent`,
    /// and a dispatched transaction's `traceparent` is written into its line (inserted
    /// first, keeping the payload's key order; a payload that already has the field is
    /// rewritten with its keys sorted). Lines that are not JSON objects pass unchanged.
    /// Default: none (payloads are written exactly as given).
    pub trace_field: Option<String>,
}

impl FileConfig {
    /// A config reading from / appending to `path`, with the other keys at their defaults.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            ..Self::default()
        }
    }

    /// Checks the values; the error path is relative to the connector's table.
    ///
    /// # Errors
    ///
    /// `path` missing or empty, `dead_letter` empty or the same file as `path`, `id_field`
    /// empty.
    pub fn validate(&self) -> Result<(), ConfigIssue> {
        if self.path.as_os_str().is_empty() {
            return Err(ConfigIssue::new(
                "path",
                "is required: the JSON lines file to read from or append to",
            ));
        }
        if let Some(dead_letter) = &self.dead_letter {
            if dead_letter.as_os_str().is_empty() {
                return Err(ConfigIssue::new(
                    "dead_letter",
                    "must not be empty (leave it out for `<stem>.dead.jsonl` beside `path`)",
                ));
            }
            if dead_letter == &self.path {
                return Err(ConfigIssue::new(
                    "dead_letter",
                    "must not be the same file as `path`",
                ));
            }
        }
        if self.id_field.as_deref() == Some("") {
            return Err(ConfigIssue::new(
                "id_field",
                "must not be empty (leave it out for `FILE:LINE` ids)",
            ));
        }
        if self.trace_field.as_deref() == Some("") {
            return Err(ConfigIssue::new(
                "trace_field",
                "must not be empty (leave it out to write payloads unchanged)",
            ));
        }
        Ok(())
    }

    /// The input / output file, resolved against the config file's directory.
    pub fn resolved_path(&self, env: &ConfigEnv) -> PathBuf {
        env.resolve(&self.path)
    }

    /// The dead-letter file, resolved against the config file's directory: `dead_letter`,
    /// or `<stem>.dead.jsonl` beside the resolved `path`.
    pub fn resolved_dead_letter(&self, env: &ConfigEnv) -> PathBuf {
        match &self.dead_letter {
            Some(dead_letter) => env.resolve(dead_letter),
            None => default_dead_letter(&self.resolved_path(env)),
        }
    }
}

/// `<stem>.dead.jsonl` beside `path`.
pub(crate) fn default_dead_letter(path: &Path) -> PathBuf {
    let mut name = path
        .file_stem()
        .map(|stem| stem.to_os_string())
        .unwrap_or_else(|| "input".into());
    name.push(".dead.jsonl");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_dead_letter_is_beside_the_input() {
        assert_eq!(
            default_dead_letter(Path::new("/data/orders.jsonl")),
            Path::new("/data/orders.dead.jsonl")
        );
        assert_eq!(
            default_dead_letter(Path::new("in/orders")),
            Path::new("in/orders.dead.jsonl")
        );
    }

    #[test]
    fn validate_names_the_field() {
        assert_eq!(FileConfig::default().validate().unwrap_err().path, "path");
        let same = FileConfig {
            dead_letter: Some("a.jsonl".into()),
            ..FileConfig::new("a.jsonl")
        };
        assert_eq!(same.validate().unwrap_err().path, "dead_letter");
        let empty_id = FileConfig {
            id_field: Some(String::new()),
            ..FileConfig::new("a.jsonl")
        };
        assert_eq!(empty_id.validate().unwrap_err().path, "id_field");
        assert!(FileConfig::new("a.jsonl").validate().is_ok());
    }
}
