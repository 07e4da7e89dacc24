//! The outbox relay: hands what the journal committed for a task to that task's input
//! connector (RabbitMQ, ...), at least once.
//!
//! A batch of outbox rows is locked (`FOR UPDATE SKIP LOCKED`, so relays of several
//! processes share the outbox without waiting for each other), dispatched, and deleted in
//! the transaction that locked it. A crash or a lost connection between the dispatch and
//! the delete leaves the rows for the next relay: the transactions are dispatched again,
//! with the same deterministic ids, and the journal settles a copy whose first delivery
//! completed without running it again (it looks every child up:
//! [`ergon_core::journal::Journal::looks_up`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use ergon_core::config::MakeConnector;
use ergon_core::{Connector, TaskError, Transaction};
use tokio::sync::Notify;

use super::Place;
use crate::handover;

/// The most rows one relay transaction takes.
const BATCH: i64 = 2_000;

/// How long the relay sleeps when nothing wakes it (rows committed by a process whose
/// notification it did not hear).
const BACKSTOP: Duration = Duration::from_secs(1);

/// How long it waits after a failure before it tries again.
const AFTER_FAILURE: Duration = Duration::from_secs(1);

/// The relay of one process, for the tasks it has connectors for.
pub(super) struct Relay {
    pub pool: Pool,
    pub place: Arc<Place>,
    /// How to open each task's input connector, opened for dispatching when the relay
    /// first has something for it.
    pub targets: BTreeMap<String, Arc<dyn MakeConnector>>,
    /// The connectors opened so far.
    pub opened: BTreeMap<String, Arc<dyn Connector>>,
    /// Woken by this process's commits and by the notifications of others'.
    pub wake: Arc<Notify>,
    /// Notified when the journal is dropped: the relay closes its connectors and ends.
    pub stop: Arc<Notify>,
}

impl Relay {
    /// Relays until the journal is dropped.
    pub async fn run(mut self) {
        let tasks: Vec<String> = self.targets.keys().cloned().collect();
        loop {
            match self.relay_batch(&tasks).await {
                Ok(relayed) if relayed == BATCH as usize => continue,
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(
                        journal = %self.place,
                        error = %err.chain(),
                        "Cannot relay the journal's outbox; trying again"
                    );
                    tokio::time::sleep(AFTER_FAILURE).await;
                }
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(BACKSTOP) => {}
                () = self.stop.notified() => break,
            }
        }
        self.close().await;
    }

    /// Relays one batch; returns how many rows.
    async fn relay_batch(&mut self, tasks: &[String]) -> Result<usize, TaskError> {
        let place = self.place.clone();
        let sql = |err| place.error("cannot relay the outbox", err);
        let mut client = self
            .pool
            .get()
            .await
            .map_err(|err| self.place.error("cannot relay the outbox", err))?;
        let tx = client.transaction().await.map_err(sql)?;
        let rows = tx
            .query(
                "SELECT seq, task, tx_id, payload, metadata FROM ergon_outbox
                 WHERE task = ANY($1) ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED",
                &[&tasks, &BATCH],
            )
            .await
            .map_err(sql)?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut by_task: BTreeMap<&str, Vec<Transaction>> = BTreeMap::new();
        let mut seqs = Vec::with_capacity(rows.len());
        for row in &rows {
            seqs.push(row.get::<_, i64>(0));
            let tx = handover::rebuilt(row.get(2), row.get(3), row.get(4));
            by_task.entry(row.get(1)).or_default().push(tx);
        }
        for (task, transactions) in &by_task {
            self.connector(task).await?.dispatch(transactions).await?;
        }
        tx.execute("DELETE FROM ergon_outbox WHERE seq = ANY($1)", &[&seqs])
            .await
            .map_err(sql)?;
        tx.commit().await.map_err(sql)?;
        Ok(rows.len())
    }

    /// Task `task`'s input connector, opened on first use.
    async fn connector(&mut self, task: &str) -> Result<Arc<dyn Connector>, TaskError> {
        if let Some(open) = self.opened.get(task) {
            return Ok(open.clone());
        }
        let make = self.targets.get(task).ok_or_else(|| {
            TaskError::system(format!("the relay has no connector for task {task}"))
        })?;
        let open = make.connect(0).await.map_err(|err| {
            TaskError::system(format!(
                "journal {}: cannot open task {task}'s input to relay to it",
                self.place
            ))
            .with_source(err)
        })?;
        self.opened.insert(task.to_owned(), open.clone());
        Ok(open)
    }

    /// Closes the connectors it opened.
    async fn close(&mut self) {
        for (task, connector) in std::mem::take(&mut self.opened) {
            if let Err(err) = connector.close().await {
                tracing::warn!(task, error = %err.chain(), "Closing a relay connector failed");
            }
        }
    }
}
