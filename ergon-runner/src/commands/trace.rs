//! `trace ID [--format tree|json]`: the lineage tree of a transaction, from its root.
//!
//! Each line is one transaction in one task (id, task, status, duration, attempts,
//! deliveries, children, the error of a failure); children hang under their parent, and
//! continuations (`on_complete`, parked waits) under it too, marked `⤷` and never folded.
//! Tagged fan-in batches hang under their group's transaction, marked `▤`, each with the
//! items it holds (`holds 10: a/item/1, a/item/2, a/item/3, … 7 more`); many batches fold
//! like children. A large fan-out is folded after its first few children into one line counting the
//! rest by status (`… 997 more: 990 succeeded, 7 failed`), so a trace of 100,000 children
//! stays readable; `list --parent ID --status failed` shows the failures it folded.
//! The JSON format folds nothing.
//!
//! For a DAG run's id (the run's start transaction has the run's id), the run view of
//! [`super::runs`] comes first: the run's nodes in dependency order with their phases,
//! durations and errors, an expanded node's items counted on one line; then, after a
//! blank line, the lineage as above, where each item is a transaction of its own. In JSON
//! a run prints as its detail (summary and nodes) with the lineage under `lineage`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use ergon_core::journal::Member;
use ergon_journal::{Filter, Node};
use serde_json::{Value, json};

use super::journal::{JournalFile, summary};
use super::runs;
use crate::config::ConfigError;

/// How `trace` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TraceFormat {
    /// An indented tree, large fan-outs folded.
    Tree,
    /// One nested JSON document, nothing folded.
    Json,
}

/// Children beyond this many are folded into one line (tree format).
const FOLD_AFTER: usize = 10;
/// How many children a folded fan-out still shows (and item ids a batch line shows).
const SHOWN_WHEN_FOLDED: usize = 3;
/// The most nodes one trace reads.
const MAX_NODES: usize = 1_000_000;

/// Renders the lineage of `id` (after the run view when `id` is a run's); exit 1 when
/// the journal knows nothing of it.
///
/// # Errors
///
/// The journal cannot be read.
pub async fn trace(
    journal: &JournalFile,
    id: &str,
    format: TraceFormat,
) -> Result<(String, u8), ConfigError> {
    let run = journal.run(id).await?;
    let own = journal.get(id).await?;
    // A root that was not journaled itself (record = "workflow" keeps only lineages)
    // still roots the nodes that name it.
    let root = own
        .first()
        .map_or(id, |node| node.root_id.as_str())
        .to_owned();
    let filter = Filter {
        root: Some(root.clone()),
        limit: MAX_NODES,
        ..Filter::default()
    };
    let nodes = journal.list(&filter).await?;
    if nodes.is_empty() && own.is_empty() && run.is_none() {
        return Ok((format!("no transaction `{id}` in the journal\n"), 1));
    }
    let mut lineage = Lineage::new(own.iter().chain(&nodes));
    for batch in lineage.batches_shown(format) {
        let items = journal.batch_items(&batch).await?;
        lineage.items.insert(batch, items);
    }
    let out = match format {
        TraceFormat::Tree => {
            let mut out = run
                .as_ref()
                .map(|run| runs::tree(run) + "\n")
                .unwrap_or_default();
            lineage.tree(&root, "", "", &mut out, &mut HashSet::new());
            out
        }
        TraceFormat::Json => {
            let mut document = lineage.json(&root, &mut HashSet::new());
            if let Some(run) = &run {
                document = with_lineage(run, document);
            }
            serde_json::to_string_pretty(&document).unwrap_or_default() + "\n"
        }
    };
    Ok((out, 0))
}

/// `run`'s detail as JSON, with `lineage` added.
fn with_lineage(run: &ergon_journal::run::view::RunDetail, lineage: Value) -> Value {
    let mut detail = serde_json::to_value(run).unwrap_or_default();
    detail["lineage"] = lineage;
    detail
}

/// How the children of one transaction are shown: fan-out children (the first few when
/// there are many), fan-in batches (likewise), continuations (all).
struct Shown<'l> {
    children: &'l [&'l str],
    folded: &'l [&'l str],
    batches: &'l [&'l str],
    folded_batches: &'l [&'l str],
    continuations: &'l [&'l str],
}

