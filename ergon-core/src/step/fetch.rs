//! The fetch step: one batch from the input connector, under the fetch retry policy.

use crate::connector::Connector;
use crate::envelope::{self, Attempted};
use crate::policy::RetryPolicy;
use crate::step::Step;
use crate::telemetry::names;
use crate::transaction::Transaction;

/// Fetches up to `max` transactions, retrying per `policy`.
pub(crate) async fn fetch(
    task: &str,
    input: &dyn Connector,
    policy: &RetryPolicy,
    max: usize,
) -> Attempted<Vec<Transaction>> {
    let span = tracing::debug_span!(
        "fetch",
        { names::TASK } = task,
        { names::STEP } = Step::Fetch.as_str(),
        { names::OPERATION_TYPE } = "receive",
        { names::BATCH_SIZE } = max,
    );
    envelope::run(
        Step::Fetch.as_str(),
        span,
        policy,
        |_| input.fetch(max),
        &mut (),
    )
    .await
}
