//! An in-step wait ([`ergon_core::journal::Journal::wait`]), the same in every backend:
//! read the members' states, decide, and sleep until a commit may have changed them.

use std::future::Future;
use std::time::Duration;

use ergon_core::TaskError;
use ergon_core::journal::{Counts, MemberState, Quorum, WaitOutcome, Waited};
use tokio::sync::Notify;

use crate::metrics::JournalMetrics;

/// How an in-step wait looks at its members when no commit woke it (a member completed
/// by another process whose commit this one did not hear of).
const BACKSTOP: Duration = Duration::from_secs(1);

/// Waits until the members `states` reads meet `quorum` counting `counts`, or for
/// `timeout`; `committed` wakes it after each commit that may have changed them.
pub(crate) async fn wait<F, R>(
    committed: &Notify,
    metrics: &JournalMetrics,
    total: usize,
    (quorum, counts): (Quorum, Counts),
    timeout: Duration,
    states: F,
) -> Result<Waited, TaskError>
where
    F: Fn() -> R,
    R: Future<Output = Result<Vec<MemberState>, TaskError>>,
{
    let _slot = metrics.waiting_in_step();
    let deadline = tokio::time::Instant::now() + timeout;
    let total = u32::try_from(total).unwrap_or(u32::MAX);
    let needed = quorum.needed(total);
    loop {
        // Armed before the read, so a commit between the read and the sleep wakes it.
        let committed = committed.notified();
        tokio::pin!(committed);
        committed.as_mut().enable();
        let states = states().await?;
        let done = states.iter().filter(|s| s.status != "pending").count();
        let counted = states
            .iter()
            .filter(|s| s.status != "pending" && counts.counts(&s.status))
            .count();
        let (done, counted) = (done as u32, counted as u32);
        if let Some(outcome) = WaitOutcome::decide(total, done, counted, needed) {
            return Ok(Waited {
                outcome,
                members: states,
            });
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(Waited {
                outcome: WaitOutcome::TimedOut,
                members: states,
            });
        }
        tokio::select! {
            () = committed => {}
            () = tokio::time::sleep(BACKSTOP) => {}
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
}
