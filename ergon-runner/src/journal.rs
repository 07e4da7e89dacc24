//! `[journal]`: checked into a [`JournalPlan`] with the plan, opened by `run`, read by
//! `get`, `list --parent/--root` and `trace`, purged by `journal purge`.
//!
//! The SQLite journal lives in the `local` queues' file by default, so that one
//! machine's queue and journal are one database, and hands transactions to the tasks that
//! read a local queue in that file. The PostgreSQL journal hands them to any task whose
//! input takes dispatches (a `local` or `memory` queue, a `rabbitmq` queue), through its
//! outbox and relay.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ergon_core::TaskError;
use ergon_core::config::{ConfigEnv, ConfigIssue, MakeConnector, decode};
use ergon_journal::fan_in::MAX_BATCH_SIZE;
use ergon_journal::run::Expanders;
use ergon_journal::{
    Consumes, DurableJournal, JournalConfig, JournalKind, JournalReader, OnComplete, Record,
    Routes, RunSettings, Settings, SqliteReader,
};

use crate::config::{ConfigError, LoadedConfig};
use crate::plan::ConnectorRef;
#[cfg(feature = "run-events")]
use crate::run_events::RedisEvents;

/// Where a journal lives.
#[derive(Debug, Clone)]
pub enum JournalStore {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database.
    Postgres {
        /// Its url, which may hold a password: never displayed.
        url: String,
        /// The schema of the journal's tables.
        schema: String,
    },
}

impl fmt::Display for JournalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JournalStore::Sqlite(path) => write!(f, "{}", path.display()),
            JournalStore::Postgres { schema, .. } => write!(f, "postgres schema {schema}"),
        }
    }
}

impl JournalStore {
    /// The store of `loaded`'s `[journal]`, and the table checked: `None` without the
    /// table or with `record = "off"`.
    ///
    /// # Errors
    ///
    /// A malformed `[journal]` table, named by its key; `type = "postgres"` in a binary
    /// built without the `journal-postgres` feature.
    pub fn from_config(
        loaded: &LoadedConfig,
    ) -> Result<Option<(JournalStore, JournalConfig)>, ConfigError> {
        let Some(table) = &loaded.config.journal else {
            return Ok(None);
        };
        let at = |issue: ConfigIssue| ConfigError::from_issue(&loaded.file, "journal", issue);
        let config: JournalConfig = decode(table.clone()).map_err(at)?;
        config.validate().map_err(at)?;
        if config.record == Record::Off {
            return Ok(None);
        }
        let store = match config.kind {
            JournalKind::Sqlite => JournalStore::Sqlite(match &config.path {
                Some(path) => resolve(&loaded.base_dir, path),
                None => default_path(loaded),
            }),
            JournalKind::Postgres if cfg!(feature = "journal-postgres") => JournalStore::Postgres {
                url: config.url.clone().unwrap_or_default(),
                schema: config.schema().to_owned(),
            },
            JournalKind::Postgres => {
                return Err(ConfigError::new(
                    &loaded.file,
                    "journal.type",
                    "this binary was built without ergon-runner's `journal-postgres` feature",
                ));
            }
        };
        Ok(Some((store, config)))
    }

    /// Opens the journal for reading (`get`, `list`, `trace`, `journal purge`).
    ///
    /// # Errors
    ///
    /// The database cannot be opened or reached.
    pub async fn reader(&self) -> Result<Box<dyn JournalReader>, TaskError> {
        match self {
            JournalStore::Sqlite(path) => Ok(Box::new(SqliteReader::open(path)?)),
            #[cfg(feature = "journal-postgres")]
            JournalStore::Postgres { url, schema } => Ok(Box::new(
                ergon_journal::PostgresReader::open(url, schema).await?,
            )),
            #[cfg(not(feature = "journal-postgres"))]
            JournalStore::Postgres { .. } => unreachable!("refused by from_config"),
        }
    }
}

/// The journal a run records into: `[journal]` checked, its store resolved, its routes
/// checked against the tasks' connectors.
#[derive(Clone)]
pub struct JournalPlan {
    /// Where it lives.
    pub store: JournalStore,
    /// Which completions are recorded.
    pub record: Record,
    /// How long terminal records are kept (`Duration::ZERO`: forever).
    pub retention: Duration,
    /// The largest output recorded, in bytes.
    pub max_output: usize,
    /// The tasks the journal can hand transactions to, and the continuations.
    pub routes: Routes,
    /// PostgreSQL: how the relay opens each relayed task's input.
    #[cfg(feature = "journal-postgres")]
    relays: BTreeMap<String, Arc<dyn MakeConnector>>,
    /// What DAG runs need: the binary's expanders, the event sink, the plan limits.
    runs: RunSettings,
    /// `[journal.events]`: the publisher in `runs`, started by `open`.
    #[cfg(feature = "run-events")]
    events: Option<Arc<RedisEvents>>,
}

