//! The journal's commands: `get ID`, `list --parent ID | --root ID [--status S]`,
//! `journal purge`. (`trace` draws a whole lineage: [`super::trace`]; `runs` lists DAG
//! runs: [`super::runs`].)

use std::fmt::Write as _;
use std::time::Duration;

use ergon_journal::run::view::{RunDetail, RunSummary};
use ergon_journal::{Filter, JournalReader, Node};

use crate::config::{ConfigError, LoadedConfig};
use crate::journal::JournalStore;

/// The file's journal, for the commands that read it. They need only `[journal]`, not
/// the task implementations: any build of `ergon-runner` reads any file's journal (a
/// PostgreSQL one with the `journal-postgres` feature).
pub struct JournalFile {
    file: std::path::PathBuf,
    retention: Duration,
    reader: Box<dyn JournalReader>,
}

impl JournalFile {
    /// Opens the journal `loaded` declares, for reading.
    ///
    /// # Errors
    ///
    /// The file has no `[journal]` (or `record = "off"`), a malformed one, or a database
    /// that cannot be opened.
    pub async fn open(loaded: &LoadedConfig) -> Result<Self, ConfigError> {
        let (store, config) = JournalStore::from_config(loaded)?.ok_or_else(|| {
            ConfigError::new(
                &loaded.file,
                "journal",
                "the file has no `[journal]` (or `record = \"off\"`): nothing is recorded to read",
            )
        })?;
        let reader = store
            .reader()
            .await
            .map_err(|err| ConfigError::new(&loaded.file, "journal", err.chain()))?;
        Ok(Self {
            file: loaded.file.clone(),
            retention: config.retention,
            reader,
        })
    }

    /// The nodes of transaction `id`, naming the file's `[journal]` on error.
    pub(crate) async fn get(&self, id: &str) -> Result<Vec<Node>, ConfigError> {
        let read = self.reader.get(id).await;
        read.map_err(|err| self.error(&err))
    }

    /// The nodes `filter` selects, naming the file's `[journal]` on error.
    pub(crate) async fn list(&self, filter: &Filter) -> Result<Vec<Node>, ConfigError> {
        let read = self.reader.list(filter).await;
        read.map_err(|err| self.error(&err))
    }

    /// The items fan-in batch `batch_id` holds, naming the file's `[journal]` on error.
    pub(crate) async fn batch_items(
        &self,
        batch_id: &str,
    ) -> Result<Vec<ergon_core::journal::Member>, ConfigError> {
        let read = self.reader.batch_items(batch_id).await;
        read.map_err(|err| self.error(&err))
    }

    /// The DAG runs in `status` (every status when `None`), newest first, at most
    /// `limit`, naming the file's `[journal]` on error.
    pub(crate) async fn runs(
        &self,
        status: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RunSummary>, ConfigError> {
        let read = self.reader.runs(status, limit).await;
        read.map_err(|err| self.error(&err))
    }

    /// Run `run_id` with its nodes, if the journal has it, naming the file's `[journal]`
    /// on error.
    pub(crate) async fn run(&self, run_id: &str) -> Result<Option<RunDetail>, ConfigError> {
        let read = self.reader.run(run_id).await;
        read.map_err(|err| self.error(&err))
    }

    fn error(&self, err: &ergon_core::TaskError) -> ConfigError {
        ConfigError::new(&self.file, "journal", err.chain())
    }
}

/// `get ID [--json]`: the transaction in every task it completed in; exit 1 when the
/// journal does not know it.
///
/// # Errors
///
/// The journal cannot be read.
pub async fn get(journal: &JournalFile, id: &str, json: bool) -> Result<(String, u8), ConfigError> {
    let nodes = journal.get(id).await?;
    if nodes.is_empty() {
        return Ok((format!("no transaction `{id}` in the journal\n"), 1));
    }
    let out = if json {
        nodes.iter().map(json_line).collect()
    } else {
        nodes.iter().map(details).collect::<Vec<_>>().join("\n")
    };
    Ok((out, 0))
}

/// `list --parent ID | --root ID [--status S] [--limit N] [--json]`: one line per node,
/// oldest first.
///
/// # Errors
///
/// The journal cannot be read.
pub async fn list(
    journal: &JournalFile,
    filter: &Filter,
    json: bool,
) -> Result<String, ConfigError> {
    let nodes = journal.list(filter).await?;
    Ok(nodes
        .iter()
        .map(|node| {
            if json {
                json_line(node)
            } else {
                summary(node) + "\n"
            }
        })
        .collect())
}

/// `journal purge [--older-than D]`: deletes the records that ended more than `D` ago
/// (default: the file's `retention`).
///
/// # Errors
///
/// The journal cannot be read.
pub async fn purge(
    journal: &JournalFile,
    older_than: Option<Duration>,
) -> Result<String, ConfigError> {
    let older_than = older_than.unwrap_or(journal.retention);
    let older_ms = i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
    let before = ergon_core::journal::now_ms().saturating_sub(older_ms);
    let purged = journal.reader.purge_before(before).await;
    let purged = purged.map_err(|err| journal.error(&err))?;
    Ok(format!(
        "purged {purged} journal records that ended more than {} ago\n",
        humantime::format_duration(older_than)
    ))
}

/// One line: task, id, status, duration, attempts, deliveries, children, the error.
pub(crate) fn summary(node: &Node) -> String {
    let mut line = format!(
        "{} [{}] {} {}ms attempts={} deliveries={}",
        node.id,
        node.task,
        node.status.as_str(),
        node.duration_ms(),
        node.attempts,
        node.deliveries
    );
    if node.children > 0 {
        let _ = write!(line, " children={}", node.children);
    }
    if let Some(error) = &node.error {
        let _ = write!(
            line,
            " error={}/{}: {}",
            error.step, error.category, error.message
        );
    }
    line
}

/// Every field, one per line.
fn details(node: &Node) -> String {
    let mut out = String::new();
    let mut field = |name: &str, value: &dyn std::fmt::Display| {
        let _ = writeln!(out, "{name:<12} {value}");
    };
    field("id", &node.id);
    field("task", &node.task);
    field("status", &node.status.as_str());
    field("settlement", &node.settlement);
    field("parent", &node.parent_id.as_deref().unwrap_or("-"));
    field("root", &node.root_id);
    field("tags", &node.tags.join(","));
    field("attempts", &node.attempts);
    field("deliveries", &node.deliveries);
    field("children", &node.children);
    field("duration", &format!("{}ms", node.duration_ms()));
    field("finished", &node.finished_at_ms);
    field("trace_id", &node.trace_id.as_deref().unwrap_or("-"));
    if let Some(error) = &node.error {
        field(
            "error",
            &format!("{}/{}: {}", error.step, error.category, error.message),
        );
    }
    out
}

fn json_line(node: &Node) -> String {
    serde_json::to_string(node).unwrap_or_default() + "\n"
}
