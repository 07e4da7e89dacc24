//! Reading the PostgreSQL journal back, through the pool: one node, a filtered list, the
//! states of a wait's members, what is owed; and purging.

use deadpool_postgres::Client;
use ergon_core::journal::{Member, MemberState};
use tokio_postgres::{Error, Row};

use crate::node::{Filter, Node};
use crate::rows::{self, Columns, NODE_COLUMNS};
use crate::run::view::RunSummary;
use crate::tables;

impl Columns for Row {
    type Error = Error;

    fn text(&self, index: usize) -> Result<Option<String>, Error> {
        self.try_get(index)
    }

    fn int(&self, index: usize) -> Result<i64, Error> {
        self.try_get(index)
    }

    fn maybe_int(&self, index: usize) -> Result<Option<i64>, Error> {
        self.try_get(index)
    }
}

/// The nodes of transaction `id`, one per task it completed in.
pub(super) async fn get(db: &Client, id: &str) -> Result<Vec<Node>, Error> {
    let sql =
        format!("SELECT {NODE_COLUMNS} FROM ergon_node WHERE tx_id = $1 ORDER BY finished_at");
    let statement = db.prepare_cached(&sql).await?;
    db.query(&statement, &[&id])
        .await?
        .iter()
        .map(rows::node)
        .collect()
}

/// The nodes `filter` selects, oldest first.
pub(super) async fn list(db: &Client, filter: &Filter) -> Result<Vec<Node>, Error> {
    let (sql, values) = rows::list_query(filter, '$');
    let values: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = values
        .iter()
        .map(|value| value as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect();
    db.query(&sql, &values)
        .await?
        .iter()
        .map(rows::node)
        .collect()
}

/// Deletes the terminal nodes that ended before `before_ms` (Unix milliseconds), the
/// waits decided before then, and the fan-in items batched and groups closed before
/// then; returns how many nodes. Queued nodes, open waits and open groups stay.
pub(super) async fn purge_before(db: &mut Client, before_ms: i64) -> Result<usize, Error> {
    let tx = db.transaction().await?;
    let nodes = tx
        .execute(
            "DELETE FROM ergon_node WHERE finished_at < $1 AND status != 'queued'",
            &[&before_ms],
        )
        .await?;
    tx.execute(
        "DELETE FROM ergon_wait_member
         WHERE wait_id IN (SELECT wait_id FROM ergon_wait WHERE fired_at < $1)",
        &[&before_ms],
    )
    .await?;
    tx.execute("DELETE FROM ergon_wait WHERE fired_at < $1", &[&before_ms])
        .await?;
    tx.execute(tables::PURGE_FAN_IN_ITEMS, &[&before_ms])
        .await?;
    tx.execute(tables::PURGE_FAN_IN_BATCHES, &[&before_ms])
        .await?;
    tx.execute(tables::PURGE_FAN_IN_GROUPS, &[&before_ms])
        .await?;
    tx.execute(tables::PURGE_RUN_ITEMS, &[&before_ms]).await?;
    tx.execute(tables::PURGE_RUNS, &[&before_ms]).await?;
    tx.commit().await?;
    Ok(usize::try_from(nodes).unwrap_or(usize::MAX))
}

/// The items fan-in batch `batch_id` holds, in the order they arrived.
pub(super) async fn batch_items(db: &Client, batch_id: &str) -> Result<Vec<Member>, Error> {
    let statement = db.prepare_cached(tables::BATCH_ITEMS).await?;
    Ok(db
        .query(&statement, &[&batch_id])
        .await?
        .iter()
        .map(|row| Member::new(row.get::<_, String>(0), row.get::<_, String>(1)))
        .collect())
}

/// Whether a node of one of `tasks` is queued (handed over, in the outbox or in its
/// input, and not yet terminal), a wait continuing into one of them is undecided, or a
/// fan-in group of one of them holds items its timeout will cut, or a DAG run is running.
pub(super) async fn owes(db: &Client, tasks: &[String]) -> Result<bool, Error> {
    let statement = db
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM ergon_node WHERE status = 'queued' AND task = ANY($1))
                 OR EXISTS (SELECT 1 FROM ergon_wait WHERE fired_at IS NULL
                     AND then_task = ANY($1))
                 OR EXISTS (SELECT 1 FROM ergon_fanin_group WHERE deadline_ms IS NOT NULL
                     AND consumer = ANY($1))
                 OR EXISTS (SELECT 1 FROM ergon_run WHERE status = 'running')",
        )
        .await?;
    Ok(db.query_one(&statement, &[&tasks]).await?.get(0))
}

/// The states of `members`, in order (`pending` for one not terminal, or unknown), in
/// one query.
pub(super) async fn states(db: &Client, members: &[Member]) -> Result<Vec<MemberState>, Error> {
    let ids: Vec<&str> = members.iter().map(|m| m.id.as_str()).collect();
    let tasks: Vec<&str> = members.iter().map(|m| m.task.as_str()).collect();
    let statement = db
        .prepare_cached(
            "SELECT u.task, u.tx_id, n.status, n.output, n.error
             FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(tx_id, task, position)
             LEFT JOIN ergon_node n ON n.tx_id = u.tx_id AND n.task = u.task
             ORDER BY u.position",
        )
        .await?;
    db.query(&statement, &[&ids, &tasks])
        .await?
        .iter()
        .map(|row| {
            let state = rows::member_state(row)?;
            Ok(if matches!(state.status.as_str(), "" | "queued") {
                rows::pending(&state.task, &state.id)
            } else {
                state
            })
        })
        .collect()
}

/// The runs in `status` (every status when `None`), newest first, at most `limit`.
pub(super) async fn runs(
    db: &Client,
    status: Option<&str>,
    limit: usize,
) -> Result<Vec<RunSummary>, Error> {
    let statement = db.prepare_cached(&rows::runs_query('$', limit)).await?;
    db.query(&statement, &[&status])
        .await?
        .iter()
        .map(|row| rows::run(row).map(|(summary, _, _)| summary))
        .collect()
}

/// Run `run_id` as stored: its summary, definition and state.
pub(super) async fn run(
    db: &Client,
    run_id: &str,
) -> Result<Option<(RunSummary, String, String)>, Error> {
    let statement = db.prepare_cached(&rows::run_query('$')).await?;
    db.query_opt(&statement, &[&run_id])
        .await?
        .map(|row| rows::run(&row))
        .transpose()
}
