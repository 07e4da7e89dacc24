//! The loop that writes coalesced acknowledgements: the local, PostgreSQL and Redis
//! Streams connectors settle an ack by noting it, and this loop writes what was noted in
//! one statement per tick — every interval, at once when a full batch is waiting, and not
//! at all once the connector is closed (its `close` flushes the rest itself).

use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use ergon_core::TaskError;

/// Calls `flush` every `interval`, or at once when `now` is notified, until `closed` is
/// cancelled. A failed flush is tried again at the next tick (what was noted stays noted;
/// an ack never written only means a redelivery) and reported to `failed` once per streak
/// of failures, so a database or server that is away for a while logs one line, not one
/// per tick.
pub(crate) async fn run<F, Fut>(
    interval: Duration,
    now: &Notify,
    closed: &CancellationToken,
    mut flush: F,
    failed: impl Fn(&TaskError),
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), TaskError>>,
{
    let mut failing = false;
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = now.notified() => {}
            () = closed.cancelled() => return,
        }
        match flush().await {
            Ok(()) => failing = false,
            Err(err) => {
                if !failing {
                    failed(&err);
                }
                failing = true;
            }
        }
    }
}
