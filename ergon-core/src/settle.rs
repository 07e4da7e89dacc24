//! Settlement: performing what the lifecycle decided, through the input connector.

use crate::connector::{Connector, Settlement};
use crate::envelope::{self, Attempted, step_span};
use crate::policy::RetryPolicy;
use crate::step::Step;
use crate::telemetry::names;
use crate::transaction::Transaction;

/// Settles `tx` through `input` under the settle retry policy; when `traced`, in a step
/// span under the current one (the transaction's).
///
/// A settlement that fails for good is logged at ERROR (the transaction may be delivered
/// again by its source, or, for a dead letter that could not be written, lost) and
/// returned so the worker can count it.
pub(crate) async fn settle(
    task: &str,
    input: &dyn Connector,
    tx: &Transaction,
    settlement: &Settlement,
    policy: &RetryPolicy,
    traced: bool,
) -> Attempted<()> {
    let name = Step::Settle.as_str();
    let span = if traced {
        step_span!(
            name,
            policy,
            { names::OPERATION_TYPE } = "settle",
            { names::SETTLEMENT } = settlement.as_str()
        )
    } else {
        tracing::Span::none()
    };
    let settled = envelope::run(
        name,
        span,
        policy,
        |_| input.settle(tx, settlement),
        &mut (),
    )
    .await;
    if let Err(err) = &settled.result {
        tracing::error!(
            { names::TASK } = task,
            { names::MESSAGE_ID } = tx.id(),
            { names::SETTLEMENT } = settlement.as_str(),
            attempts = settled.attempts,
            error = %err.chain(),
            "Settlement failed"
        );
    }
    settled
}
