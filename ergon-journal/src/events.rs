//! Progress events: node and run transitions published after the commit that made
//! them, for dashboards and the seed's Redis subscribers. Coordination never depends on
//! them: a run advances in its commits whether an event is published, late, or lost.

use std::fmt;
use std::sync::Arc;

use ergon_core::journal::dag::PlanLimits;

use crate::run::{Expanders, RunEvent};

/// Where a journal's writer hands the events of each commit, once it is durable. It is
/// called on the writer's thread: it must not block (queue, and publish elsewhere).
pub trait EventSink: Send + Sync + 'static {
    /// Takes the events of one commit, in order.
    fn publish(&self, events: Vec<RunEvent>);
}

/// What DAG runs need besides the journal's tables: the expanders registered in the
/// binary, where progress events go, and the plan limits.
#[derive(Clone, Default)]
pub struct RunSettings {
    /// `expand = { custom = "NAME" }`.
    pub expanders: Expanders,
    /// Where node and run transitions are published, if anywhere.
    pub events: Option<Arc<dyn EventSink>>,
    /// What a plan is checked against.
    pub limits: PlanLimits,
}

impl fmt::Debug for RunSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunSettings")
            .field("expanders", &self.expanders)
            .field("events", &self.events.is_some())
            .field("limits", &self.limits)
            .finish()
    }
}
