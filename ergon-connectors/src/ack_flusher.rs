//! The loop that writes coalesced acknowledgements: the local, PostgreSQL and Redis
//! Streams connectors settle an ack by noting it, and this loop writes what was noted in
//! one statement per tick — every interval, at once when a full batch is waiting, and not
//! at all once the connector is closed (its `close` flushes the rest itself).
//! [`NotedAcks`] holds what was noted and orders the writes.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use ergon_core::TaskError;
use ergon_core::sync::lock;

/// Acknowledgements noted and not written yet (`T` is what the connector needs to write
/// one: a row's lease, an entry id).
///
/// Writes are taken one at a time: a [`NotedAcks::flush`] called while the loop's flush
/// is writing waits for it, so when it returns every ack noted before the call is
/// written. A connector's `drained` relies on that: a depth read right after its flush
/// must not see a row whose ack another flush still has in hand.
pub(crate) struct NotedAcks<T> {
    noted: Mutex<Vec<T>>,
    writing: tokio::sync::Mutex<()>,
}

/// A batch [`NotedAcks::flush`] could not write, with the reason: it is noted again.
pub(crate) type Unwritten<T> = (Vec<T>, TaskError);

impl<T> NotedAcks<T> {
    /// Nothing noted.
    pub(crate) fn new() -> Self {
        Self {
            noted: Mutex::new(Vec::new()),
            writing: tokio::sync::Mutex::new(()),
        }
    }

    /// Notes `ack`; returns how many are noted now (the connector wakes the loop when a
    /// batch is full).
    pub(crate) fn note(&self, ack: T) -> usize {
        let mut noted = lock(&self.noted);
        noted.push(ack);
        noted.len()
    }

    /// Writes what is noted with `write`, once any write under way has ended. What
    /// `write` hands back unwritten is noted again for the next flush (an ack written
    /// late is safe: the connectors' acks check their lease or pending entry).
    ///
    /// # Errors
    ///
    /// The error `write` returned.
    pub(crate) async fn flush<Fut>(
        &self,
        write: impl FnOnce(Vec<T>) -> Fut,
    ) -> Result<(), TaskError>
    where
        Fut: Future<Output = Result<(), Unwritten<T>>>,
    {
        let _writing = self.writing.lock().await;
        let batch = std::mem::take(&mut *lock(&self.noted));
        if batch.is_empty() {
            return Ok(());
        }
        write(batch).await.map_err(|(unwritten, err)| {
            let mut noted = lock(&self.noted);
            let newer = std::mem::replace(&mut *noted, unwritten);
            noted.extend(newer);
            err
        })
    }
}

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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::sync::oneshot;

    use super::*;

    #[tokio::test]
    async fn a_flush_returns_only_once_the_write_under_way_has_ended() {
        let acks = Arc::new(NotedAcks::new());
        acks.note(1);
        let written = Arc::new(Mutex::new(Vec::new()));
        let (release, held) = oneshot::channel::<()>();
        let (started, writing) = oneshot::channel::<()>();
        let slow = tokio::spawn({
            let (acks, written) = (acks.clone(), written.clone());
            async move {
                acks.flush(|batch| async move {
                    started.send(()).unwrap();
                    held.await.unwrap();
                    lock(&written).extend(batch);
                    Ok(())
                })
                .await
            }
        });
        writing.await.unwrap();
        // Nothing is noted now: the slow flush has the batch in hand.
        let second = tokio::spawn({
            let acks = acks.clone();
            async move { acks.flush(|_| async { Ok(()) }).await }
        });
        tokio::task::yield_now().await;
        assert!(!second.is_finished(), "the second flush did not wait");
        release.send(()).unwrap();
        second.await.unwrap().unwrap();
        assert_eq!(*lock(&written), [1], "returned before the ack was written");
        slow.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn what_a_write_hands_back_is_noted_again_before_newer_acks() {
        let acks = NotedAcks::new();
        acks.note(1);
        acks.note(2);
        let failed = acks
            .flush(|batch| async move {
                let err = TaskError::system("away");
                Err((batch, err))
            })
            .await;
        assert_eq!(failed.unwrap_err().to_string(), "away");
        assert_eq!(acks.note(3), 3);
        let written = Mutex::new(Vec::new());
        acks.flush(|batch| async {
            lock(&written).extend(batch);
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(*lock(&written), [1, 2, 3]);
    }
}
