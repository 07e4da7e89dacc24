//! The fetch step: one batch from the input connector, under the fetch retry policy.

use crate::connector::Connector;
use crate::delivery::Delivery;
use crate::envelope::{self, Attempted, step_watch};
use crate::observe::watch::Watched;
use crate::policy::RetryPolicy;
use crate::step::Step;

/// Fetches up to `max` deliveries, retrying per `policy`; observed under the loop when
/// `watched` is given (the batch it brings is watched).
pub(crate) async fn fetch(
    input: &dyn Connector,
    policy: &RetryPolicy,
    max: usize,
    watched: Option<Watched<'_>>,
) -> Attempted<Vec<Delivery>> {
    let name = Step::Fetch.as_str();
    let watch = step_watch(watched, name, policy, Some(max));
    envelope::run(name, watch, policy, |_| input.fetch(max), &mut ()).await
}