impl JournalPlan {
    /// The plan of `loaded`'s `[journal]`, whose tasks read `connectors`: `None` without
    /// the table or with `record = "off"`.
    ///
    /// # Errors
    ///
    /// A malformed `[journal]` table, named by its key; an `on_complete` whose target the
    /// journal cannot hand transactions to.
    pub(crate) fn from_config(
        loaded: &LoadedConfig,
        connectors: &BTreeMap<String, ConnectorRef>,
    ) -> Result<Option<JournalPlan>, ConfigError> {
        let Some((store, config)) = JournalStore::from_config(loaded)? else {
            return Ok(None);
        };
        let mut relays: BTreeMap<String, Arc<dyn MakeConnector>> = BTreeMap::new();
        let routes = match &store {
            JournalStore::Sqlite(path) => queues(loaded, path),
            JournalStore::Postgres { .. } => {
                let mut routes = Routes::new();
                for (name, task) in &loaded.config.tasks {
                    let input = task.input.as_ref().and_then(|input| connectors.get(input));
                    if let Some(input) = input.filter(|input| input.make.takes_dispatches()) {
                        routes = routes.relay(name);
                        relays.insert(name.clone(), input.make.clone());
                    }
                }
                routes
            }
        };
        let routes = continuations(loaded, &store, routes)?;
        let routes = fan_ins(loaded, &store, routes)?;
        #[cfg(not(feature = "run-events"))]
        if config.events.is_some() {
            return Err(ConfigError::new(
                &loaded.file,
                "journal.events",
                "this binary was built without ergon-runner's `run-events` feature",
            ));
        }
        #[cfg(feature = "run-events")]
        let events = run_events(loaded, &config)?;
        let runs = RunSettings {
            #[cfg(feature = "run-events")]
            events: events
                .clone()
                .map(|sink| sink as Arc<dyn ergon_journal::EventSink>),
            ..RunSettings::default()
        };
        Ok(Some(JournalPlan {
            store,
            record: config.record,
            retention: config.retention,
            max_output: config.max_output,
            routes,
            #[cfg(feature = "journal-postgres")]
            relays,
            runs,
            #[cfg(feature = "run-events")]
            events,
        }))
    }

    /// The plan with the binary's `expanders` (`expand = { custom = "NAME" }`).
    #[must_use]
    pub fn expanders(mut self, expanders: Expanders) -> Self {
        self.runs.expanders = expanders;
        self
    }

    /// Opens the journal for a run of `running` (task names; empty: every task), whose
    /// finite loops wait for the journal's pending work for those tasks. Its writer
    /// starts (and, on PostgreSQL, its relay and listener).
    ///
    /// # Errors
    ///
    /// The database cannot be opened, created or reached.
    pub async fn open(&self, running: &[String]) -> Result<Arc<DurableJournal>, TaskError> {
        #[cfg(feature = "run-events")]
        if let Some(events) = &self.events {
            events.start();
        }
        let settings = Settings {
            record: self.record,
            retention: self.retention,
            max_output: self.max_output,
            routes: self.routes.clone(),
            running: running.to_vec(),
            runs: self.runs.clone(),
        };
        let journal = match &self.store {
            JournalStore::Sqlite(path) => DurableJournal::sqlite(path, settings)?,
            #[cfg(feature = "journal-postgres")]
            JournalStore::Postgres { url, schema } => {
                DurableJournal::postgres(url, schema, settings, self.relays.clone()).await?
            }
            #[cfg(not(feature = "journal-postgres"))]
            JournalStore::Postgres { .. } => unreachable!("refused by from_config"),
        };
        Ok(Arc::new(journal))
    }

    /// Waits, at most `within`, for the progress events published so far to reach
    /// `[journal.events]` (at once without it), so that a run's last events are not lost
    /// when the process ends; warns when some did not make it.
    #[cfg(feature = "run-events")]
    pub async fn flush_events(&self, within: Duration) {
        if let Some(events) = &self.events
            && !events.flush(within).await
        {
            tracing::warn!(
                within = ?within,
                "Some progress events were not published to Redis before the end"
            );
        }
    }
}

