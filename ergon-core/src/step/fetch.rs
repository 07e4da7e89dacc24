//! The fetch step: one batch from the input connector, under the fetch retry policy.

use tracing::Span;

use crate::connector::Connector;
use crate::envelope::{self, Attempted, step_span};
use crate::policy::RetryPolicy;
use crate::step::Step;
use crate::telemetry::names;
use crate::transaction::Transaction;

/// Fetches up to `max` transactions, retrying per `policy`; traced when `traced` (the
/// batch it brings is sampled).
pub(crate) async fn fetch(
    input: &dyn Connector,
    policy: &RetryPolicy,
    max: usize,
    traced: bool,
) -> Attempted<Vec<Transaction>> {
    let name = Step::Fetch.as_str();
    let span = if traced {
        step_span!(
            name,
            policy,
            { names::OPERATION_TYPE } = "receive",
            { names::BATCH_SIZE } = crate::runner::spans::count(max)
        )
    } else {
        Span::none()
    };
    envelope::run(name, span, policy, |_| input.fetch(max), &mut ()).await
}
