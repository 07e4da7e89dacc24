//! The `[journal]` table.

use std::path::PathBuf;
use std::time::Duration;

use ergon_core::config::secret::SecretUrl;
use ergon_core::config::{ConfigIssue, check_count, plain_sql_name};
use serde::{Deserialize, Serialize};

use crate::events::RunSettings;
use crate::routes::Routes;

/// `[journal]`: where and what the journal records.
///
/// ```toml
/// [journal]
/// path = "ergon-queue.db"   # the local queue's file by default: relative to the config file
/// record = "workflow"       # workflow | all | off
/// retention = "7d"          # terminal records older than this are purged
/// ```
///
/// or, shared by runners on many machines:
///
/// ```toml
/// [journal]
/// type = "postgres"
/// url = "postgres://ergon:${PGPASSWORD}@db.internal:5432/ergon"
/// schema = "ergon"          # default: public
/// ```
///
/// Either may publish the progress of DAG runs ([`EventsConfig`]):
///
/// ```toml
/// [journal.events]
/// type = "redis"
/// url = "redis://:${REDIS_PASSWORD}@127.0.0.1:6379"
/// mode = "stream"           # stream | channel
/// stream = "ergon:events"   # the stream's key, or the channel
/// maxlen = 100000           # XADD … MAXLEN ~ 100000
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JournalConfig {
    /// The backend: `"sqlite"` (embedded, one machine; the default) or `"postgres"`.
    #[serde(rename = "type")]
    pub kind: JournalKind,
    /// `sqlite`: the file. Default: the file of the config's `local` queues when they all
    /// share one (so the journal and the queue live in one database), else
    /// `ergon-queue.db` beside the config file.
    pub path: Option<PathBuf>,
    /// `postgres`: the database (`postgres://user:password@host:port/database`; put the
    /// password in `${VAR}`: errors and logs never show it).
    pub url: Option<String>,
    /// `postgres`: the schema of the journal's tables, created when missing. Default:
    /// `public`.
    pub schema: Option<String>,
    /// Which completions are recorded. Default: `"workflow"`.
    pub record: Record,
    /// Terminal records older than this are purged, by the running journal (hourly) and
    /// by `ergon-runner journal purge`. `"0s"` keeps them forever. Default: `"7d"`.
    #[serde(with = "ergon_core::policy::duration")]
    pub retention: Duration,
    /// The largest output (JSON bytes) recorded for a continuation or a wait to read;
    /// a larger one is not recorded (logged), so one huge result cannot bloat the file.
    /// At most 4 MiB. Default: 262144 (256 KiB).
    pub max_output: usize,
    /// `[journal.events]`: where node and run transitions are published after each
    /// commit. Default: nowhere.
    pub events: Option<EventsConfig>,
}

impl Default for JournalConfig {
    fn default() -> Self {
        Self {
            kind: JournalKind::Sqlite,
            path: None,
            url: None,
            schema: None,
            record: Record::Workflow,
            retention: Duration::from_secs(7 * 24 * 3600),
            max_output: 256 * 1024,
            events: None,
        }
    }
}

impl JournalConfig {
    /// Checks the values; the error path is relative to `[journal]`.
    ///
    /// # Errors
    ///
    /// An empty path, a key of the other backend, a `postgres` journal without a url or
    /// with a schema that is not a plain SQL name, a `max_output` above 4 MiB, an invalid
    /// `[journal.events]` table (at `events.<key>`).
    pub fn validate(&self) -> Result<(), ConfigIssue> {
        match self.kind {
            JournalKind::Sqlite => {
                if self.path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                    return Err(ConfigIssue::new("path", "must not be empty"));
                }
                for (key, set) in [
                    ("url", self.url.is_some()),
                    ("schema", self.schema.is_some()),
                ] {
                    if set {
                        let message = "is a key of `type = \"postgres\"`; this journal is `sqlite`";
                        return Err(ConfigIssue::new(key, message));
                    }
                }
            }
            JournalKind::Postgres => {
                if self.path.is_some() {
                    let message =
                        "is a key of `type = \"sqlite\"`; this journal is `postgres` (set `url`)";
                    return Err(ConfigIssue::new("path", message));
                }
                if self.url.as_deref().is_none_or(str::is_empty) {
                    return Err(ConfigIssue::new(
                        "url",
                        "is required with `type = \"postgres\"` (postgres://user@host:port/database)",
                    ));
                }
                if !plain_sql_name(self.schema()) {
                    return Err(ConfigIssue::new(
                        "schema",
                        format!(
                            "`{}` is not a plain SQL name: lower-case letters, digits and `_`, \
                             at most 48 characters, not starting with a digit",
                            self.schema()
                        ),
                    ));
                }
            }
        }
        check_count("max_output", self.max_output as u64, 0, MAX_OUTPUT as u64)?;
        match &self.events {
            Some(events) => events.validate().map_err(|issue| issue.under("events")),
            None => Ok(()),
        }
    }
}