/// The children of one transaction, by how the journal reached them.
#[derive(Default)]
struct Kinds<'a> {
    /// Dispatched or spawned (edge `spawn`, or none).
    fan_out: Vec<&'a str>,
    /// Tagged fan-in batches of its results (edge `batch`).
    batches: Vec<&'a str>,
    /// `on_complete` and parked-wait continuations (edge `then`).
    continuations: Vec<&'a str>,
}

/// The first few of `ids` when there are many, and the rest.
fn fold<'l>(ids: &'l [&'l str]) -> (&'l [&'l str], &'l [&'l str]) {
    let shown = if ids.len() > FOLD_AFTER {
        SHOWN_WHEN_FOLDED
    } else {
        ids.len()
    };
    ids.split_at(shown)
}

/// The nodes of one lineage, by transaction id, each id's children in finish order, and
/// the items of the fan-in batches shown.
struct Lineage<'a> {
    nodes: HashMap<&'a str, Vec<&'a Node>>,
    children: HashMap<&'a str, Vec<&'a str>>,
    /// Children of each id by kind.
    kinds: HashMap<&'a str, Kinds<'a>>,
    items: HashMap<String, Vec<Member>>,
}

impl<'a> Lineage<'a> {
    fn new(nodes: impl Iterator<Item = &'a Node>) -> Self {
        let mut by_id: HashMap<&str, Vec<&Node>> = HashMap::new();
        let mut ordered: Vec<&Node> = nodes.collect();
        ordered.sort_by_key(|node| (node.finished_at_ms, node.id.as_str(), node.task.as_str()));
        ordered.dedup_by(|a, b| a.id == b.id && a.task == b.task);
        let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
        for node in ordered {
            let seen = by_id.contains_key(node.id.as_str());
            by_id.entry(&node.id).or_default().push(node);
            if let (Some(parent), false) = (node.parent_id.as_deref(), seen) {
                children.entry(parent).or_default().push(&node.id);
            }
        }
        let edge = |id: &str| {
            by_id
                .get(id)
                .and_then(|nodes| nodes.first())
                .and_then(|node| node.edge.as_deref())
        };
        let mut kinds: HashMap<&str, Kinds<'_>> = HashMap::new();
        for (parent, ids) in &children {
            let sorted = kinds.entry(parent).or_default();
            for id in ids {
                match edge(id) {
                    Some("batch") => sorted.batches.push(id),
                    Some("then") => sorted.continuations.push(id),
                    _ => sorted.fan_out.push(id),
                }
            }
        }
        Self {
            nodes: by_id,
            children,
            kinds,
            items: HashMap::new(),
        }
    }

    /// How the children of `id` are shown.
    fn shown(&self, id: &str) -> Shown<'_> {
        let (children, batches, continuations): (&[&str], &[&str], &[&str]) =
            match self.kinds.get(id) {
                Some(kinds) => (&kinds.fan_out, &kinds.batches, &kinds.continuations),
                None => (&[], &[], &[]),
            };
        let (children, folded) = fold(children);
        let (batches, folded_batches) = fold(batches);
        Shown {
            children,
            folded,
            batches,
            folded_batches,
            continuations,
        }
    }

    /// The fan-in batches `format` shows (whose items are to be read): in a tree, those
    /// not folded; in JSON, every one.
    fn batches_shown(&self, format: TraceFormat) -> Vec<String> {
        self.kinds
            .keys()
            .flat_map(|id| match format {
                TraceFormat::Tree => self.shown(id).batches.to_vec(),
                TraceFormat::Json => self.kinds[id].batches.clone(),
            })
            .map(str::to_owned)
            .collect()
    }

    /// `holds N: a, b, c, … M more` for batch `id`.
    fn holds(&self, id: &str) -> Option<String> {
        let items = self.items.get(id)?;
        let mut line = format!("holds {}", items.len());
        let ids: Vec<&str> = items
            .iter()
            .take(SHOWN_WHEN_FOLDED)
            .map(|item| item.id.as_str())
            .collect();
        if !ids.is_empty() {
            let _ = write!(line, ": {}", ids.join(", "));
        }
        if items.len() > ids.len() {
            let _ = write!(line, ", … {} more", items.len() - ids.len());
        }
        Some(line)
    }

    /// `… N more[ what]: 3 succeeded, 1 failed (list --parent ID …)` for `folded`.
    fn folded_line(&self, id: &str, folded: &[&str], what: &str) -> String {
        let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
        for child in folded {
            *by_status.entry(self.status(child)).or_default() += 1;
        }
        let counts: Vec<String> = by_status
            .iter()
            .map(|(status, n)| format!("{n} {status}"))
            .collect();
        format!(
            "… {} more{what}: {} (list --parent {id} [--status failed])",
            folded.len(),
            counts.join(", ")
        )
    }

    /// The lines of `id` (one per task it completed in), then its children (a large
    /// fan-out folded), then its continuations.
    fn tree(
        &self,
        id: &str,
        first: &str,
        rest: &str,
        out: &mut String,
        seen: &mut HashSet<String>,
    ) {
        if !seen.insert(id.to_owned()) {
            return;
        }
        match self.nodes.get(id) {
            None => {
                let _ = writeln!(out, "{first}{id} (not journaled)");
            }
            Some(nodes) => {
                for (index, node) in nodes.iter().enumerate() {
                    let lead = if index == 0 { first } else { rest };
                    let _ = writeln!(out, "{lead}{}", summary(node));
                }
            }
        }
        let shown = self.shown(id);
        let holds = self.holds(id);
        let lines = usize::from(holds.is_some())
            + shown.children.len()
            + usize::from(!shown.folded.is_empty())
            + shown.batches.len()
            + usize::from(!shown.folded_batches.is_empty())
            + shown.continuations.len();
        let mut line = 0;
        let mut branch = || {
            line += 1;
            if line == lines {
                ("└─ ", "   ")
            } else {
                ("├─ ", "│  ")
            }
        };
        if let Some(holds) = holds {
            let (branch, _) = branch();
            let _ = writeln!(out, "{rest}{branch}{holds}");
        }
        for child in shown.children {
            let (branch, next) = branch();
            let (first, rest) = (format!("{rest}{branch}"), format!("{rest}{next}"));
            self.tree(child, &first, &rest, out, seen);
        }
        if !shown.folded.is_empty() {
            let (branch, _) = branch();
            let folded = self.folded_line(id, shown.folded, "");
            let _ = writeln!(out, "{rest}{branch}{folded}");
        }
        for batch in shown.batches {
            let (branch, next) = branch();
            let (first, rest) = (format!("{rest}{branch}▤ "), format!("{rest}{next}  "));
            self.tree(batch, &first, &rest, out, seen);
        }
        if !shown.folded_batches.is_empty() {
            let (branch, _) = branch();
            let folded = self.folded_line(id, shown.folded_batches, " batches");
            let _ = writeln!(out, "{rest}{branch}▤ {folded}");
        }
        for child in shown.continuations {
            let (branch, next) = branch();
            let (first, rest) = (format!("{rest}{branch}⤷ "), format!("{rest}{next}  "));
            self.tree(child, &first, &rest, out, seen);
        }
    }

    /// The status of `id` where it ended last.
    fn status(&self, id: &str) -> &'static str {
        self.nodes
            .get(id)
            .and_then(|nodes| nodes.last())
            .map_or("not journaled", |node| node.status.as_str())
    }

    fn json(&self, id: &str, seen: &mut HashSet<String>) -> Value {
        seen.insert(id.to_owned());
        let nodes = self.nodes.get(id).map_or(&[][..], Vec::as_slice);
        let mut children = Vec::new();
        for child in self.children.get(id).map_or(&[][..], Vec::as_slice) {
            if !seen.contains(*child) {
                children.push(self.json(child, seen));
            }
        }
        match self.items.get(id) {
            Some(items) => {
                json!({ "id": id, "nodes": nodes, "items": items, "children": children })
            }
            None => json!({ "id": id, "nodes": nodes, "children": children }),
        }
    }
}
