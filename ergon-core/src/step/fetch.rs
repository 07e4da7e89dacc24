//! The fetch step: one batch from the input connector, under the fetch retry policy.

use crate::connector::Connector;
use crate::delivery::Delivery;
use crate::envelope::{self, Attempted, step_span};
use crate::policy::RetryPolicy;
use crate::step::Step;
use crate::telemetry::trace::Traced;

/// Fetches up to `max` deliveries, retrying per `policy`; traced under the loop's span
/// when `trace` is given (the batch it brings is sampled).
pub(crate) async fn fetch(
    input: &dyn Connector,
    policy: &RetryPolicy,
    max: usize,
    trace: Option<Traced<'_>>,
) -> Attempted<Vec<Delivery>> {
    let name = Step::Fetch.as_str();
    let span = step_span(trace, name, policy, Some(max));
    envelope::run(name, span, policy, |_| input.fetch(max), &mut ()).await
}