/// The publisher of `[journal.events]`, if the table is there (not started).
#[cfg(feature = "run-events")]
fn run_events(
    loaded: &LoadedConfig,
    config: &JournalConfig,
) -> Result<Option<Arc<RedisEvents>>, ConfigError> {
    let Some(events) = &config.events else {
        return Ok(None);
    };
    let publisher = RedisEvents::new(events).map_err(|err| {
        // redis-rs names the problem, never the URL.
        ConfigError::new(
            &loaded.file,
            "journal.events.url",
            format!("{}: {err}", events.url),
        )
    })?;
    Ok(Some(Arc::new(publisher)))
}

/// Each task that reads a local queue in the SQLite journal's file (`journal`), by its
/// queue.
fn queues(loaded: &LoadedConfig, journal: &Path) -> Routes {
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
    routes
}

/// `routes` with each task's `on_complete`, checked: its target must be a task the
/// journal in `store` can hand transactions to.
fn continuations(
    loaded: &LoadedConfig,
    store: &JournalStore,
    mut routes: Routes,
) -> Result<Routes, ConfigError> {
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
            unreachable_target(
                loaded,
                store,
                &routes,
                &key,
                &on_complete.task,
                "the continuation",
            )?;
            routes = routes.on_complete(name, on_complete);
        }
    }
    Ok(routes)
}

/// An error at `key` unless the journal in `store` can hand task `task` transactions
/// (`what`: what it would hand over).
fn unreachable_target(
    loaded: &LoadedConfig,
    store: &JournalStore,
    routes: &Routes,
    key: &str,
    task: &str,
    what: &str,
) -> Result<(), ConfigError> {
    if routes.takes(task) {
        return Ok(());
    }
    let message = if loaded.config.tasks.contains_key(task) {
        let cannot = match store {
            JournalStore::Sqlite(path) => format!(
                "does not read a local queue in the journal's file ({})",
                path.display()
            ),
            JournalStore::Postgres { .. } => "reads no connector the journal's relay can \
                dispatch to (a `local` or `memory` queue, or a `rabbitmq` queue published to \
                through the default exchange)"
                .to_owned(),
        };
        format!(
            "task `{task}` {cannot}, so the journal cannot hand it {what}; tasks it can: {}",
            routes.targets()
        )
    } else {
        format!("no task named `{task}`")
    };
    Err(ConfigError::new(&loaded.file, key, message))
}

/// `routes` with each task's `produces` tags and each `consumes` fan-in, checked: a
/// consumer must be a task the journal can hand batches to, collecting from tasks of the
/// file, at least one tag, a batch size in `1..=10000`.
fn fan_ins(
    loaded: &LoadedConfig,
    store: &JournalStore,
    mut routes: Routes,
) -> Result<Routes, ConfigError> {
    for (name, task) in &loaded.config.tasks {
        if !task.produces.is_empty() {
            routes = routes.produces(name, task.produces.clone());
        }
    }
    for (name, task) in &loaded.config.tasks {
        let Some(table) = &task.consumes else {
            continue;
        };
        let key = format!("tasks.{name}.consumes");
        let at = |sub: &str, message: String| {
            ConfigError::new(&loaded.file, format!("{key}{sub}"), message)
        };
        let consumes: Consumes = decode(table.clone())
            .map_err(|issue| ConfigError::from_issue(&loaded.file, &key, issue))?;
        if consumes.tags.is_empty() || consumes.tags.iter().any(String::is_empty) {
            return Err(at(".tags", "list at least one tag, none empty".to_owned()));
        }
        if consumes.from.is_empty() {
            return Err(at(
                ".from",
                "list the tasks whose results are collected (tags are inherited by \
                 grandchildren: without `from`, one piece of work would count at every level)"
                    .to_owned(),
            ));
        }
        if let Some((index, unknown)) = consumes
            .from
            .iter()
            .enumerate()
            .find(|(_, from)| !loaded.config.tasks.contains_key(*from))
        {
            return Err(at(
                &format!(".from.{index}"),
                format!("no task named `{unknown}`"),
            ));
        }
        if !(1..=MAX_BATCH_SIZE).contains(&consumes.batch_size) {
            return Err(at(
                ".batch_size",
                format!(
                    "{} is out of range: a batch holds 1..={MAX_BATCH_SIZE} results",
                    consumes.batch_size
                ),
            ));
        }
        unreachable_target(loaded, store, &routes, &key, name, "batches")?;
        routes = routes.consumes(name, consumes);
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
