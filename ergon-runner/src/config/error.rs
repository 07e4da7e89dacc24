//! The one error a bad config file produces: it names the file, the key path and what is
//! allowed, and makes the runner exit with code 2.

use std::fmt;
use std::path::{Path, PathBuf};

use ergon_core::config::ConfigIssue;

/// A problem in the config file (or in the environment overrides applied to it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The config file.
    pub file: PathBuf,
    /// Dotted key path inside the file, empty for whole-file problems.
    pub path: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl ConfigError {
    /// A problem at `path` in `file`.
    pub fn new(file: &Path, path: impl Into<String>, message: impl fmt::Display) -> Self {
        Self {
            file: file.to_path_buf(),
            path: path.into(),
            message: message.to_string(),
        }
    }

    /// A [`ConfigIssue`] found in the table at `prefix`.
    pub fn from_issue(file: &Path, prefix: &str, issue: ConfigIssue) -> Self {
        let issue = issue.under(prefix);
        Self::new(file, issue.path, issue.message)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}: {}: {}",
                self.file.display(),
                self.path,
                self.message
            )
        }
    }
}
