//! `trace ID [--format tree|json]`: the lineage tree of a transaction, from its root.
//!
//! Each line is one transaction in one task (id, task, status, duration, attempts,
//! deliveries, children, the error of a failure); children hang under their parent, and
//! continuations (`on_complete`, parked waits) under it too, marked `⤷` and never folded.
//! A large fan-out is folded after its first few children into one line counting the
//! rest by status (`… 997 more: 990 succeeded, 7 failed`), so a trace of 100,000 children
//! stays readable; `list --parent ID --status failed` shows the failures it folded.
//! The JSON format folds nothing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use ergon_journal::{Filter, Node};
use serde_json::{Value, json};

use super::journal::{JournalFile, summary};
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
/// How many children a folded fan-out still shows.
const SHOWN_WHEN_FOLDED: usize = 3;
/// The most nodes one trace reads.
const MAX_NODES: usize = 1_000_000;

/// Renders the lineage of `id`; exit 1 when the journal knows nothing of it.
///
/// # Errors
///
/// The journal cannot be read.
pub async fn trace(
    journal: &JournalFile,
    id: &str,
    format: TraceFormat,
) -> Result<(String, u8), ConfigError> {
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
    if nodes.is_empty() && own.is_empty() {
        return Ok((format!("no transaction `{id}` in the journal\n"), 1));
    }
    let lineage = Lineage::new(own.iter().chain(&nodes));
    let out = match format {
        TraceFormat::Tree => {
            let mut out = String::new();
            lineage.tree(&root, "", "", &mut out, &mut HashSet::new());
            out
        }
        TraceFormat::Json => {
            let document = lineage.json(&root, &mut HashSet::new());
            serde_json::to_string_pretty(&document).unwrap_or_default() + "\n"
        }
    };
    Ok((out, 0))
}

/// The nodes of one lineage, by transaction id, and each id's children in finish order.
struct Lineage<'a> {
    nodes: HashMap<&'a str, Vec<&'a Node>>,
    children: HashMap<&'a str, Vec<&'a str>>,
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
        Self {
            nodes: by_id,
            children,
        }
    }

    /// Whether `id` is a continuation (it was reached by a `then` edge).
    fn is_continuation(&self, id: &str) -> bool {
        self.nodes
            .get(id)
            .and_then(|nodes| nodes.first())
            .is_some_and(|node| node.edge.as_deref() == Some("then"))
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
        let all = self.children.get(id).map_or(&[][..], Vec::as_slice);
        let (continuations, children): (Vec<&str>, Vec<&str>) =
            all.iter().partition(|child| self.is_continuation(child));
        let shown = if children.len() > FOLD_AFTER {
            SHOWN_WHEN_FOLDED
        } else {
            children.len()
        };
        let folded = &children[shown..];
        let lines = shown + usize::from(!folded.is_empty()) + continuations.len();
        let branch = |index: usize| {
            if index + 1 == lines {
                ("└─ ", "   ")
            } else {
                ("├─ ", "│  ")
            }
        };
        for (index, child) in children[..shown].iter().enumerate() {
            let (branch, next) = branch(index);
            self.tree(
                child,
                &format!("{rest}{branch}"),
                &format!("{rest}{next}"),
                out,
                seen,
            );
        }
        if !folded.is_empty() {
            let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
            for child in folded {
                *by_status.entry(self.status(child)).or_default() += 1;
            }
            let counts: Vec<String> = by_status
                .iter()
                .map(|(status, n)| format!("{n} {status}"))
                .collect();
            let (branch, _) = branch(shown);
            let _ = writeln!(
                out,
                "{rest}{branch}… {} more: {} (list --parent {id} [--status failed])",
                folded.len(),
                counts.join(", ")
            );
        }
        let done = shown + usize::from(!folded.is_empty());
        for (index, child) in continuations.iter().enumerate() {
            let (branch, next) = branch(done + index);
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
        json!({ "id": id, "nodes": nodes, "children": children })
    }
}
