//! Settlement: performing what the lifecycle decided, through the input connector.

use crate::connector::{Connector, SettleOutcome, Settlement};
use crate::delivery::Delivery;
use crate::envelope::{self, Attempted};
use crate::policy::RetryPolicy;
use crate::step::Step;
use crate::telemetry::names;
use crate::transaction::Transaction;

/// Settles `delivery` through `input` under the settle retry policy. It takes the
/// delivery by value: once settled (or given up), it cannot be settled again; its
/// transaction comes back, without the receipt, for what follows (the observer's end).
///
/// Not observed as a step of its own: the observer hears the settlement with the
/// transaction's end ([`TransactionEnd::settlement`](crate::observe::TransactionEnd), the
/// `ergon.settlement` attribute of its span), a failure is logged inside it, and the settle
/// step's attempts and time are in the metrics. Two spans fewer per transaction (a step
/// and its attempt) measured a quarter of the cost of tracing a no-op transaction.
///
/// A settlement that fails for good is logged at ERROR (the transaction may be delivered
/// again by its source, or, for a dead letter that could not be written, lost) and
/// returned so the worker can count it; so is a [stale](SettleOutcome::Stale) one, which
/// the worker counts apart from the settlements the transport performed.
pub(crate) async fn settle(
    task: &str,
    input: &dyn Connector,
    delivery: Delivery,
    settlement: &Settlement,
    policy: &RetryPolicy,
) -> (Attempted<SettleOutcome>, Transaction) {
    let name = Step::Settle.as_str();
    let call = |_| input.settle(&delivery, settlement);
    let settled = envelope::run(name, None, policy, call, &mut ()).await;
    if let Err(err) = &settled.result {
        tracing::error!(
            { names::TASK } = task,
            { names::MESSAGE_ID } = delivery.transaction().id(),
            { names::SETTLEMENT } = settlement.as_str(),
            attempts = settled.attempts,
            error = %err.chain(),
            "Settlement failed"
        );
    }
    (settled, delivery.into_transaction())
}