impl JournalConfig {
    /// The PostgreSQL schema: `schema`, else `public`.
    pub fn schema(&self) -> &str {
        self.schema.as_deref().unwrap_or("public")
    }
}

/// The hard cap of `max_output`: 4 MiB.
pub const MAX_OUTPUT: usize = 4 * 1024 * 1024;

/// `[journal.events]`: the progress of DAG runs (each node's and each run's transitions)
/// published to Redis after the commit that made them, for dashboards and subscribers.
/// Best effort: runs advance in the journal's commits whether an event is published,
/// late, or lost (Redis away, or more events than the publisher's queue holds).
///
/// Each event has the fields `run_id`, `workflow`, `node` (absent for the run itself),
/// `status`, `error` (absent unless a node failed, was skipped or cancelled) and `at_ms`
/// (Unix milliseconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// Where events go: `"redis"` (the only kind, and the default).
    #[serde(rename = "type")]
    pub kind: EventsKind,
    /// The server, `redis://[user][:password@]host[:port][/db]`. Never printed with its
    /// password. Default: `redis://127.0.0.1:6379`.
    pub url: SecretUrl,
    /// `"stream"`: each event is an entry (`XADD`) of the stream `stream`, whose fields are
    /// the event's; `"channel"`: each event is a JSON message `PUBLISH`ed on the channel
    /// `stream` (only subscribers connected at the time receive it). Default: `"stream"`.
    pub mode: EventsMode,
    /// The stream's key (`mode = "stream"`) or the channel's name (`mode = "channel"`).
    /// Default: `"ergon:events"`.
    pub stream: String,
    /// `mode = "stream"`: the stream is capped at about this many entries
    /// (`XADD … MAXLEN ~ n`), the oldest trimmed. `1..=2^53`. Default: 100000.
    pub maxlen: u64,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            kind: EventsKind::Redis,
            url: SecretUrl::from("redis://127.0.0.1:6379"),
            mode: EventsMode::Stream,
            stream: "ergon:events".to_owned(),
            maxlen: 100_000,
        }
    }
}

impl EventsConfig {
    /// Checks the values; the error path is relative to `[journal.events]`.
    ///
    /// # Errors
    ///
    /// A URL that is not `redis://`, an empty `stream`, a `maxlen` of 0 or above 2^53.
    pub fn validate(&self) -> Result<(), ConfigIssue> {
        if !self.url.expose().starts_with("redis://") {
            return Err(ConfigIssue::new(
                "url",
                format!("must start with redis://, got {}", self.url),
            ));
        }
        if self.stream.is_empty() {
            return Err(ConfigIssue::new(
                "stream",
                "must not be empty: the stream's key, or the channel's name",
            ));
        }
        check_count("maxlen", self.maxlen, 1, 1 << 53)
    }
}

/// Where `[journal.events]` publishes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventsKind {
    /// A Redis server: a stream or a pub/sub channel ([`EventsMode`]).
    #[default]
    Redis,
}

/// How `[journal.events]` publishes to Redis.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventsMode {
    /// Entries of a stream (`XADD`): kept (up to `maxlen`), read with `XRANGE`/`XREAD`.
    #[default]
    Stream,
    /// Messages on a pub/sub channel (`PUBLISH`): seen by the subscribers of the moment.
    Channel,
}

