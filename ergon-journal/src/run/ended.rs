//! A completion seen from a run: which node (or item) of which run it ended, and how.

use ergon_core::journal::Completion;
use ergon_core::transaction::meta;

use super::Run;
use crate::handover;

/// A node (or item) a completion ended, for its run to take ([`Run::take`]).
pub(crate) struct NodeEnded {
    pub(crate) run_id: String,
    node: String,
    pub(crate) task: String,
    item: bool,
    succeeded: bool,
    output: Option<serde_json::Value>,
    error: Option<String>,
}

impl NodeEnded {
    /// What `c` (which made its node terminal with `status` and `output`) ends, when it
    /// is a node or an item of a run: its id must be the node's.
    pub(crate) fn of(c: &Completion, status: &str, output: Option<&str>) -> Option<Self> {
        let t = &c.transaction;
        let (run_id, node) = (t.meta(meta::RUN_ID)?, t.meta(meta::NODE)?);
        let item = t.meta(meta::ITEM);
        let expected = match item {
            Some(index) => format!("{run_id}/{node}/{index}"),
            None => format!("{run_id}/{node}"),
        };
        (t.id() == expected).then(|| Self {
            run_id: run_id.to_owned(),
            node: node.to_owned(),
            task: c.task.to_string(),
            item: item.is_some(),
            succeeded: status == "succeeded",
            output: output.and_then(|o| serde_json::from_str(o).ok()),
            error: handover::status_of(&c.settlement)
                .1
                .map(|failure| format!("{}: {}", failure.category.as_str(), failure.message)),
        })
    }
}

impl Run<'_> {
    /// Takes `ended` (a node or an item of this run, run by the node's task): returns the
    /// node whose items have all ended, for the store to read them back and
    /// [`join`](Run::join) it.
    pub(crate) fn take(&mut self, ended: NodeEnded) -> Option<String> {
        if self.task_of(&ended.node) != Some(ended.task.as_str()) {
            return None;
        }
        if !ended.item {
            self.node_ended(&ended.node, ended.succeeded, ended.output, ended.error);
            return None;
        }
        self.item_ended(&ended.node, ended.succeeded)
            .then_some(ended.node)
    }
}
