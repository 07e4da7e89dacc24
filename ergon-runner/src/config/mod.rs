//! Loading the config: the TOML file, `ERGON__…` environment overrides, `${VAR}`
//! interpolation, then typed decoding with exact key paths in every error. Decoding is
//! `ergon_core::config::decode`, the one strict path of every config table.
//!
//! Environment overrides use `ERGON__` followed by the key path in capitals with `__`
//! between keys: `ERGON__TASKS__ORDERS__POLICY__PROCESS__RETRY__MAX_ATTEMPTS=5` sets
//! `tasks.orders.policy.process.retry.max_attempts`. A double underscore separates keys
//! because keys themselves contain single ones; keys from the environment are lowercased,
//! so only lowercase task, connector and service names can be overridden.

mod error;
mod interpolate;
mod json;
mod model;

use std::path::{Path, PathBuf};

use ergon_core::config::decode;

pub use error::ConfigError;
pub use model::{FileConfig, TaskConfig};

/// The environment-variable prefix of overrides.
pub const ENV_PREFIX: &str = "ERGON";

/// A loaded, decoded config file (not yet checked against the registry: see `plan`).
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The file it came from.
    pub file: PathBuf,
    /// The directory relative paths are resolved from.
    pub base_dir: PathBuf,
    /// The decoded content.
    pub config: FileConfig,
}

/// Loads `file` with overrides from the process environment.
///
/// # Errors
///
/// A [`ConfigError`] for an unreadable file, a syntax error, a NaN or an infinity, an
/// unset variable, an unknown key, a wrong type or a table written as an array.
pub fn load(file: &Path) -> Result<LoadedConfig, ConfigError> {
    load_with(file, std::env::vars(), &|name| std::env::var(name).ok())
}

/// Loads `file` with the given environment (tests pass their own).
///
/// # Errors
///
/// See [`load`].
pub fn load_with(
    file: &Path,
    env: impl Iterator<Item = (String, String)>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<LoadedConfig, ConfigError> {
    let text = std::fs::read_to_string(file)
        .map_err(|err| ConfigError::new(file, "", format!("cannot read the config file: {err}")))?;
    let overrides: config::Map<String, String> = env
        .filter(|(key, _)| key.starts_with(&format!("{ENV_PREFIX}__")))
        .collect();
    let merged = config::Config::builder()
        .add_source(config::File::from_str(&text, config::FileFormat::Toml))
        .add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(overrides)),
        )
        .build()
        .map_err(|err| match err {
            // Some syntax errors carry no position, and then no "TOML parse error" header of
            // their own (tables nested past the parser's limit: "recursion limit"): say what
            // the message is about.
            config::ConfigError::FileParse { cause, .. }
                if !cause.to_string().starts_with("TOML parse error") =>
            {
                ConfigError::new(file, "", format!("TOML parse error: {cause}"))
            }
            err => ConfigError::new(file, "", err),
        })?;
    let root = config::Source::collect(&merged).map_err(|err| ConfigError::new(file, "", err))?;
    let mut value = json::to_json(config::Value::new(None, root), &mut Vec::new())
        .map_err(|(path, message)| ConfigError::new(file, path, message))?;
    interpolate::interpolate(&mut value, &mut Vec::new(), lookup)
        .map_err(|(path, message)| ConfigError::new(file, path, message))?;
    let config: FileConfig =
        decode(value).map_err(|issue| ConfigError::new(file, issue.path, issue.message))?;
    let base_dir = file
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    Ok(LoadedConfig {
        file: file.to_path_buf(),
        base_dir,
        config,
    })
}
