//! `runs [--status S] [--limit N] [--format text|json]`: the DAG runs, newest first, with
//! their progress; and the run view `trace RUN_ID` draws above the run's lineage.
//!
//! A run's line reads `d1 [wf] succeeded 4/4 nodes, took 615ms`: id, workflow, status,
//! nodes ended out of all (joins of groups included), how many failed, then how long it
//! took, or for a running run its age and when its deadline falls. The run view lists the
//! nodes in dependency order, each with its task, phase, duration and error; an expanded
//! node's items are folded into one line counting them (`2 items: 2 succeeded, 0 failed`).

use std::fmt::Write as _;
use std::time::Duration;

use ergon_core::journal::dag::GROUP_PREFIX;
use ergon_core::journal::now_ms;
use ergon_journal::run::view::{RunDetail, RunNode, RunSummary};
use ergon_journal::run::{Items, NodeState};

use super::journal::JournalFile;
use crate::config::ConfigError;

/// The statuses `--status` accepts.
pub const STATUSES: [&str; 4] = ["running", "succeeded", "failed", "timed_out"];

/// How `runs` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RunsFormat {
    /// One line per run.
    Text,
    /// One JSON array of the runs' summaries.
    Json,
}

/// Lists the runs in `status` (every status when `None`), newest first, at most `limit`.
///
/// # Errors
///
/// The journal cannot be read.
pub async fn runs(
    journal: &JournalFile,
    status: Option<&str>,
    limit: usize,
    format: RunsFormat,
) -> Result<String, ConfigError> {
    let runs = journal.runs(status, limit).await?;
    Ok(match format {
        RunsFormat::Text => runs.iter().map(|run| progress(run) + "\n").collect(),
        RunsFormat::Json => serde_json::to_string_pretty(&runs).unwrap_or_default() + "\n",
    })
}

/// The run view: `run ` and the run's progress line, then one line per node in dependency
/// order, an expanded node's items folded under it.
pub(crate) fn tree(run: &RunDetail) -> String {
    let mut out = format!("run {}\n", progress(&run.summary));
    for (index, node) in run.nodes.iter().enumerate() {
        let (branch, next) = if index + 1 == run.nodes.len() {
            ("└─ ", "   ")
        } else {
            ("├─ ", "│  ")
        };
        let _ = writeln!(out, "{branch}{}", node_line(node));
        if let Some(items) = node.state.items {
            let _ = writeln!(out, "{next}└─ {}", folded_items(items));
        }
    }
    out
}

/// `ID [WORKFLOW] STATUS DONE/TOTAL nodes[, F failed], took D` (or `, age A, deadline in
/// D` while it runs).
fn progress(run: &RunSummary) -> String {
    let mut line = format!(
        "{} [{}] {} {}/{} nodes",
        run.run_id, run.workflow, run.status, run.nodes_done, run.nodes_total
    );
    if run.nodes_failed > 0 {
        let _ = write!(line, ", {} failed", run.nodes_failed);
    }
    match run.finished_at {
        Some(finished_at) => {
            let _ = write!(line, ", took {}", elapsed(finished_at - run.created_at));
        }
        None => {
            let now = now_ms();
            let _ = write!(line, ", age {}", elapsed(now - run.created_at));
            if let Some(deadline) = run.deadline_ms {
                let _ = write!(line, ", {}", deadline_from(now, deadline));
            }
        }
    }
    line
}

/// `deadline in D`, or `deadline passed D ago` once `now` is past it.
fn deadline_from(now: i64, deadline: i64) -> String {
    if deadline >= now {
        format!("deadline in {}", elapsed(deadline - now))
    } else {
        format!("deadline passed {} ago", elapsed(now - deadline))
    }
}

/// `NAME [TASK] PHASE DURATION after A, B: ERROR`; a group's join reads
/// `group:NAME (join of A, B) PHASE …`.
fn node_line(node: &RunNode) -> String {
    let state = &node.state;
    let mut line = if node.name.starts_with(GROUP_PREFIX) {
        format!("{} (join of {})", node.name, node.depends_on.join(", "))
    } else {
        format!("{} [{}]", node.name, node.task)
    };
    let _ = write!(line, " {}", state.phase.as_str());
    if let Some(duration) = duration(state) {
        let _ = write!(line, " {duration}");
    }
    if !node.name.starts_with(GROUP_PREFIX) && !node.depends_on.is_empty() {
        let _ = write!(line, " after {}", node.depends_on.join(", "));
    }
    if let Some(error) = &state.error {
        let _ = write!(line, ": {error}");
    }
    line
}

/// How long a node ran (`finished_at - started_at`), or has been running so far.
fn duration(state: &NodeState) -> Option<String> {
    let started_at = state.started_at?;
    Some(match state.finished_at {
        Some(finished_at) => elapsed(finished_at - started_at).to_string(),
        None => format!("{} so far", elapsed(now_ms() - started_at)),
    })
}

/// `N items: S succeeded, F failed[, R running]`.
fn folded_items(items: Items) -> String {
    let mut line = format!(
        "{} items: {} succeeded, {} failed",
        items.total,
        items.done.saturating_sub(items.failed),
        items.failed
    );
    let running = items.total.saturating_sub(items.done);
    if running > 0 {
        let _ = write!(line, ", {running} running");
    }
    line
}

/// `ms` milliseconds as humantime writes them (`615ms`, `1m 2s 5ms`); negative (clock
/// skew between runners) as zero.
fn elapsed(ms: i64) -> humantime::FormattedDuration {
    humantime::format_duration(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}
