//! Where the engine calls the journal: the redelivery lookup before a transaction runs,
//! and the record of its completion before it is settled.

use std::sync::Arc;

use super::{Completion, Journal, now_ms};
use crate::connector::Settlement;
use crate::delivery::Delivery;
use crate::envelope;
use crate::lifecycle::TransactionOutcome;
use crate::policy::RetryPolicy;
use crate::transaction::Transaction;

/// The outcome of a redelivered `tx` whose completion `journal` already holds: its
/// recorded settlement, no step run. `None` for a delivery the journal does not look up
/// ([`Journal::looks_up`]: a first one), a transaction not yet terminal, or a journal
/// that cannot answer (logged: the transaction then runs again,
/// at least once as without a journal).
pub(crate) async fn replayed(
    journal: &dyn Journal,
    task: &str,
    tx: &Transaction,
) -> Option<TransactionOutcome> {
    if !journal.looks_up(tx) {
        return None;
    }
    let settlement = match journal.recorded(task, tx.id()).await {
        Ok(recorded) => recorded?,
        Err(err) => {
            tracing::warn!(
                task,
                message_id = tx.id(),
                error = %err.chain(),
                "Cannot look the redelivered transaction up in the journal; running it again"
            );
            return None;
        }
    };
    tracing::debug!(
        task,
        message_id = tx.id(),
        settlement = settlement.as_str(),
        "Delivered again after its completion (or cancellation) was journaled: settled as recorded"
    );
    let failure = match &settlement {
        Settlement::DeadLetter(failure) | Settlement::Drop(failure) => Some(failure.clone()),
        Settlement::Ack | Settlement::Requeue => None,
    };
    Some(TransactionOutcome {
        failure,
        settlement,
        retries: 0,
        dispatched: 0,
        exception_error: None,
        output: None,
    })
}

/// Journals a terminal `outcome` of `delivery` before it is settled; returns whether the
/// journal settled it too, in the same commit ([`Journal::complete_and_settle`]). When
/// the completion cannot be journaled after `policy`'s retries, the outcome's settlement
/// becomes `Requeue` (logged at ERROR): the transaction will be delivered and run again,
/// and nothing is settled that the journal does not know.
pub(crate) async fn record(
    journal: &dyn Journal,
    task: &Arc<str>,
    delivery: &Delivery,
    outcome: &mut TransactionOutcome,
    started_at_ms: i64,
    policy: &RetryPolicy,
) -> bool {
    let tx = delivery.transaction();
    if matches!(outcome.settlement, Settlement::Requeue) || !journal.records(task, tx, outcome) {
        return false;
    }
    let completion = Completion {
        task: task.clone(),
        transaction: tx.clone(),
        settlement: outcome.settlement.clone(),
        attempts: outcome.retries + 1,
        children: outcome.dispatched,
        output: outcome.output.take(),
        started_at_ms,
        finished_at_ms: now_ms(),
    };
    let call = |_| journal.complete_and_settle(completion.clone(), delivery);
    let journaled = envelope::run("journal", None, policy, call, &mut ()).await;
    match journaled.result {
        Ok(settled) => settled,
        Err(err) => {
            tracing::error!(
                task = &**task,
                message_id = tx.id(),
                attempts = journaled.attempts,
                error = %err.chain(),
                "Cannot journal the completion; requeueing the transaction instead of settling it"
            );
            outcome.settlement = Settlement::Requeue;
            false
        }
    }
}
