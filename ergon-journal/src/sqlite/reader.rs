//! Reading the journal back: one node, a filtered list, the settlement to repeat for a
//! redelivery; and purging.

use ergon_connectors::local::Database;
use ergon_core::Settlement;
use ergon_core::journal::{Member, MemberState};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::node::{Filter, Node};
use crate::rows::{self, Columns, NODE_COLUMNS};
use crate::run::view::RunSummary;
use crate::tables;

impl Columns for Row<'_> {
    type Error = rusqlite::Error;

    fn text(&self, index: usize) -> rusqlite::Result<Option<String>> {
        self.get(index)
    }

    fn int(&self, index: usize) -> rusqlite::Result<i64> {
        self.get(index)
    }

    fn maybe_int(&self, index: usize) -> rusqlite::Result<Option<i64>> {
        self.get(index)
    }
}

/// The nodes of transaction `id`, one per task it completed in.
pub(super) fn get(db: &Connection, id: &str) -> rusqlite::Result<Vec<Node>> {
    let sql =
        format!("SELECT {NODE_COLUMNS} FROM ergon_node WHERE tx_id = ?1 ORDER BY finished_at");
    let mut query = db.prepare_cached(&sql)?;
    query.query_map([id], |row| rows::node(row))?.collect()
}

/// The nodes `filter` selects, oldest first.
pub(super) fn list(db: &Connection, filter: &Filter) -> rusqlite::Result<Vec<Node>> {
    let (sql, values) = rows::list_query(filter, '?');
    let mut query = db.prepare(&sql)?;
    query
        .query_map(rusqlite::params_from_iter(values), |row| rows::node(row))?
        .collect()
}

/// The settlement recorded for `id` in `task`, if it is journaled there.
pub(super) fn recorded(
    db: &Connection,
    task: &str,
    id: &str,
) -> rusqlite::Result<Option<Settlement>> {
    let mut query = db.prepare_cached(
        "SELECT settlement, failed_step, error_category, error, attempts
         FROM ergon_node WHERE tx_id = ?1 AND task = ?2 AND status IN ('succeeded', 'failed')",
    )?;
    query
        .query_row(params![id, task], |row| rows::settlement(row, task))
        .optional()
}

/// Deletes the terminal nodes that ended before `before_ms` (Unix milliseconds), the
/// waits decided before then, and the fan-in items batched and groups closed before
/// then, in one write; returns how many nodes. Queued nodes, open waits and open groups
/// stay.
pub(super) fn purge_before(db: &Database, before_ms: i64) -> rusqlite::Result<usize> {
    let write = db.write()?;
    let nodes = write.execute(
        "DELETE FROM ergon_node WHERE finished_at < ?1 AND status != 'queued'",
        [before_ms],
    )?;
    write.execute(
        "DELETE FROM ergon_wait_member
         WHERE wait_id IN (SELECT wait_id FROM ergon_wait WHERE fired_at < ?1)",
        [before_ms],
    )?;
    write.execute("DELETE FROM ergon_wait WHERE fired_at < ?1", [before_ms])?;
    write.execute(&tables::PURGE_FAN_IN_ITEMS.replace('$', "?"), [before_ms])?;
    write.execute(&tables::PURGE_FAN_IN_BATCHES.replace('$', "?"), [before_ms])?;
    write.execute(&tables::PURGE_FAN_IN_GROUPS.replace('$', "?"), [before_ms])?;
    write.execute(&tables::PURGE_RUN_ITEMS.replace('$', "?"), [before_ms])?;
    write.execute(&tables::PURGE_RUNS.replace('$', "?"), [before_ms])?;
    write.commit()?;
    Ok(nodes)
}

/// Whether a node of one of `tasks` (a JSON array of names) is queued, a wait
/// continuing into one of them is undecided, a fan-in group of one of them holds
/// items its timeout will cut, or a DAG run is running.
pub(super) fn owes(db: &Connection, tasks: &str) -> rusqlite::Result<bool> {
    db.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM ergon_node WHERE status = 'queued'
                AND task IN (SELECT value FROM json_each(?1)))
            OR EXISTS (SELECT 1 FROM ergon_wait WHERE fired_at IS NULL
                AND then_task IN (SELECT value FROM json_each(?1)))
            OR EXISTS (SELECT 1 FROM ergon_fanin_group WHERE deadline_ms IS NOT NULL
                AND consumer IN (SELECT value FROM json_each(?1)))
            OR EXISTS (SELECT 1 FROM ergon_run WHERE status = 'running')",
    )?
    .query_row([tasks], |row| row.get(0))
}

