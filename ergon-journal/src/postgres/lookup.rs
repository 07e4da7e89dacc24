//! Looking deliveries up in groups. With a PostgreSQL journal every child is looked up
//! before it runs (the relay hands it over at least once), so the lookups are as many as
//! the children: one task takes every lookup that queued up while the previous query ran
//! and answers them with one query, as the writer groups commits.

use std::sync::Arc;

use deadpool_postgres::Pool;
use ergon_core::{Settlement, TaskError};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;

use super::Place;
use crate::rows;

/// The most lookups one query takes.
const MAX_GROUP: usize = 1_024;

/// A lookup waiting for its query: task, transaction id, who hears the answer.
type Pending = (
    String,
    String,
    oneshot::Sender<Result<Option<Settlement>, String>>,
);

/// The recorded settlements of a group of (task, id), in the group's order.
const RECORDED: &str = "SELECT n.settlement, n.failed_step, n.error_category, n.error,
        n.attempts, u.position::int8
    FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(tx_id, task, position)
    JOIN ergon_node n ON n.tx_id = u.tx_id AND n.task = u.task
        AND n.status IN ('succeeded', 'failed', 'cancelled')";

/// Sends lookups to the grouping task.
pub(super) struct Lookups {
    sender: UnboundedSender<Pending>,
}

impl Lookups {
    /// Starts the grouping task on `pool`.
    pub(super) fn start(pool: Pool, place: Arc<Place>) -> Self {
        let (sender, queue) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(run(pool, place, queue));
        Self { sender }
    }

    /// The settlement recorded for `id` in `task`, if it is terminal there (cancelled
    /// included).
    pub(super) async fn recorded(
        &self,
        task: &str,
        id: &str,
    ) -> Result<Option<Settlement>, TaskError> {
        let (done, answer) = oneshot::channel();
        let gone = || TaskError::system("the journal's lookups have stopped").non_retryable();
        self.sender
            .send((task.to_owned(), id.to_owned(), done))
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?.map_err(TaskError::system)
    }
}

/// Answers what `queue` brings, a group per query, until every sender is gone.
async fn run(pool: Pool, place: Arc<Place>, mut queue: UnboundedReceiver<Pending>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while let Some(first) = queue.recv().await {
        group.push(first);
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        match look_up(&pool, &group).await {
            Ok(mut found) => {
                for (index, (_, _, done)) in group.drain(..).enumerate() {
                    let _ = done.send(Ok(found[index].take()));
                }
            }
            Err(err) => {
                let message = format!("journal {place}: cannot look transactions up: {err}");
                for (_, _, done) in group.drain(..) {
                    let _ = done.send(Err(message.clone()));
                }
            }
        }
    }
}

/// The recorded settlement of each of `group`, by position.
async fn look_up(pool: &Pool, group: &[Pending]) -> Result<Vec<Option<Settlement>>, String> {
    let db = pool.get().await.map_err(|err| err.to_string())?;
    let tasks: Vec<&str> = group.iter().map(|(task, _, _)| task.as_str()).collect();
    let ids: Vec<&str> = group.iter().map(|(_, id, _)| id.as_str()).collect();
    let statement = db
        .prepare_cached(RECORDED)
        .await
        .map_err(|e| e.to_string())?;
    let rows = db
        .query(&statement, &[&ids, &tasks])
        .await
        .map_err(|err| err.to_string())?;
    let mut found = vec![None; group.len()];
    for row in rows {
        let position: i64 = row.get(5);
        let index = usize::try_from(position - 1).unwrap_or(usize::MAX);
        if let Some(slot) = found.get_mut(index) {
            *slot = Some(rows::settlement(&row, tasks[index]).map_err(|e| e.to_string())?);
        }
    }
    Ok(found)
}
