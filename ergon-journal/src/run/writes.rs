//! What a run's transition writes, the same in every backend: the transactions it hands
//! over (nodes and items as children of the run's owner, the result to `on_complete`),
//! the items to remember, the transactions to withdraw, the events, and the run's row.

use ergon_core::Transaction;
use ergon_core::transaction::meta;

use super::{Run, RunEvent};
use crate::handover::Edge;

/// The writes of one transition of one run.
pub(crate) struct Writes {
    /// Transactions for tasks: (task, transaction, how it is reached).
    pub handovers: Vec<(String, Transaction, Edge)>,
    /// Items of expanded nodes: (node, index, key).
    pub items: Vec<(String, u32, String)>,
    /// Transactions handed over before and now withdrawn: (task, id).
    pub withdraw: Vec<(String, String)>,
    /// Transitions to publish once the commit is durable.
    pub events: Vec<RunEvent>,
    /// The run's row as it is now.
    pub row: RunRow,
}

/// A run's row, written back after each transition.
pub(crate) struct RunRow {
    pub run_id: String,
    pub status: &'static str,
    /// The definition, when it changed (`None` keeps the stored one).
    pub definition: Option<String>,
    pub state: String,
    pub nodes_total: i64,
    pub nodes_done: i64,
    pub nodes_failed: i64,
    /// When it ended, if this transition ended it.
    pub finished_at: Option<i64>,
}

impl Run<'_> {
    /// What this run's transitions so far write, its nodes handed over as children of
    /// `owner` (the transaction that started it).
    pub(crate) fn writes(mut self, owner: &Transaction, now: i64) -> Writes {
        let effects = std::mem::take(&mut self.effects);
        let mut handovers = Vec::with_capacity(effects.dispatch.len() + 1);
        let mut items = Vec::new();
        for dispatch in effects.dispatch {
            let mut tx = owner
                .child(dispatch.id, dispatch.payload.to_string())
                .meta(meta::RUN_ID, &self.id)
                .meta(meta::NODE, &dispatch.node);
            if let Some((index, key)) = dispatch.item {
                tx = tx
                    .meta(meta::ITEM, index.to_string())
                    .meta(meta::ITEM_KEY, key.clone());
                items.push((dispatch.node, index, key));
            }
            handovers.push((dispatch.task, tx.build(), Edge::Node));
        }
        let finished_at = effects.finished.as_ref().map(|_| now);
        if let Some(result) = effects.finished
            && let Some(task) = result.on_complete
        {
            let tx = owner
                .child(
                    format!("{}/on_complete", self.id),
                    result.payload.to_string(),
                )
                .meta(meta::RUN_ID, &self.id)
                .build();
            handovers.push((task, tx, Edge::Then));
        }
        let (total, done, failed) = self.counts();
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let row = RunRow {
            status: self.status().as_str(),
            definition: self.changed_definition_json(),
            state: self.state_json(),
            nodes_total: count(total),
            nodes_done: count(done),
            nodes_failed: count(failed),
            finished_at,
            run_id: self.id,
        };
        Writes {
            handovers,
            items,
            withdraw: effects.withdraw,
            events: effects.events,
            row,
        }
    }
}