/// The items fan-in batch `batch_id` holds, in the order they arrived.
pub(super) fn batch_items(db: &Connection, batch_id: &str) -> rusqlite::Result<Vec<Member>> {
    db.prepare_cached(&tables::BATCH_ITEMS.replace('$', "?"))?
        .query_map([batch_id], |row| {
            Ok(Member::new(
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
            ))
        })?
        .collect()
}

/// The members of wait `wait_id`, in the order they were given, as its continuation
/// receives them: every member when `all`, else only those that did not succeed or have
/// an output.
pub(super) fn wait_members(
    db: &Connection,
    wait_id: i64,
    all: bool,
) -> rusqlite::Result<Vec<MemberState>> {
    let mut query = db.prepare_cached(&tables::wait_members(all, '?'))?;
    query
        .query_map([wait_id], |row| rows::member_state(row))?
        .collect()
}

/// The states of `members`, in order (`pending` for one not terminal, or unknown).
pub(super) fn states(db: &Connection, members: &[Member]) -> rusqlite::Result<Vec<MemberState>> {
    let mut query = db.prepare_cached(
        "SELECT task, tx_id, status, output, error FROM ergon_node WHERE tx_id = ?1 AND task = ?2",
    )?;
    members
        .iter()
        .map(|member| {
            let found = query
                .query_row(params![member.id, member.task], |row| {
                    rows::member_state(row)
                })
                .optional()?;
            Ok(found
                .filter(|state| state.status != "queued")
                .unwrap_or_else(|| rows::pending(&member.task, &member.id)))
        })
        .collect()
}

/// The runs in `status` (every status when `None`), newest first, at most `limit`.
pub(super) fn runs(
    db: &Connection,
    status: Option<&str>,
    limit: usize,
) -> rusqlite::Result<Vec<RunSummary>> {
    db.prepare_cached(&rows::runs_query('?', limit))?
        .query_map([status], |row| {
            rows::run(row).map(|(summary, _, _)| summary)
        })?
        .collect()
}

/// Run `run_id` as stored: its summary, definition and state.
pub(super) fn run(
    db: &Connection,
    run_id: &str,
) -> rusqlite::Result<Option<(RunSummary, String, String)>> {
    db.prepare_cached(&rows::run_query('?'))?
        .query_row([run_id], |row| rows::run(row))
        .optional()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lineage is read through its root's key and the descendant index (which holds
    /// no root), not by scanning every node; it is the root and its descendants, and a
    /// node that is only named like the root is not part of it.
    #[test]
    fn a_lineage_is_its_root_and_descendants_read_by_index() {
        let dir = tempfile::tempdir().unwrap();
        let db = super::super::schema::open(&dir.path().join("journal.db")).unwrap();
        let read = db.read();
        read.execute_batch(
            "INSERT INTO ergon_node (tx_id, task, parent_id, root_id, tags, status, settlement,
                 attempts, deliveries, children, started_at, finished_at) VALUES
             ('r', 'a', NULL, 'r', '', 'succeeded', 'ack', 1, 1, 0, 1, 1),
             ('r/1', 'b', 'r', 'r', '', 'succeeded', 'ack', 1, 1, 0, 2, 2),
             ('r/1/1', 'c', 'r/1', 'r', '', 'succeeded', 'ack', 1, 1, 0, 3, 3),
             ('r', 'd', 'q', 'q', '', 'succeeded', 'ack', 1, 1, 0, 4, 4),
             ('s', 'a', NULL, 's', '', 'succeeded', 'ack', 1, 1, 0, 5, 5)",
        )
        .unwrap();
        let filter = Filter {
            root: Some("r".into()),
            limit: 10,
            ..Filter::default()
        };
        let lineage: Vec<_> = list(&read, &filter)
            .unwrap()
            .into_iter()
            .map(|node| (node.id, node.task))
            .collect();
        let expected = [("r", "a"), ("r/1", "b"), ("r/1/1", "c")];
        assert_eq!(
            lineage,
            expected.map(|(id, task)| (id.to_owned(), task.to_owned()))
        );

        let (sql, values) = rows::list_query(&filter, '?');
        let mut explain = read.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let plan: Vec<String> = explain
            .query_map(rusqlite::params_from_iter(values), |row| row.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let plan = plan.join("\n");
        assert!(plan.contains("USING INDEX ergon_node_descendant"), "{plan}");
        assert!(plan.contains("USING PRIMARY KEY"), "{plan}");
        assert!(!plan.contains("SCAN ergon_node"), "{plan}");
    }
}
