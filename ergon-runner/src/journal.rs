//! `[journal]`: checked into a [`JournalPlan`] with the plan, opened by `run`, read by
//! `get`, `list --parent/--root` and `trace`, purged by `journal purge`.
//!
//! The SQLite journal lives in the `local` queues' file by default, so that one
//! machine's queue and journal are one database.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ergon_core::config::{ConfigEnv, ConfigIssue, decode};
use ergon_journal::{
    JournalConfig, OnComplete, Record, Routes, Settings, SqliteJournal, SqliteReader,
};

use crate::config::{ConfigError, LoadedConfig};

/// The journal a run records into: `[journal]` checked, its file resolved.
#[derive(Debug, Clone)]
pub struct JournalPlan {
    /// The SQLite file.
    pub path: PathBuf,
    /// Which completions are recorded.
    pub record: Record,
    /// How long terminal records are kept (`Duration::ZERO`: forever).
    pub retention: Duration,
    /// The largest output recorded, in bytes.
    pub max_output: usize,
    /// The tasks that read a local queue in the journal's file, and the continuations.
    pub routes: Routes,
}

impl JournalPlan {
    /// The plan of `loaded`'s `[journal]`: `None` without the table or with
    /// `record = "off"`.
    ///
    /// # Errors
    ///
    /// A malformed `[journal]` table, named by its key.
    pub fn from_config(loaded: &LoadedConfig) -> Result<Option<JournalPlan>, ConfigError> {
        let Some(table) = &loaded.config.journal else {
            return Ok(None);
        };
        let at = |issue: ConfigIssue| ConfigError::from_issue(&loaded.file, "journal", issue);
        let config: JournalConfig = decode(table.clone()).map_err(at)?;
        config.validate().map_err(at)?;
        if config.record == Record::Off {
            return Ok(None);
        }
        let path = match &config.path {
            Some(path) => resolve(&loaded.base_dir, path),
            None => default_path(loaded),
        };
        let routes = routes(loaded, &path)?;
        Ok(Some(JournalPlan {
            path,
            record: config.record,
            retention: config.retention,
            max_output: config.max_output,
            routes,
        }))
    }

    /// Opens the journal for a run of `running` (task names; empty: every task), whose
    /// finite loops wait for the journal's pending work for those tasks. Its writer
    /// thread starts.
    ///
    /// # Errors
    ///
    /// The file cannot be opened or created.
    pub fn open(&self, running: &[String]) -> Result<Arc<SqliteJournal>, ergon_core::TaskError> {
        let settings = Settings {
            record: self.record,
            retention: self.retention,
            max_output: self.max_output,
            routes: self.routes.clone(),
            running: running.to_vec(),
        };
        Ok(Arc::new(SqliteJournal::open(&self.path, settings)?))
    }

    /// Opens the journal for reading.
    ///
    /// # Errors
    ///
    /// The file cannot be opened.
    pub fn reader(&self) -> Result<SqliteReader, ergon_core::TaskError> {
        SqliteReader::open(&self.path)
    }
}

/// Each task that reads a local queue in the journal's file (`journal`), by its queue;
/// each task's `on_complete`, checked: its target must be such a task.
fn routes(loaded: &LoadedConfig, journal: &Path) -> Result<Routes, ConfigError> {
    let same_file = |path: &Path| {
        let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        absolute(path)
            .components()
            .eq(absolute(journal).components())
    };
    let mut routes = Routes::new();
    for (name, task) in &loaded.config.tasks {
        let Some(input) = &task.input else { continue };
        let Some(table) = loaded.config.connectors.get(input) else {
            continue;
        };
        if local_file(loaded, table).is_some_and(|path| same_file(&path)) {
            let queue = table.get("queue").and_then(|q| q.as_str()).unwrap_or(input);
            routes = routes.queue(name, queue);
        }
    }
    for (name, task) in &loaded.config.tasks {
        let Some(table) = &task.on_complete else {
            continue;
        };
        let key = format!("tasks.{name}.on_complete");
        let listed: Vec<(String, &serde_json::Value)> = match table {
            serde_json::Value::Array(list) => list
                .iter()
                .enumerate()
                .map(|(index, one)| (format!("{key}.{index}"), one))
                .collect(),
            one => vec![(key, one)],
        };
        for (key, table) in listed {
            let on_complete = on_complete(table.clone())
                .map_err(|issue| ConfigError::from_issue(&loaded.file, &key, issue))?;
            if routes.queue_of(&on_complete.task).is_none() {
                let message = if loaded.config.tasks.contains_key(&on_complete.task) {
                    format!(
                        "task `{}` does not read a local queue in the journal's file ({}), so \
                         the journal cannot hand it the continuation; tasks it can: {}",
                        on_complete.task,
                        journal.display(),
                        routes.targets()
                    )
                } else {
                    format!("no task named `{}`", on_complete.task)
                };
                return Err(ConfigError::new(&loaded.file, key, message));
            }
            routes = routes.on_complete(name, on_complete);
        }
    }
    Ok(routes)
}

/// `on_complete = "task"` or `{ task = "...", when = "..." }`.
fn on_complete(table: serde_json::Value) -> Result<OnComplete, ConfigIssue> {
    match table {
        serde_json::Value::String(task) => Ok(OnComplete {
            task,
            when: ergon_journal::When::default(),
        }),
        table => decode(table),
    }
}

/// The file of the `local` queues when they all name one (journal and queue in one
/// database), else `ergon-queue.db` beside the config file (the `local` default).
fn default_path(loaded: &LoadedConfig) -> PathBuf {
    let connectors = loaded.config.connectors.values();
    let files: BTreeSet<PathBuf> = connectors
        .filter_map(|table| local_file(loaded, table))
        .collect();
    match files.len() {
        1 => files.into_iter().next().unwrap_or_default(),
        _ => resolve(&loaded.base_dir, Path::new(DEFAULT_FILE)),
    }
}

/// The file of a `[connectors.NAME]` table of `type = "local"`, resolved; `None` for
/// another type.
fn local_file(loaded: &LoadedConfig, table: &serde_json::Value) -> Option<PathBuf> {
    (table.get("type")?.as_str()? == "local").then(|| {
        let path = table.get("path").and_then(|p| p.as_str());
        resolve(&loaded.base_dir, Path::new(path.unwrap_or(DEFAULT_FILE)))
    })
}

/// The `local` queue's default file.
const DEFAULT_FILE: &str = "ergon-queue.db";

/// `path` from the config file's directory, as every path of the file resolves.
fn resolve(base_dir: &Path, path: &Path) -> PathBuf {
    let env = ConfigEnv {
        name: "journal".to_owned(),
        base_dir: base_dir.to_path_buf(),
    };
    env.resolve(path)
}