/// The journal's backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JournalKind {
    /// An embedded SQLite file: nothing to install, one machine (several processes may
    /// share the file).
    #[default]
    Sqlite,
    /// A PostgreSQL database: runners on many machines share it, and what it hands over
    /// is relayed to the target tasks' input connectors (RabbitMQ, ...).
    Postgres,
}

/// Which completions the journal records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Record {
    /// What a workflow needs and what went wrong: transactions that are part of a
    /// lineage (they have a parent or tags, produced children, or their task has an
    /// `on_complete`), and every failure.
    #[default]
    Workflow,
    /// Every terminal transaction (`trace` and `get` see everything; redeliveries of
    /// anything completed are settled without running again).
    All,
    /// Nothing: the journal is not opened.
    Off,
}

impl Record {
    /// Whether a transaction that is part of a lineage (`has_lineage`) ending `failed`
    /// is recorded.
    pub fn records(self, has_lineage: bool, failed: bool) -> bool {
        match self {
            Record::All => true,
            Record::Workflow => has_lineage || failed,
            Record::Off => false,
        }
    }
}

/// What a journal records and where it hands transactions over.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Which completions are recorded.
    pub record: Record,
    /// Terminal records older than this are purged hourly (`Duration::ZERO`: never).
    pub retention: Duration,
    /// The largest output recorded, in bytes.
    pub max_output: usize,
    /// Each task's queue and continuation.
    pub routes: Routes,
    /// The tasks this process runs: a finite loop waits for the journal's pending work
    /// for them ([`Journal::owes`]). Empty: none (finite loops end with their queue).
    pub running: Vec<String>,
    /// Expanders, progress events and plan limits of DAG runs.
    pub runs: RunSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            record: Record::Workflow,
            retention: Duration::from_secs(7 * 24 * 3600),
            max_output: 256 * 1024,
            routes: Routes::new(),
            running: Vec::new(),
            runs: RunSettings::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use ergon_core::config::decode;
    use serde_json::json;

    use super::*;

    fn journal(table: serde_json::Value) -> Result<JournalConfig, ConfigIssue> {
        let config: JournalConfig = decode(table)?;
        config.validate()?;
        Ok(config)
    }

    #[test]
    fn events_default_to_a_local_redis_stream() {
        let config = journal(json!({ "events": { "type": "redis" } })).unwrap();
        assert_eq!(config.events, Some(EventsConfig::default()));
        let events = config.events.unwrap();
        assert_eq!(events.mode, EventsMode::Stream);
        assert_eq!(events.stream, "ergon:events");
        assert_eq!(events.maxlen, 100_000);
        assert_eq!(journal(json!({})).unwrap().events, None);
    }

    #[test]
    fn events_config_reads_every_key() {
        let table = json!({ "events": {
            "type": "redis", "url": "redis://:pw@10.0.0.1:6380/2", "mode": "channel",
            "stream": "runs", "maxlen": 10
        }});
        let events = journal(table).unwrap().events.unwrap();
        assert_eq!(events.url.expose(), "redis://:pw@10.0.0.1:6380/2");
        assert_eq!(events.mode, EventsMode::Channel);
        assert_eq!((events.stream.as_str(), events.maxlen), ("runs", 10));
    }

    #[test]
    fn events_config_errors_name_their_key() {
        let cases = [
            (json!({ "type": "kafka" }), "events.type"),
            (json!({ "mode": "list" }), "events.mode"),
            (json!({ "streams": "x" }), "events.streams"),
            (json!({ "url": "http://:secret@host" }), "events.url"),
            (json!({ "stream": "" }), "events.stream"),
            (json!({ "maxlen": 0 }), "events.maxlen"),
            (json!({ "maxlen": (1_u64 << 53) + 1 }), "events.maxlen"),
        ];
        for (events, path) in cases {
            let issue = journal(json!({ "events": events.clone() })).unwrap_err();
            assert_eq!(issue.path, path, "{events}: {issue}");
            assert!(!issue.to_string().contains("secret"), "{issue}");
        }
    }
}
