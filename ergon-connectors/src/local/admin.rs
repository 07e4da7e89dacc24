//! `queue stats | dead-letters | requeue-dead` on a local queue: a connection of its own to
//! the file, which leases nothing.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use ergon_core::TaskError;
use ergon_core::queue_admin::{DeadLetter, QueueAdmin, QueueStats};
use ergon_core::sync::lock;

use super::{Store, off_thread, open_store};

/// The administration of one local queue.
pub(super) struct LocalAdmin {
    store: Arc<Mutex<Store>>,
    path: PathBuf,
    queue: String,
}

impl LocalAdmin {
    /// Opens the file at `path` (created when missing) for `queue`.
    pub(super) async fn open(path: PathBuf, queue: String) -> Result<Self, TaskError> {
        let store = open_store(&path).await?;
        Ok(Self {
            store: Arc::new(Mutex::new(store)),
            path,
            queue,
        })
    }

    /// Runs `op` on the store with the queue's name, off the async workers.
    async fn on_store<T: Send + 'static>(
        &self,
        what: &'static str,
        op: impl FnOnce(&mut Store, &str) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, TaskError> {
        let queue = self.queue.clone();
        off_thread(self.store.clone(), &self.path, what, move |store| {
            op(&mut lock(store), &queue)
        })
        .await
    }
}

#[async_trait]
impl QueueAdmin for LocalAdmin {
    /// `ready`, `in_flight`, `expired` (leases run out, to be delivered again) and `dead`.
    async fn stats(&self) -> Result<QueueStats, TaskError> {
        let depths = self
            .on_store("cannot read the depth of", |store, queue| {
                store.depths(queue)
            })
            .await?;
        Ok(QueueStats::new(self.queue.as_str())
            .count("ready", depths.ready)
            .count("in_flight", depths.in_flight)
            .count("expired", depths.expired)
            .count("dead", depths.dead))
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, TaskError> {
        let dead = self
            .on_store("cannot read the dead letters of", move |store, queue| {
                store.dead_letters(queue, limit)
            })
            .await?;
        Ok(dead
            .into_iter()
            .map(|letter| DeadLetter {
                id: letter.id,
                deliveries: letter.deliveries,
                failure: serde_json::from_str(&letter.failure).ok(),
                failed_at_ms: Some(letter.failed_at),
                payload: letter.payload,
            })
            .collect())
    }

    async fn requeue_dead(&self) -> Result<u64, TaskError> {
        let moved = self
            .on_store("cannot requeue the dead letters of", |store, queue| {
                store.requeue_dead(queue)
            })
            .await?;
        Ok(u64::try_from(moved).unwrap_or(u64::MAX))
    }
}
