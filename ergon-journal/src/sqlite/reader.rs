//! Reading the journal back: one node, a filtered list, the settlement to repeat for a
//! redelivery; and purging.

use ergon_core::journal::{Member, MemberState};
use ergon_core::{Category, Settlement, journal};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::node::{Filter, Node, NodeError, Status};

/// A node's children are those its output confirmed (`children`) and those it spawned,
/// counted when read so that a completion does not pay for it.
const COLUMNS: &str = "tx_id, task, parent_id, root_id, tags, status, settlement, attempts,
    deliveries, children + (SELECT count(*) FROM ergon_node spawned
        WHERE spawned.parent_id = ergon_node.tx_id AND spawned.edge = 'spawn'), failed_step, error_category, error, trace_id, started_at, finished_at,
    output, edge";

/// The nodes of transaction `id`, one per task it completed in.
pub(super) fn get(db: &Connection, id: &str) -> rusqlite::Result<Vec<Node>> {
    let sql = format!("SELECT {COLUMNS} FROM ergon_node WHERE tx_id = ?1 ORDER BY finished_at");
    let mut query = db.prepare_cached(&sql)?;
    query.query_map([id], node)?.collect()
}

/// The nodes `filter` selects, oldest first.
pub(super) fn list(db: &Connection, filter: &Filter) -> rusqlite::Result<Vec<Node>> {
    // Only the conditions given, so that SQLite picks the parent or root index (a generic
    // `?1 IS NULL OR parent_id = ?1` would scan the whole table).
    let status = filter.status.map(Status::as_str);
    let given = [
        ("parent_id", filter.parent.as_deref()),
        ("root_id", filter.root.as_deref()),
        ("status", status),
    ];
    let (conditions, values): (Vec<String>, Vec<&str>) = given
        .iter()
        .filter_map(|(column, value)| Some((*column, (*value)?)))
        .enumerate()
        .map(|(index, (column, value))| (format!("{column} = ?{}", index + 1), value))
        .unzip();
    let conditions = if conditions.is_empty() {
        "true".to_owned()
    } else {
        conditions.join(" AND ")
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM ergon_node WHERE {conditions}
         ORDER BY finished_at, tx_id LIMIT {}",
        i64::try_from(filter.limit).unwrap_or(i64::MAX)
    );
    let mut query = db.prepare(&sql)?;
    query
        .query_map(rusqlite::params_from_iter(values), node)?
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
    let mut rows = query.query(params![id, task])?;
    let Some(row) = rows.next()? else {
        return Ok(None);
    };
    let settlement: String = row.get(0)?;
    if settlement == "ack" {
        return Ok(Some(Settlement::Ack));
    }
    let step: Option<String> = row.get(1)?;
    let category: Option<String> = row.get(2)?;
    let message: Option<String> = row.get(3)?;
    let failure = journal::failure(
        task,
        step.as_deref().unwrap_or_default(),
        category
            .as_deref()
            .and_then(Category::named)
            .unwrap_or(Category::System),
        message.unwrap_or_default(),
        row.get(4)?,
    );
    Ok(Some(if settlement == "drop" {
        Settlement::Drop(failure)
    } else {
        Settlement::DeadLetter(failure)
    }))
}

/// Deletes the terminal nodes that ended before `before_ms` (Unix milliseconds), and the
/// waits decided before then; returns how many nodes. Queued nodes and open waits stay.
pub(super) fn purge_before(db: &Connection, before_ms: i64) -> rusqlite::Result<usize> {
    let nodes = db.execute(
        "DELETE FROM ergon_node WHERE finished_at < ?1 AND status != 'queued'",
        [before_ms],
    )?;
    db.execute(
        "DELETE FROM ergon_wait_member
         WHERE wait_id IN (SELECT wait_id FROM ergon_wait WHERE fired_at < ?1)",
        [before_ms],
    )?;
    db.execute("DELETE FROM ergon_wait WHERE fired_at < ?1", [before_ms])?;
    Ok(nodes)
}

fn node(row: &Row<'_>) -> rusqlite::Result<Node> {
    let tags: String = row.get(4)?;
    let status: String = row.get(5)?;
    let step: Option<String> = row.get(10)?;
    let error = match step {
        Some(step) => Some(NodeError {
            step,
            category: row.get::<_, Option<String>>(11)?.unwrap_or_default(),
            message: row.get::<_, Option<String>>(12)?.unwrap_or_default(),
        }),
        None => None,
    };
    Ok(Node {
        id: row.get(0)?,
        task: row.get(1)?,
        parent_id: row.get(2)?,
        root_id: row.get(3)?,
        tags: tags
            .split(',')
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        status: Status::named(&status).unwrap_or(Status::Failed),
        settlement: row.get(6)?,
        attempts: row.get(7)?,
        deliveries: row.get(8)?,
        children: row.get(9)?,
        error,
        trace_id: row.get(13)?,
        started_at_ms: row.get(14)?,
        finished_at_ms: row.get(15)?,
        output: output(row.get(16)?),
        edge: row.get(17)?,
    })
}

/// Whether a node of one of `tasks` (a JSON array of names) is queued, or a wait
/// continuing into one of them is undecided.
pub(super) fn owes(db: &Connection, tasks: &str) -> rusqlite::Result<bool> {
    db.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM ergon_node WHERE status = 'queued'
                AND task IN (SELECT value FROM json_each(?1)))
            OR EXISTS (SELECT 1 FROM ergon_wait WHERE fired_at IS NULL
                AND then_task IN (SELECT value FROM json_each(?1)))",
    )?
    .query_row([tasks], |row| row.get(0))
}

/// The members of wait `wait_id`, in the order they were given, as its continuation
/// receives them: every member when `all`, else only those that did not succeed or have
/// an output.
pub(super) fn wait_members(
    db: &Connection,
    wait_id: i64,
    all: bool,
) -> rusqlite::Result<Vec<MemberState>> {
    let mut query = db.prepare_cached(
        "SELECT m.task, m.tx_id, m.state, n.output, n.error FROM ergon_wait_member m
         LEFT JOIN ergon_node n ON n.tx_id = m.tx_id AND n.task = m.task
         WHERE m.wait_id = ?1 AND (?2 OR m.state != 'succeeded' OR m.with_output)
         ORDER BY m.position",
    )?;
    query
        .query_map(params![wait_id, all], member_state)?
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
                .query_row(params![member.id, member.task], member_state)
                .optional()?;
            Ok(found
                .filter(|state| state.status != "queued")
                .unwrap_or_else(|| MemberState {
                    task: member.task.clone(),
                    id: member.id.clone(),
                    status: "pending".to_owned(),
                    output: None,
                    error: None,
                }))
        })
        .collect()
}

fn member_state(row: &Row<'_>) -> rusqlite::Result<MemberState> {
    Ok(MemberState {
        task: row.get(0)?,
        id: row.get(1)?,
        status: row.get(2)?,
        output: output(row.get(3)?),
        error: row.get(4)?,
    })
}

/// A recorded output (JSON text) as a value.
fn output(text: Option<String>) -> Option<serde_json::Value> {
    text.and_then(|text| serde_json::from_str(&text).ok())
}
