//! Which completions a journal records ([`Record`]), the same in every backend: in
//! `workflow` mode, those part of a lineage and every failure.

use std::collections::HashSet;
use std::sync::Mutex;

use ergon_core::lifecycle::TransactionOutcome;
use ergon_core::sync::lock;
use ergon_core::{Settlement, Transaction};

use crate::config::Record;
use crate::routes::Routes;

/// The record mode, and the transactions in flight that spawned children or parked a
/// wait: part of a lineage, so recorded in `workflow` mode (taken out when their
/// completion is asked about).
pub(crate) struct Recording {
    record: Record,
    parents: Mutex<HashSet<String>>,
}

impl Recording {
    pub(crate) fn new(record: Record) -> Self {
        Self {
            record,
            parents: Mutex::default(),
        }
    }

    /// Transaction `id` spawned children or parked a wait.
    pub(crate) fn parent(&self, id: &str) {
        lock(&self.parents).insert(id.to_owned());
    }

    /// The parents of `children` spawned children.
    pub(crate) fn parents_of(&self, children: &[Transaction]) {
        let parents = children.iter().filter_map(Transaction::parent_id);
        lock(&self.parents).extend(parents.map(str::to_owned));
    }

    /// Whether the completion of `tx` in `task` with `outcome` is recorded
    /// ([`ergon_core::journal::Journal::records`]).
    pub(crate) fn records(
        &self,
        routes: &Routes,
        task: &str,
        tx: &Transaction,
        outcome: &TransactionOutcome,
    ) -> bool {
        let parent = lock(&self.parents).remove(tx.id());
        let lineage = parent
            || !routes.continuations_of(task).is_empty()
            || tx.parent_id().is_some()
            || tx.tags().next().is_some()
            || outcome.dispatched > 0;
        let failed = !matches!(outcome.settlement, Settlement::Ack);
        self.record.records(lineage, failed)
    }
}
