//! What a journal's front end asks its writer for, the same in every backend: the
//! requests, checked before they are sent, and the wait for their commit.

use ergon_connectors::local::Lease;
use ergon_core::journal::dag::{PlannedNode, RunStart};
use ergon_core::journal::{Completion, Park};
use ergon_core::{TaskError, Transaction};
use tokio::sync::oneshot;

use crate::recording::Recording;
use crate::routes::Routes;

/// A state transition for the writer to commit.
pub(crate) enum Request {
    /// A completion, and the lease of its delivery when its ack is to be made in the
    /// same commit (a local queue in the journal's SQLite file).
    Complete(Completion, Option<Lease>),
    /// Children for `target`'s input.
    Spawn {
        target: String,
        children: Vec<Transaction>,
    },
    /// A parked wait.
    Park(Park),
    /// The cancellation of `parent`'s queued children.
    Cancel { parent: String },
    /// A DAG run to start (its plan checked).
    StartRun(Box<RunStart>),
    /// Nodes to add to a running run (checked against its plan).
    ExtendRun {
        run_id: String,
        nodes: Vec<PlannedNode>,
    },
}

impl Request {
    /// The spawn of `children` by `from_task` for `target`, once the journal can hand
    /// `target` transactions; their parents become part of a lineage.
    pub(crate) fn spawn(
        routes: &Routes,
        recording: &Recording,
        from_task: &str,
        target: &str,
        children: Vec<Transaction>,
    ) -> Result<Request, TaskError> {
        routes.check(&format!("task {from_task} spawns"), target)?;
        recording.parents_of(&children);
        Ok(Request::Spawn {
            target: target.to_owned(),
            children,
        })
    }

    /// The registration of `park`, once the journal can hand its continuation over; its
    /// owner becomes part of a lineage.
    pub(crate) fn park(
        routes: &Routes,
        recording: &Recording,
        park: Park,
    ) -> Result<Request, TaskError> {
        routes.check(
            &format!("task {} parks a wait", park.owner_task),
            &park.then,
        )?;
        recording.parent(park.owner.id());
        Ok(Request::Park(park))
    }

    /// Hands this request to a writer through `send` (false: the writer is gone) and
    /// waits for its commit: how many rows it made new (spawns, cancellations), or
    /// whether it acked its delivery (completions); 0 for the others.
    pub(crate) async fn write(
        self,
        send: impl FnOnce(Pending) -> bool,
    ) -> Result<usize, TaskError> {
        let (done, answer) = oneshot::channel();
        if !send(Pending {
            request: self,
            done,
        }) {
            return Err(gone());
        }
        answer.await.map_err(|_| gone())?.map_err(TaskError::system)
    }
}

/// A request waiting for its commit, and who hears the answer.
pub(crate) struct Pending {
    pub request: Request,
    pub done: oneshot::Sender<Result<usize, String>>,
}

/// The earlier of a known deadline and a new one (`None`: none).
pub(crate) fn earliest(known: Option<i64>, new: Option<i64>) -> Option<i64> {
    match (known, new) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The error of a request whose writer has stopped.
fn gone() -> TaskError {
    TaskError::system("the journal's writer has stopped").non_retryable()
}
